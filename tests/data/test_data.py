import collections
import csv
import hashlib
import json
import os
import stat
import zipfile

import pytest

from namemodels.cli import main
from namemodels.data import loader
from namemodels.data.download import download
from namemodels.data.records import DataError, NameDataset, NameRecord
from namemodels.data.split import grouped_split
from namemodels.data.stats import stats
from namemodels.errors import UsageError
from namemodels.text import ascii_fold, check_name

SURNAMES = {
    "Polish": ["Ślusarski", "Nowak", "Kowalski", "", "Żak"],
    "German": ["Müller", "Schmidt", "Nowak", "  "],
    "Irish": ["O'Neil", "Murphy"],
}


def make_dir(root):
    d = root / "names"
    d.mkdir()
    for lang, names in SURNAMES.items():
        (d / f"{lang}.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    return d


def make_zip(path, files):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


# ------------------------------------------------------------------------------------------ folding


def test_ascii_fold():
    assert ascii_fold("Ślusàrski") == "Slusarski"
    assert ascii_fold("O'Néàl-Smith, Jr.") == "O'Neal-Smith, Jr."
    assert ascii_fold("Иванов") == "Ivanov"  # other scripts: transliterated (anyascii)
    assert ascii_fold("a1:b/c") == "abc"
    assert ascii_fold("Straße") == "Strasse"  # letters without a decomposition: namemodels.text


# ------------------------------------------------------------------------------------------ loaders


def test_load_directory(tmp_path):
    ds = loader.load(make_dir(tmp_path))
    assert ds.kind == "labeled" and ds.labels == ["German", "Irish", "Polish"]
    assert len(ds) == 9  # blank lines skipped
    assert "Slusarski" in ds.names and "Zak" in ds.names and "Muller" in ds.names
    assert [ds.labels[i] for i in ds.label_ids] == [r.label for r in ds.records]
    sub = ds.subset([0, 2])
    assert len(sub) == 2 and sub.labels == ds.labels and sub.kind == "labeled"


def test_load_zip(tmp_path):
    files = {f"data/names/{lang}.txt": "\n".join(n) for lang, n in SURNAMES.items()}
    files["data/eng-fra.txt"] = "Go.\tVa !\n"  # the tutorial's zip holds another .txt beside names/
    ds = loader.load(make_zip(tmp_path / "data.zip", files))
    assert ds.labels == ["German", "Irish", "Polish"] and len(ds) == 9
    assert ds.names == loader.load(make_dir(tmp_path)).names


def test_load_tsv(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text("name\tlabel\nMüller\tGerman\n\nNowak\tPolish\n", encoding="utf-8")
    ds = loader.load(p)
    assert ds.names == ["Muller", "Nowak"] and ds.labels == ["German", "Polish"] and ds.label_ids == [0, 1]
    p.write_text("Müller\tGerman\nNowak Polish\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.tsv:2"):
        loader.load(p)
    p.write_text("Müller\t\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.tsv:1: empty label"):
        loader.load(p)


def test_label_tables_are_read_as_csv(tmp_path):
    """A ``name,label`` .csv and a .tsv are rows as Python's csv module reads them (quoting included)."""
    p = tmp_path / "x.csv"
    p.write_text('name,label\n"Smith, Jr",English\n"O""Neil",Irish\nNowak,Polish\n', encoding="utf-8")
    assert [(r.name, r.label) for r in loader.load(p).records] == [
        (ascii_fold(row[0]).strip(), row[1]) for row in list(csv.reader(p.open(newline="")))[1:]
    ]
    p = tmp_path / "x.tsv"
    p.write_text('"Müller"\tGerman\nO"Brien\tIrish\n', encoding="utf-8")
    assert [(r.name, r.label) for r in loader.load(p).records] == [
        (ascii_fold(row[0]).strip(), row[1]) for row in csv.reader(p.open(newline=""), delimiter="\t")
    ]
    assert loader.load(p).names[0] == "Muller"  # the quotes were CSV quoting, not part of the name


def test_download_writes_the_csv_with_the_umask_mode(tmp_path):
    z = make_zip(tmp_path / "names.zip", {"yob1880.txt": "Mary,F,7065\n"})
    old = os.umask(0o027)
    try:
        dest = download("first-names", tmp_path / "out", url=z.as_uri(), progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o640 and os.listdir(tmp_path / "out") == ["first_names.csv"]


def test_load_gender_csv(tmp_path):
    p = tmp_path / "first.csv"
    p.write_text("name,sex,count\nMary,F,90\nMary,M,10\nJordan,F,50\nJordan,M,50\nJohn,M,7\n")
    ds = loader.load(p)
    assert ds.kind == "gender" and ds.labels == ["F", "M"]
    by = {r.name: r for r in ds.records}
    assert by["Mary"].label == "F" and by["Mary"].soft == pytest.approx(0.9) and by["Mary"].weight == 100
    assert by["Jordan"].label == "F" and by["Jordan"].soft == 0.5  # tie -> F
    assert by["John"].label == "M" and by["John"].soft == 0.0 and by["John"].weight == 7


@pytest.mark.parametrize(
    "text, where",
    [
        ("name,sex,count\nMary,F,9\nMary,X,1\n", ":3: sex must be F or M"),
        ("name,sex,count\nMary,F\n", ":2: expected 3 fields"),
        ("name,sex,count\nMary,F,many\n", ":2: count must be"),
        ("nom,sexe,nombre\nMary,F,9\n", ":1: expected the header"),
    ],
)
def test_bad_csv_lines(tmp_path, text, where):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(DataError, match="bad.csv" + where):
        loader.load(p)


def test_load_lines(tmp_path):
    p = tmp_path / "elements.txt"
    p.write_text("Hydrogen\n\nHelium\nLithium\n")
    ds = loader.load(p)
    assert ds.kind == "lines" and ds.names == ["Hydrogen", "Helium", "Lithium"] and ds.labels == []
    assert all(r.label is None for r in ds.records) and ds.label_ids == [-1, -1, -1]


def test_missing_and_empty(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        loader.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no <Label>.txt"):
        loader.load(tmp_path / "empty")
    (tmp_path / "e.txt").write_text("\n  \n")
    with pytest.raises(DataError, match="empty file"):
        loader.load(tmp_path / "e.txt")
    (tmp_path / "bin.txt").write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match=r"bin\.txt:2: not UTF-8"):
        loader.load(tmp_path / "bin.txt")
    assert issubclass(DataError, UsageError)


def test_data_sha256(tmp_path):
    d = make_dir(tmp_path)
    f = d / "Irish.txt"
    assert loader.data_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    h1 = loader.data_sha256(d)
    assert h1 == loader.data_sha256(d) and len(h1) == 64
    f.write_text("O'Neil\n")
    assert loader.data_sha256(d) != h1


# ------------------------------------------------------------------------------------------ split


def synthetic(n_per_label=200, dup=True):
    records = []
    for li, label in enumerate(["A", "B", "C"]):
        for i in range(n_per_label * (li + 1)):
            records.append(NameRecord(f"{label}name{i}", label))
            if dup and i % 10 == 0:  # repeats, some in another case, some under another label
                records.append(NameRecord(f"{label}NAME{i}", label))
                records.append(NameRecord(f"{label}name{i}", "A"))
    return NameDataset(records, ["A", "B", "C"], "labeled", "synthetic")


def test_grouped_split():
    ds = synthetic()
    tr, va, te = grouped_split(ds, seed=1)
    assert len(tr) + len(va) + len(te) == len(ds)
    keys = [{n.casefold() for n in s.names} for s in (tr, va, te)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    total = collections.Counter(r.label for r in ds.records)
    for part, frac in ((tr, 0.8), (va, 0.1), (te, 0.1)):
        c = collections.Counter(r.label for r in part.records)
        for label in "BC":  # stratified (A also receives the other labels' repeats)
            assert c[label] / total[label] == pytest.approx(frac, abs=0.03)
    again = grouped_split(ds, seed=1)
    assert [s.names for s in again] == [s.names for s in (tr, va, te)]
    other = grouped_split(ds, seed=2)
    assert [s.names for s in other] != [s.names for s in (tr, va, te)]
    # independent of the order of the records
    rev = NameDataset(ds.records[::-1], ds.labels, ds.kind, ds.source)
    assert [sorted(s.names) for s in grouped_split(rev, seed=1)] == [sorted(s.names) for s in (tr, va, te)]


def test_split_ungrouped_and_bad_fractions():
    ds = synthetic(50, dup=False)
    tr, va, te = grouped_split(ds, fractions=(0.5, 0.5, 0.0), group=False)
    assert len(te) == 0 and abs(len(tr) - len(va)) <= 3
    with pytest.raises(UsageError):
        grouped_split(ds, fractions=(0.9, 0.2))
    with pytest.raises(UsageError):
        grouped_split(ds, fractions=(1.0, -0.1, 0.1))


# ------------------------------------------------------------------------------------------ check_name


@pytest.mark.parametrize(
    "name, expected",
    [
        ("  Dostoevsky ", "Dostoevsky"),
        ("Ślusarski", "Slusarski"),
        ("O'Neil", "O'Neil"),
        ("de  la Cruz", "de la Cruz"),
        ("Jean-Luc", "Jean-Luc"),
    ],
)
def test_check_name_ok(name, expected):
    assert check_name(name) == expected


def test_check_name_max_len():
    assert check_name("abcdef", max_len=6) == "abcdef"
    with pytest.raises(UsageError):
        check_name("abcdefg", max_len=6)


# ------------------------------------------------------------------------------------------ stats


def test_stats(tmp_path):
    st = stats(loader.load(make_dir(tmp_path)))
    assert st["classes"] == {"German": 3, "Irish": 2, "Polish": 4}
    assert st["records"] == 9 and st["unique_names"] == 8 and st["names_with_several_labels"] == 1
    assert sum(st["length_histogram"].values()) == 9 and st["length_histogram"]["3"] == 1  # Zak
    assert st["letters"]["a"] > 0 and list(st["letters"]) == sorted(st["letters"], key=lambda c: -st["letters"][c])
    json.dumps(st)


# ------------------------------------------------------------------------------------------ download


def test_download_surnames(tmp_path, capsys):
    files = {f"data/names/{lang}.txt": "\n".join(n) + "\n" for lang, n in SURNAMES.items()}
    files["data/eng-fra.txt"] = "Go.\tVa !\n"
    z = make_zip(tmp_path / "data.zip", files)
    out = tmp_path / "out"
    dest = download("surnames", out, url=z.as_uri(), progress=False)
    assert dest == out / "names"
    assert sorted(p.name for p in dest.iterdir()) == ["German.txt", "Irish.txt", "Polish.txt"]
    assert (dest / "Polish.txt").read_text(encoding="utf-8").startswith("Ślusarski")  # originals kept
    assert hashlib.sha256(z.read_bytes()).hexdigest() in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["names"]  # no temporary files left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o777 & ~umask  # as mkdir makes it, not mkdtemp's 0700
    assert loader.load(dest).labels == ["German", "Irish", "Polish"]
    # again, pinned and from a plain path: replaces the directory
    sha = hashlib.sha256(z.read_bytes()).hexdigest()
    assert download("surnames", out, url=str(z), progress=True, sha256=sha.upper()) == dest
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        download("surnames", out, url=z.as_uri(), progress=False, sha256="0" * 64)
    assert [p.name for p in out.iterdir()] == ["names"]


def test_download_first_names(tmp_path):
    z = make_zip(
        tmp_path / "names.zip",
        {
            "yob1880.txt": "Mary,F,7065\nJohn,M,9655\nJohn,F,46\n",
            "yob1881.txt": "Mary,F,6919\nJordan,M,5\n",
            "NationalReadMe.pdf": "pdf",
        },
    )
    dest = download("first-names", tmp_path / "out", url=z.as_uri(), progress=False)
    assert dest.name == "first_names.csv"
    assert dest.read_text().splitlines() == ["name,sex,count", "John,F,46", "John,M,9655", "Jordan,M,5", "Mary,F,13984"]
    ds = loader.load(dest)
    assert ds.kind == "gender" and len(ds) == 3


def test_download_errors(tmp_path):
    with pytest.raises(DataError, match=r"could not reach .*--url FILE"):
        download("surnames", tmp_path / "o", url=(tmp_path / "missing.zip").as_uri(), progress=False)
    (tmp_path / "notzip.zip").write_text("<html>not found</html>")
    with pytest.raises(DataError, match="not a valid zip"):
        download("surnames", tmp_path / "o", url=(tmp_path / "notzip.zip").as_uri(), progress=False)
    z = make_zip(tmp_path / "other.zip", {"readme.md": "x"})
    with pytest.raises(DataError, match="names/<Language>.txt"):
        download("surnames", tmp_path / "o", url=z.as_uri(), progress=False)
    with pytest.raises(DataError, match="yob"):
        download("first-names", tmp_path / "o", url=z.as_uri(), progress=False)
    bad = make_zip(tmp_path / "bad.zip", {"yob1900.txt": "Mary,F,10\nMary;F;3\n"})
    with pytest.raises(DataError, match=r"yob1900\.txt:2"):
        download("first-names", tmp_path / "o", url=bad.as_uri(), progress=False)
    with pytest.raises(DataError, match="unknown dataset"):
        download("pets", tmp_path / "o")
    assert list((tmp_path / "o").iterdir()) == []  # nothing half-written


# ------------------------------------------------------------------------------------------ CLI


def test_cli_stats(tmp_path, capsys):
    d = make_dir(tmp_path)
    assert main(["data", "stats", str(d)]) == 0
    out = capsys.readouterr().out
    assert "9 labeled records" in out and "Polish" in out
    assert main(["data", "stats", str(d), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["classes"]["Polish"] == 4
    png = tmp_path / "plots" / "stats.png"
    assert main(["data", "stats", str(d), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot:" in capsys.readouterr().out
    lines = tmp_path / "el.txt"
    lines.write_text("Hydrogen\nHelium\n")
    assert main(["data", "stats", str(lines), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "lines"


def test_cli_errors_exit_2(tmp_path, capsys):
    assert main(["data", "stats", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
    assert (
        main(
            [
                "data",
                "download",
                "surnames",
                "--to",
                str(tmp_path / "o"),
                "--url",
                (tmp_path / "missing.zip").as_uri(),
                "--quiet",
            ]
        )
        == 2
    )
    assert "could not reach" in capsys.readouterr().err


def test_cli_download(tmp_path, capsys):
    z = make_zip(tmp_path / "names.zip", {"yob2000.txt": "Ava,F,3\n"})
    assert (
        main(
            [
                "data",
                "download",
                "first-names",
                "--to",
                str(tmp_path / "o"),
                "--url",
                z.as_uri(),
                "--sha256",
                hashlib.sha256(z.read_bytes()).hexdigest(),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip().endswith("first_names.csv")


# ------------------------------------------------------------------------------------------ real data


def test_real_data(shared_data):
    ds = loader.load(shared_data / "names")
    assert len(ds.labels) == 18 and "Russian" in ds.labels and "Vietnamese" in ds.labels
    assert 15000 < len(ds) < 21000
    assert all(n.isascii() for n in ds.names)
    tr, va, te = grouped_split(ds)
    assert not ({n.casefold() for n in tr.names} & {n.casefold() for n in te.names})
    assert set(r.label for r in te.records) == set(ds.labels)
    g = loader.load(shared_data / "first_names.csv")
    assert g.kind == "gender" and 80_000 < len(g) < 120_000
    share_f = sum(r.label == "F" for r in g.records) / len(g)
    assert 0.5 < share_f < 0.75  # more distinct female names than male ones
    by = {r.name: r for r in g.records}
    assert by["Mary"].label == "F" and by["John"].label == "M"
    assert sum(0.2 < r.soft < 0.8 for r in g.records) > 100  # names given to both sexes
    el = loader.load(shared_data / "elements.txt")
    assert el.kind == "lines" and len(el) == 118
