"""predict / gender / generate and namemodels.load run from model.onnx with torch hidden."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")
from helpers import cli_without, make_model_dir  # noqa: E402

from namemodels.export import export_model_dir  # noqa: E402

BLOCKER = """
import sys, importlib.abc
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('torch', 'safetensors', 'onnx'):
            raise ImportError(f'{name} is hidden for this test')
sys.meta_path.insert(0, _NoTorch())
"""


def _run(tmp_path, code):
    r = subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_cli_and_load_without_torch(tmp_path):
    cls = make_model_dir(tmp_path / "cls", cell="momentum_gru")
    gen = make_model_dir(tmp_path / "gen", kind="lm", cell="lstm", conditioned=True)
    sex = make_model_dir(tmp_path / "sex", cell="gru", binary=True)
    for d in (cls, gen, sex):
        export_model_dir(d)
    out = _run(
        tmp_path,
        f"""
from namemodels.cli import main
import namemodels
assert main(['predict', '--model', {str(cls)!r}, '--json', 'Smith', 'Nguyen']) == 0
assert main(['gender', '--model', {str(sex)!r}, 'Maria']) == 0
assert main(['generate', '--model', {str(gen)!r}, '--n', '3', '--seed', '1', '--category', 'Czech']) == 0
p = namemodels.load({str(cls)!r})
assert type(p.backend).__name__ == 'OnnxBackend'
assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))
print('TORCH-FREE-OK')
""",
    )
    assert "TORCH-FREE-OK" in out
    assert json.loads(out[: out.index("TORCH-FREE-OK")].split("\n]\n")[0] + "\n]")[0]["name"] == "Smith"


def test_training_commands_without_torch_say_how_to_install(tmp_path):
    """As in a base install: torch is missing (ModuleNotFoundError), so train/evaluate exit 2 with a hint."""
    code = cli_without("torch")
    for argv in (["train", "classify", "--data", "x", "--out", "y"], ["evaluate", "surnames", "--data", "x"]):
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert "pip install 'namemodels[train]'" in r.stderr and "Traceback" not in r.stderr
