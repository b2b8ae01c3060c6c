"""Safety on hostile input: bounded memory on huge repeated data, zip size caps and member names."""
import json
import subprocess
import sys
import textwrap
import zipfile

import pytest

from namemodels import data
from namemodels.data import DataError
from namemodels.download import download

SMITH_LINES = 200 * 2 ** 20 // len(b"Smith\n")   # about 200 MB of "Smith\n"
SMALL = {"Italian": ["Rossi", "Bianchi", "Romano", "Greco", "Bruno", "Gallo", "Conti", "Marino", "Ricci", "Lombardi",
                     "Moretti", "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso", "Ferrara", "Galli",
                     "Martini"],
         "German": ["Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
                    "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Zimmermann", "Braun",
                    "Hartmann", "Lange"]}


def _write_smith(f, lines: int = SMITH_LINES) -> None:
    block = b"Smith\n" * 2 ** 18
    for _ in range(lines // 2 ** 18):
        f.write(block)
    f.write(b"Smith\n" * (lines % 2 ** 18))


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


def test_200mb_of_repeated_names_load_in_bounded_memory(tmp_path):
    """`data stats` and the data side of `train --max-train 200` (load, grouped split, subset) on a
    ~200 MB member of one repeated name, zipped and as a folder: peak RSS of the process under 500 MB
    (the loaders once held a Python object a line: over 8 GB)."""
    path, folder = _bomb(tmp_path)
    assert path.stat().st_size < 2_000_000 and zipfile.ZipFile(path).getinfo("names/English.txt").file_size > 2e8
    script = textwrap.dedent("""
        import json, resource, sys
        from namemodels import data
        out = []
        for p in sys.argv[1:]:
            ds = data.load(p)
            st = data.stats(ds)
            train, valid, test = data.grouped_split(ds, seed=0)
            sub = train.sample(200, seed=0)
            out.append({"records": st["records"], "classes": st["classes"], "unique": st["unique_names"],
                        "splits": [len(train), len(valid), len(test)], "sample": len(sub),
                        "sample_names": sorted(set(sub.names))})
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"results": out, "peak_mb": peak_kb / 1024}))
    """)
    run = subprocess.run([sys.executable, "-c", script, str(path), str(folder)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
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
            _write_smith(f, mb * 2 ** 20 // 6)
        zf.writestr("names/German.txt", "Muller\nSchmidt\n")
    return path


def test_zip_over_the_unzip_cap_is_refused_before_unpacking(tmp_path, monkeypatch):
    path = _big_zip(tmp_path / "big.zip")
    assert len(data.load(path)) > 500_000   # under the default cap of 256 MB
    monkeypatch.setenv("NAMEMODELS_MAX_UNZIP_MB", "2")

    def no_unpacking(*args, **kwargs):
        raise AssertionError("a member was opened before the size check")
    monkeypatch.setattr(zipfile.ZipFile, "open", no_unpacking)
    with pytest.raises(DataError, match=r"big\.zip: its members unpack to 3\.1 MB, over the 2 MB limit.*"
                                        r"NAMEMODELS_MAX_UNZIP_MB"):
        data.load(path)
    with pytest.raises(DataError, match="over the 2 MB limit"):
        download("surnames", tmp_path / "out", url=str(path), progress=False)
    assert not (tmp_path / "out" / "names").exists()


@pytest.mark.parametrize("value", ["0", "-5", "lots", "nan"])
def test_a_bad_unzip_cap_is_named(tmp_path, monkeypatch, value):
    monkeypatch.setenv("NAMEMODELS_MAX_UNZIP_MB", value)
    with pytest.raises(DataError, match="NAMEMODELS_MAX_UNZIP_MB must be a positive number of megabytes"):
        data.load(_big_zip(tmp_path / "big.zip", mb=1))


@pytest.mark.parametrize("member", ["data/../data/names/Evil.txt", "data/names/../names/Evil.txt", "/names/Evil.txt",
                                    "..\\names\\Evil.txt"])
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
        data.load(path)


def test_a_line_without_end_is_refused_not_held(tmp_path):
    path = tmp_path / "names.txt"
    path.write_bytes(b"Smith\n" + b"x" * (data._MAX_LINE + 10))
    with pytest.raises(DataError, match=r"names\.txt:2: a line longer than 65536 bytes"):
        data.load(path)


def test_repeated_lines_are_held_once(tmp_path):
    """Each distinct line is one record; the lines keep their order, counts and first line numbers."""
    d = tmp_path / "names"
    d.mkdir()
    (d / "A.txt").write_text("Bo\nAl\n\nBo\nAl\nAl\n")
    (d / "B.txt").write_text("Al\n")
    ds = data.load(d)
    assert ds.names == ["Bo", "Al", "Bo", "Al", "Al", "Al"] and [r.label for r in ds.records] == ["A"] * 5 + ["B"]
    assert ds.records[0] is ds.records[2]
    assert [(r.name, r.label, c) for r, c in ds.distinct()] == [("Bo", "A", 2), ("Al", "A", 3), ("Al", "B", 1)]
    (d / "A.txt").write_bytes(b"Bo\nAl\nBo\n\xff\n\xff\n")
    with pytest.raises(DataError, match=r"A\.txt:4: not UTF-8"):
        data.load(d)
    tsv = tmp_path / "x.tsv"
    tsv.write_text("name\tlabel\nBo\tA\nname\tlabel\nBo\tA\nAl\n")
    with pytest.raises(DataError, match=r"x\.tsv:5: expected 'name<TAB>label'"):
        data.load(tsv)
    tsv.write_text("name\tlabel\nBo\tA\nname\tlabel\nBo\tA\n")
    assert [(r.name, r.label) for r in data.load(tsv).records] == [("Bo", "A"), ("name", "label"), ("Bo", "A")]
    csv = tmp_path / "g.csv"
    csv.write_text("name,sex,count\nJo,F,2\nJo,M,1\nJo,F,2\n")
    (jo,) = data.load(csv).records
    assert jo.weight == 5 and jo.soft == pytest.approx(0.8)
