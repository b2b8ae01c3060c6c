"""Safety on hostile input: bounded memory on huge repeated data, zip size caps and member names."""

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from namemodels.data import loader, scan
from namemodels.data.download import download
from namemodels.data.records import DataError

SMITH_LINES = 200 * 2**20 // len(b"Smith\n")  # about 200 MB of "Smith\n"
SMALL = {
    "Italian": [
        "Rossi",
        "Bianchi",
        "Romano",
        "Greco",
        "Bruno",
        "Gallo",
        "Conti",
        "Marino",
        "Ricci",
        "Lombardi",
        "Moretti",
        "Barbieri",
        "Fontana",
        "Santoro",
        "Mariani",
        "Rinaldi",
        "Caruso",
        "Ferrara",
        "Galli",
        "Martini",
    ],
    "German": [
        "Muller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Schulz",
        "Hoffmann",
        "Koch",
        "Richter",
        "Klein",
        "Wolf",
        "Neumann",
        "Schwarz",
        "Zimmermann",
        "Braun",
        "Hartmann",
        "Lange",
    ],
}


def _write_smith(f, lines: int = SMITH_LINES) -> None:
    block = b"Smith\n" * 2**18
    for _ in range(lines // 2**18):
        f.write(block)
    f.write(b"Smith\n" * (lines % 2**18))


def _bomb(tmp_path):
    """A zip of a few hundred KB whose names/English.txt unpacks to about 200 MB, and the same as a folder."""
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("names/English.txt", "w", force_zip64=True) as f:
            _write_smith(f)
        for label, names in SMALL.items():
            zf.writestr(f"names/{label}.txt", "\n".join(names) + "\n")
    folder = tmp_path / "names"
    folder.mkdir()
    with open(folder / "English.txt", "wb") as f:
        _write_smith(f)
    for label, names in SMALL.items():
        (folder / f"{label}.txt").write_text("\n".join(names) + "\n")
    return path, folder


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="peak RSS read from /proc (Linux)")
def test_200mb_of_repeated_names_load_in_bounded_memory(tmp_path):
    """`data stats` and the data side of `train --max-train 200` (load, grouped split, subset) on a
    ~200 MB member of one repeated name, zipped and as a folder: peak RSS of the process under 500 MB
    (the loaders once held a Python object a line: over 8 GB)."""
    path, folder = _bomb(tmp_path)
    assert path.stat().st_size < 2_000_000 and zipfile.ZipFile(path).getinfo("names/English.txt").file_size > 2e8
    script = textwrap.dedent("""
        import json, sys
        from namemodels.data import loader
        from namemodels.data.split import grouped_split
        from namemodels.data.stats import stats
        out = []
        for p in sys.argv[1:]:
            ds = loader.load(p)
            st = stats(ds)
            train, valid, test = grouped_split(ds, seed=0)
            sub = train.sample(200, seed=0)
            out.append({"records": st["records"], "classes": st["classes"], "unique": st["unique_names"],
                        "splits": [len(train), len(valid), len(test)], "sample": len(sub),
                        "sample_names": sorted(set(sub.names))})
        # VmHWM: this process's own peak. (ru_maxrss is not: on Linux exec carries the parent's peak
        # into it, and pytest's own RSS late in a full run is several hundred MB.)
        peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        print(json.dumps({"results": out, "peak_mb": peak_kb / 1024}))
    """)
    run = subprocess.run(
        [sys.executable, "-c", script, str(path), str(folder)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    for result in report["results"]:
        assert result["records"] == SMITH_LINES + 40
        assert result["classes"] == {"English": SMITH_LINES, "German": 20, "Italian": 20}
        assert result["unique"] == 41
        assert sum(result["splits"]) == SMITH_LINES + 40 and result["sample"] == 200
        assert set(result["sample_names"]) <= {"Smith"} | set(SMALL["German"]) | set(SMALL["Italian"])
    assert report["results"][0] == report["results"][1]
    assert report["peak_mb"] < 500, report


def _big_zip(path, member="names/English.txt", mb=3):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(member, "w") as f:
            _write_smith(f, mb * 2**20 // 6)
        zf.writestr("names/German.txt", "Muller\nSchmidt\n")
    return path


def test_zip_over_the_unzip_cap_is_refused_before_unpacking(tmp_path, monkeypatch):
    path = _big_zip(tmp_path / "big.zip")
    assert len(loader.load(path)) > 500_000  # under the default cap of 256 MB
    monkeypatch.setenv("NAMEMODELS_MAX_UNZIP_MB", "2")

    def no_unpacking(*args, **kwargs):
        raise AssertionError("a member was opened before the size check")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_unpacking)
    with pytest.raises(
        DataError,
        match=r"big\.zip: its members unpack to 3\.1 MB, over the 2 MB limit.*"
        r"NAMEMODELS_MAX_UNZIP_MB",
    ):
        loader.load(path)
    with pytest.raises(DataError, match="over the 2 MB limit"):
        download("surnames", tmp_path / "out", url=str(path), progress=False)
    assert not (tmp_path / "out" / "names").exists()


@pytest.mark.parametrize("value", ["0", "-5", "lots", "nan"])
def test_a_bad_unzip_cap_is_named(tmp_path, monkeypatch, value):
    monkeypatch.setenv("NAMEMODELS_MAX_UNZIP_MB", value)
    with pytest.raises(DataError, match="NAMEMODELS_MAX_UNZIP_MB must be a positive number of megabytes"):
        loader.load(_big_zip(tmp_path / "big.zip", mb=1))


@pytest.mark.parametrize(
    "member", ["data/../data/names/Evil.txt", "data/names/../names/Evil.txt", "/names/Evil.txt", "..\\names\\Evil.txt"]
)
def test_member_names_that_climb_out_are_refused(tmp_path, member):
    """`data download` once flattened such a member into a new label (Evil); now the archive is refused."""
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data/names/German.txt", "Muller\nSchmidt\n")
        zf.writestr(member, "Smith\n")
    with pytest.raises(DataError, match="unsafe member name"):
        download("surnames", tmp_path / "out", url=str(path), progress=False)
    assert not (tmp_path / "out" / "names").exists()
    with pytest.raises(DataError, match="unsafe member name"):
        loader.load(path)


def test_a_line_without_end_is_refused_not_held(tmp_path):
    path = tmp_path / "names.txt"
    path.write_bytes(b"Smith\n" + b"x" * (scan.MAX_LINE + 10))
    with pytest.raises(DataError, match=r"names\.txt:2: a line longer than 65536 bytes"):
        loader.load(path)


def test_repeated_lines_are_held_once(tmp_path):
    """Each distinct line is one record; the lines keep their order, counts and first line numbers."""
    d = tmp_path / "names"
    d.mkdir()
    (d / "A.txt").write_text("Bo\nAl\n\nBo\nAl\nAl\n")
    (d / "B.txt").write_text("Al\n")
    ds = loader.load(d)
    assert ds.names == ["Bo", "Al", "Bo", "Al", "Al", "Al"] and [r.label for r in ds.records] == ["A"] * 5 + ["B"]
    assert ds.records[0] is ds.records[2]
    assert [(r.name, r.label, c) for r, c in ds.distinct()] == [("Bo", "A", 2), ("Al", "A", 3), ("Al", "B", 1)]
    (d / "A.txt").write_bytes(b"Bo\nAl\nBo\n\xff\n\xff\n")
    with pytest.raises(DataError, match=r"A\.txt:4: not UTF-8"):
        loader.load(d)
    tsv = tmp_path / "x.tsv"
    tsv.write_text("name\tlabel\nBo\tA\nname\tlabel\nBo\tA\nAl\n")
    with pytest.raises(DataError, match=r"x\.tsv:5: expected 'name<TAB>label'"):
        loader.load(tsv)
    tsv.write_text("name\tlabel\nBo\tA\nname\tlabel\nBo\tA\n")
    assert [(r.name, r.label) for r in loader.load(tsv).records] == [("Bo", "A"), ("name", "label"), ("Bo", "A")]
    csv = tmp_path / "g.csv"
    csv.write_text("name,sex,count\nJo,F,2\nJo,M,1\nJo,F,2\n")
    (jo,) = loader.load(csv).records
    assert jo.weight == 5 and jo.soft == pytest.approx(0.8)


# ------------------------------------------------------------------------------------------ file integrity


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _flip_byte(path, where: float = 0.5) -> None:
    b = bytearray(path.read_bytes())
    b[int(len(b) * where)] ^= 0x5A
    path.write_bytes(b)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, single_thread):
    from helpers import make_surnames

    from namemodels.config import TrainConfig
    from namemodels.training.train import train

    root = tmp_path_factory.mktemp("trained")
    out = root / "model"
    train(
        TrainConfig(task="classify", epochs=1, embed=4, hidden=8, batch_size=16),
        make_surnames(root, per_class=20),
        out,
        progress=False,
        log=lambda m: None,
    )
    return out


def _copy_model(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_training_records_the_hashes_and_every_load_checks_them(trained, tmp_path, capsys):
    import shutil

    import namemodels
    from namemodels.cli import main
    from namemodels.errors import UsageError
    from namemodels.export import export_model_dir

    config = json.loads((trained / "config.json").read_text())
    assert config["sha256"]["model.safetensors"] == _sha256(trained / "model.safetensors")
    # the weights, the config's sections (a classifier's calibration among them), and a classifier's name table
    sections = {"task", "model", "labels", "tokenizer", "name_table", "calibration"}
    assert set(config["sha256"]) == {"model.safetensors", *sections, "name_table.npz"}
    assert namemodels.load(trained, backend="torch").predict(["Rossini"])

    bad = _copy_model(trained, tmp_path / "weights")
    _flip_byte(bad / "model.safetensors", 0.9)
    with pytest.raises(UsageError, match=r"model\.safetensors: the file is damaged or was changed"):
        namemodels.load(bad, backend="torch")
    assert main(["predict", "--model", str(bad), "Rossini"]) == 2
    assert "model.safetensors: the file is damaged" in capsys.readouterr().err

    for section, edit in (
        ("tokenizer", lambda c: c["tokenizer"]["chars"].reverse()),
        ("labels", lambda c: c["labels"].reverse()),
    ):
        edited = _copy_model(trained, tmp_path / section)
        c = json.loads((edited / "config.json").read_text())
        edit(c)
        (edited / "config.json").write_text(json.dumps(c))
        with pytest.raises(UsageError, match=rf"config\.json: its {section} section was changed"):
            namemodels.load(edited, backend="torch")  # no model.onnx here: the torch path checks it too

    exported = _copy_model(trained, tmp_path / "exported")
    stale = _copy_model(trained, tmp_path / "stale")
    export_model_dir(exported)
    recorded = json.loads((exported / "config.json").read_text())["sha256"]
    assert recorded["model.onnx"] == _sha256(exported / "model.onnx")
    assert namemodels.load(exported).predict(["Rossini"])  # the ONNX path
    shutil.copy(exported / "model.onnx", stale / "model.onnx")  # an ONNX file the config never recorded
    with pytest.raises(UsageError, match=r"model\.onnx: config\.json records no SHA-256 for this file.*re-export"):
        namemodels.load(stale)
    _flip_byte(exported / "model.onnx", 0.6)
    with pytest.raises(UsageError, match=r"model\.onnx: the file is damaged or was changed"):
        namemodels.load(exported, backend="onnx")


def test_a_directory_saved_before_hashes_gets_them_once(trained, tmp_path, capsys):
    import namemodels
    from namemodels import integrity

    legacy = _copy_model(trained, tmp_path / "legacy")
    c = json.loads((legacy / "config.json").read_text())
    del c["sha256"]
    (legacy / "config.json").write_text(json.dumps(c, indent=2) + "\n")
    assert namemodels.load(legacy, backend="torch")  # loads unchecked
    before = (legacy / "model.safetensors").read_bytes()
    assert integrity.main([str(legacy)]) == 0 and "recorded" in capsys.readouterr().out
    assert (
        json.loads((legacy / "config.json").read_text())["sha256"]
        == json.loads((trained / "config.json").read_text())["sha256"]
    )
    assert (legacy / "model.safetensors").read_bytes() == before
    assert integrity.main([str(legacy)]) == 0 and "ok" in capsys.readouterr().out
    _flip_byte(legacy / "model.safetensors")
    assert integrity.main([str(legacy)]) == 2 and "damaged" in capsys.readouterr().err


def test_shipped_models_record_the_hashes_of_their_files(capsys):
    from namemodels.cli import main
    from namemodels.inference.locate import PRETRAINED, shipped_models

    names = shipped_models()
    if not names:
        pytest.skip("no shipped models installed")
    for name in names:
        d = PRETRAINED / name
        recorded = json.loads((d / "config.json").read_text())["sha256"]
        for f in ("model.safetensors", "model.onnx"):
            assert recorded[f] == _sha256(d / f), (name, f)
    assert main(["predict", "Hinton", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)


def test_a_tampered_copy_of_a_shipped_model_is_refused(tmp_path, capsys):
    """A flipped byte in the shipped surnames model: `predict` (the ONNX file) exits 2 with one line
    instead of answering (nan); the torch path refuses damaged weights the same way."""
    import namemodels
    from namemodels.cli import main
    from namemodels.errors import UsageError
    from namemodels.inference.locate import PRETRAINED

    if not (PRETRAINED / "surnames" / "model.onnx").is_file():
        pytest.skip("no shipped surnames model")
    onnx = _copy_model(PRETRAINED / "surnames", tmp_path / "onnx")
    _flip_byte(onnx / "model.onnx", 0.7)
    assert main(["predict", "--model", str(onnx), "Hinton", "--json"]) == 2
    captured = capsys.readouterr()
    assert "model.onnx: the file is damaged or was changed" in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
    weights = _copy_model(PRETRAINED / "surnames", tmp_path / "weights")
    _flip_byte(weights / "model.safetensors", 0.7)
    with pytest.raises(UsageError, match=r"model\.safetensors: the file is damaged or was changed"):
        namemodels.load(weights, backend="torch")


def test_an_ensemble_records_its_hashes(tmp_path, single_thread):
    from helpers import make_surnames

    import namemodels
    from namemodels.config import TrainConfig
    from namemodels.training.train import train

    out = tmp_path / "pair"
    config = train(
        TrainConfig(task="classify", epochs=1, embed=4, hidden=8, batch_size=16, ensemble=2),
        make_surnames(tmp_path, per_class=20),
        out,
        progress=False,
        log=lambda m: None,
    )
    assert config["sha256"]["model.safetensors"] == _sha256(out / "model.safetensors")
    assert json.loads((out / "config.json").read_text())["sha256"]["model"] == config["sha256"]["model"]
    assert namemodels.load(out, backend="torch").predict(["Rossini"])


def test_the_onnx_path_checks_the_weights_beside_the_export(tmp_path, capsys):
    """Every load checks the hashes, the ONNX path too: a truncated model.safetensors beside model.onnx is
    an error (it would be the file that `export` and `train --init-from` read), while a folder that has
    only the export still loads."""
    import namemodels
    from namemodels.cli import main
    from namemodels.errors import UsageError
    from namemodels.inference.locate import PRETRAINED

    if not (PRETRAINED / "surnames" / "model.onnx").is_file():
        pytest.skip("no shipped surnames model")
    cut = _copy_model(PRETRAINED / "surnames", tmp_path / "cut")
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(UsageError, match=r"model\.safetensors: the file is damaged or was changed"):
        namemodels.load(cut, backend="onnx")
    assert main(["predict", "--model", str(cut), "Hinton"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "model.safetensors: the file is damaged" in captured.err
    weights.unlink()
    assert namemodels.load(cut).predict(["Hinton"])


def test_an_edited_calibration_is_refused(tmp_path):
    """The temperature changes every answer, so config.json's hash covers it like the labels: a copy
    whose calibration was recorded and then edited by hand is refused."""
    import namemodels
    from namemodels.errors import UsageError
    from namemodels.inference.locate import PRETRAINED
    from namemodels.integrity import record

    if not (PRETRAINED / "surnames" / "model.onnx").is_file():
        pytest.skip("no shipped surnames model")
    copy = _copy_model(PRETRAINED / "surnames", tmp_path / "calibrated")
    config = json.loads((copy / "config.json").read_text())
    config["calibration"] = {"temperature": 1.25, "how": "test"}
    (copy / "config.json").write_text(json.dumps(record(copy, config)))
    assert namemodels.load(copy).predict(["Hinton"])
    config["calibration"]["temperature"] = 0.5
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="calibration"):
        namemodels.load(copy).predict(["Hinton"])
