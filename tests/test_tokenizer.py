import json

import pytest

from namemodels.tokenizer import CharTokenizer


def test_special_ids_and_sorted_chars():
    tok = CharTokenizer("cba")
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert tok.itos[:4] == [CharTokenizer.PAD, CharTokenizer.BOS, CharTokenizer.EOS, CharTokenizer.UNK]
    assert tok.itos[4:] == ["a", "b", "c"]
    assert len(tok) == 7 == tok.vocab_size


def test_fit_folds_and_round_trips():
    tok = CharTokenizer.fit(["Ślusarski", "O'Neil", "Müller"])
    assert "S" in tok.chars and "Ś" not in tok.chars and "u" in tok.chars
    ids = tok.encode("Muller", bos=True, eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.decode(ids) == "Muller"
    assert tok.decode(tok.encode("Müller")) == "Muller"  # folded before encoding
    assert tok.decode(tok.encode("O'Neil")) == "O'Neil"


def test_unknown_and_decode_rules():
    tok = CharTokenizer.fit(["abc"])
    assert tok.encode("abz") == [tok.stoi["a"], tok.stoi["b"], tok.unk_id]
    a, b = tok.stoi["a"], tok.stoi["b"]
    # specials dropped, decoding stops at eos
    assert tok.decode([tok.bos_id, a, tok.pad_id, tok.unk_id, b, tok.eos_id, a, a]) == "ab"
    assert tok.decode([]) == ""
    with pytest.raises(ValueError):
        tok.decode([99])


def test_lowercase_and_normalize():
    tok = CharTokenizer.fit(["Smith", "JONES"], lowercase=True)
    assert all(c == c.lower() for c in tok.chars)
    assert tok.normalize("  Émile ") == "emile"
    assert tok.encode("SMITH") == tok.encode("smith")
    assert CharTokenizer([]).normalize(" Ábc ") == "Abc"


def test_to_dict_from_dict_json_safe():
    tok = CharTokenizer.fit(["Dostoevsky", "de la Cruz", "O'Brien-Smith"], lowercase=True)
    d = json.loads(json.dumps(tok.to_dict()))
    back = CharTokenizer.from_dict(d)
    assert back == tok and back.itos == tok.itos and back.lowercase
    assert back.encode("cruz", eos=True) == tok.encode("cruz", eos=True)
    with pytest.raises(ValueError):
        CharTokenizer.from_dict({"type": "bpe", "chars": []})
    with pytest.raises(ValueError):
        CharTokenizer.from_dict({"nothing": 1})


def test_no_torch_import():
    import subprocess
    import sys

    code = (
        "import sys, namemodels.tokenizer, namemodels.data.loader, namemodels.data.download; "
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
