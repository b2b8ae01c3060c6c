"""namemodels.inference.sampler: which --start prefixes can begin a generated name (check_prefix), through the
API and the CLI."""

import pytest

import namemodels
from namemodels.cli import main
from namemodels.errors import UsageError
from namemodels.inference.sampler import check_prefix
from namemodels.tokenizer import CharTokenizer


@pytest.fixture(scope="module")
def surnames_gen():
    """The shipped surname generator: its vocabulary has space, ',', "'" and '-' (from its data)."""
    return namemodels.load("surnames-gen")


def test_check_prefix_follows_the_vocabulary():
    with_marks = CharTokenizer("abcdefghijklmnopqrstuvwxyz ,'-", lowercase=True)
    letters_only = CharTokenizer("abcdefghijklmnopqrstuvwxyz", lowercase=True)
    for prefix in ("o'", "ou-", "de c", "ro"):
        check_prefix(with_marks, prefix)
    with pytest.raises(UsageError, match=r"cannot generate: \"'-\""):
        check_prefix(letters_only, "o'b-")
    with pytest.raises(UsageError, match="has no letters"):
        check_prefix(with_marks, "-")
    with pytest.raises(UsageError, match="begins with '-'"):
        check_prefix(with_marks, "-ro")
    with pytest.raises(UsageError, match="has ',', which ends a name"):  # in the vocabulary, yet never continued
        check_prefix(with_marks, "ro,")
    with pytest.raises(UsageError, match="cannot generate"):  # a special token's name is not a character
        check_prefix(with_marks, "<")


@pytest.mark.parametrize(
    "start,message",
    [
        ("-", "start prefix '-' has no letters"),
        ("'", 'start prefix "\'" has no letters'),
        ("Ro,", "start prefix 'ro,' has ','"),
        ("=-Ro", "begins with '-'"),
        (" ", "has no letters"),
        ("Ro.", "never saw: '.'"),
    ],
)
def test_generate_refuses_a_start_the_model_cannot_continue(surnames_gen, capsys, start, message):
    with pytest.raises(UsageError, match="has no letters|begins with|ends a name|never saw") as caught:
        surnames_gen.generate(n=2, seed=0, start=start.lstrip("="))
    assert message in str(caught.value)
    assert main(["generate", "--model", "surnames-gen", "--n", "2", f"--start={start.lstrip('=')}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == f"namemodels generate: error: {caught.value}"


@pytest.mark.parametrize("start", ["O'", "Ou-", "De c", "Ro"])
def test_generate_continues_a_start_with_joining_marks(surnames_gen, start):
    names = surnames_gen.generate(n=3, seed=0, start=start)
    assert len(names) == 3 and all(n.lower().startswith(start.lower()) for n in names)
