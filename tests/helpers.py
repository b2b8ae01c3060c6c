"""What several test files share: small data sets the tests make themselves (the real data may be
absent), a small untrained model directory, the fast training settings and the repository's paths.

``tests/`` is on ``sys.path`` while pytest runs (it holds the root conftest.py), so every test file, in
any subfolder, imports this module as ``helpers``."""

import json
import string
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"  # the real data beside the checkout

# Training settings small enough for a test: a few seconds per epoch on the synthetic data below.
QUIET = dict(progress=False, log=lambda m: None)  # train() / run_cv() with no progress bar or log lines
FAST = dict(embed=8, hidden=16, batch_size=16, lr=0.01)

LABELS = ["Arabic", "Chinese", "Czech", "Dutch", "English"]

SYLLABLES = {
    "Italian": ["ro", "ssi", "bi", "an", "chi", "ni", "lo", "tti"],
    "Japanese": ["ka", "wa", "ta", "na", "be", "mo", "to", "yama"],
    "Russian": ["iv", "an", "ov", "ko", "vich", "sky", "ev", "in"],
}


def make_surnames(root: Path, per_class: int = 60, seed: int = 0) -> Path:
    """A folder of <Language>.txt with names built from each language's syllables."""
    rng = np.random.default_rng(seed)
    d = root / "names"
    d.mkdir(parents=True, exist_ok=True)
    for lang, syl in SYLLABLES.items():
        names = {"".join(rng.choice(syl, rng.integers(2, 4))).capitalize() for _ in range(per_class)}
        (d / f"{lang}.txt").write_text("\n".join(sorted(names)) + "\n", encoding="utf-8")
    return d


def make_first_names(root: Path, n: int = 200, seed: int = 0) -> Path:
    """A name,sex,count CSV where names ending in 'a' are mostly female."""
    rng = np.random.default_rng(seed)
    stems = ["mar", "ann", "jo", "el", "rob", "al", "dan", "kat", "lu", "tom", "ber", "ed"]
    rows = ["name,sex,count"]
    seen = set()
    for _ in range(n):
        stem = "".join(rng.choice(stems, rng.integers(1, 3)))
        female = rng.random() < 0.5
        name = (stem + ("a" if female else rng.choice(["o", "n", "k"]))).capitalize()
        if name in seen:
            continue
        seen.add(name)
        main = int(rng.integers(5, 500))
        rows.append(f"{name},{'F' if female else 'M'},{main}")
        if rng.random() < 0.3:
            rows.append(f"{name},{'M' if female else 'F'},{int(rng.integers(1, 5))}")
    path = root / "first_names.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def make_model_dir(
    path,
    kind="classifier",
    cell="lstm",
    layers=1,
    bidirectional=False,
    conditioned=False,
    binary=False,
    seed=0,
    hidden=16,
    pool="last",
    ngram_buckets=0,
    ngram_max=3,
    proj_size=0,
):
    """An untrained model directory (config.json + model.safetensors) as `namemodels train` writes it."""
    import torch

    from namemodels.models import build_model
    from namemodels.tokenizer import CharTokenizer
    from namemodels.training.checkpoint import atomic_save_tensors

    torch.manual_seed(seed)
    tok = CharTokenizer(string.ascii_lowercase + " '-", lowercase=True)
    labels = ["F", "M"] if binary else (LABELS if kind == "classifier" or conditioned else [])
    spec = dict(kind=kind, vocab_size=len(tok), cell=cell, embed=8, hidden=hidden, layers=layers, dropout=0.0)
    if cell.startswith("momentum"):
        spec.update(mu=0.6, s=0.6, learn_momentum=False)
    if proj_size:
        spec["proj_size"] = proj_size
    if kind == "classifier":
        spec.update(num_classes=2 if binary else len(labels), bidirectional=bidirectional)
        if binary:
            spec["binary"] = True
        if pool != "last":
            spec["pool"] = pool
        if ngram_buckets:
            spec.update(ngram_buckets=ngram_buckets, ngram_max=ngram_max)
    elif kind == "lm":
        spec.update(num_categories=len(labels) if conditioned else 0)
    task = {"classifier": "gender" if binary else "classify", "lm": "generate", "multitask": "multitask"}[kind]
    model = build_model(spec)
    if ngram_buckets:  # trained tables are not zero; a zero table would hide a wrong n-gram id
        torch.nn.init.normal_(model.ngrams.weight)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(path / "model.safetensors", model.state_dict(), {"format": "pt"})
    (path / "config.json").write_text(
        json.dumps({"format": 1, "task": task, "model": spec, "labels": labels, "tokenizer": tok.to_dict()})
    )
    return path


def cli_without(module: str) -> str:
    """A ``python -c`` script that runs the namemodels CLI (arguments after it) as if ``module`` were
    not installed: importing it raises ModuleNotFoundError, as in an install without that package."""
    return f"""
import sys, importlib.abc
class _Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] == {module!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Missing())
from namemodels.cli import main
sys.exit(main(sys.argv[1:]))
"""


class held_lock:
    """``with held_lock(folder, "train"):`` -- another process holds ``folder``'s ``--out`` lock
    (namemodels.outlock) for the block, as a second run of ``train`` or ``cv`` would find it; the
    process is killed (SIGKILL) at the end, so its lock file stays behind, as after a crash."""

    def __init__(self, folder, command="train"):
        self.folder, self.command = str(folder), command

    def __enter__(self):
        import subprocess
        import sys

        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\nfrom namemodels.outlock import output_lock\n"
                f"with output_lock({self.folder!r}, {self.command!r}):\n    print('locked', flush=True)\n"
                "    time.sleep(120)",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout.readline().strip() == "locked"
        return self.process

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()


def fails_one_line(capsys, argv, *words) -> str:
    """Run the CLI in-process; it must exit 2 with one line naming the problem (each of ``words``)."""
    from namemodels.cli import main

    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err
