"""namemodels.data.births and `namemodels data births`: a by-year file summed per (name, sex) over a span."""

import csv
import gzip

import helpers
import pytest

from namemodels.cli import main
from namemodels.data.births import BirthsError, csv_bytes, parse_years, read_births
from namemodels.errors import UsageError

ROWS = [  # year, name, sex, count
    (1990, "Ana", "F", 10),
    (1990, "Ana", "M", 1),
    (1990, "Bo", "M", 5),
    (2000, "Ana", "F", 7),
    (2000, "Cy", "F", 2),
    (2000, "Bo", "M", 3),
    (2000, "Bo", "F", 4),
    (2010, "Dee", "M", 9),
    (2010, "Ana", "F", 1),
]


def _write(path, rows=ROWS, gz=False, header="year,name,sex,count"):
    text = header + "\n" + "".join(f"{y},{n},{s},{c}\n" for y, n, s, c in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _expected(since=None, until=None):
    out = {}
    for y, n, s, c in ROWS:
        if (since is None or y >= since) and (until is None or y <= until):
            out[(n, s)] = out.get((n, s), 0) + c
    return out


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("span", [(None, None), (None, 2000), (2000, None), (2000, 2000), (1995, 2010)])
def test_sums_over_the_span(tmp_path, gz, span):
    path = _write(tmp_path / ("b.csv.gz" if gz else "b.csv"), gz=gz)
    b = read_births(path, *span)
    assert b.counts == _expected(*span)
    assert b.first_year == {"Ana": 1990, "Bo": 1990, "Cy": 2000, "Dee": 2010}
    assert b.years == (1990, 2010)


def test_by_name_and_new_names(tmp_path):
    b = read_births(_write(tmp_path / "b.csv"), since=2000)
    assert b.by_name() == {"Ana": (8, 0), "Bo": (4, 3), "Cy": (2, 0), "Dee": (0, 9)}
    assert b.new_names(after=1999) == {"Cy", "Dee"}  # first seen in 2000 and 2010, whatever the span


def test_csv_layout_is_first_names_csv():
    data = csv_bytes({("Bo", "M"): 5, ("Ana", "M"): 1, ("Ana", "F"): 10, ("O'Neil, Jr", "F"): 2})
    assert data == b'name,sex,count\nAna,F,10\nAna,M,1\nBo,M,5\n"O\'Neil, Jr",F,2\n'


def test_parse_years():
    assert parse_years("2009-2023") == (2009, 2023)
    assert parse_years("2009-") == (2009, None)
    assert parse_years("-2008") == (None, 2008)
    assert parse_years("2010") == (2010, 2010)
    for bad in ("x", "2010-2000", "20a0"):
        with pytest.raises(UsageError):
            parse_years(bad)


@pytest.mark.parametrize(
    "case,words",
    [
        ("header", ["expected the header"]),
        ("fields", [":3:", "4 fields"]),
        ("sex", [":2:", "sex must be F or M"]),
        ("count", [":2:", "count must be"]),
        ("year", [":2:", "year must be"]),
        ("truncated", ["cut-off"]),
        ("empty", ["empty file"]),
        ("span", ["no births in the years 2050-", "1990-2010"]),
        ("missing", ["no such file"]),
    ],
)
def test_clear_errors(tmp_path, case, words):
    path = tmp_path / "b.csv"
    since = None
    if case == "header":
        _write(path, header="name,sex,count")
    elif case == "fields":
        path.write_text("year,name,sex,count\n1990,Ana,F,1\n1990,Ana,F\n")
    elif case == "sex":
        path.write_text("year,name,sex,count\n1990,Ana,X,1\n")
    elif case == "count":
        path.write_text("year,name,sex,count\n1990,Ana,F,-3\n")
    elif case == "year":
        path.write_text("year,name,sex,count\nnineteen,Ana,F,3\n")
    elif case == "truncated":
        path = tmp_path / "b.csv.gz"
        path.write_bytes(gzip.compress(("year,name,sex,count\n" + "1990,Ana,F,1\n" * 5000).encode())[:-40])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "span":
        _write(path)
        since = 2050
    elif case == "missing":
        path = tmp_path / "nope.csv.gz"
    with pytest.raises(BirthsError) as info:
        read_births(path, since=since)
    for w in words:
        assert w in str(info.value), str(info.value)


def test_cli_writes_the_csv(tmp_path, capsys):
    src = _write(tmp_path / "b.csv.gz", gz=True)
    out = tmp_path / "out.csv"
    assert main(["data", "births", str(src), "--until", "2000", "--out", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["name", "sex", "count"]
    assert {(n, s): int(c) for n, s, c in rows[1:]} == _expected(until=2000)
    assert [r[:2] for r in rows[1:]] == sorted(r[:2] for r in rows[1:])
    # what `train` reads back: the same births per name
    from namemodels.data import loader

    ds = loader.load(out)
    assert {r.name: r.weight for r in ds.records} == {"Ana": 18, "Bo": 12, "Cy": 2}


def test_cli_errors_are_one_line(tmp_path, capsys):
    helpers.fails_one_line(
        capsys, ["data", "births", tmp_path / "nope.csv", "--out", tmp_path / "o.csv"], "no such file"
    )
    src = _write(tmp_path / "b.csv")
    helpers.fails_one_line(
        capsys,
        ["data", "births", src, "--since", "2001", "--until", "2000", "--out", tmp_path / "o.csv"],
        "--since 2001 is after --until 2000",
    )
    helpers.fails_one_line(capsys, ["data", "births", src, "--out", tmp_path / "no" / "o.csv"], "does not exist")
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.skipif(not (helpers.SHARED_DATA / "first_names_by_year.csv.gz").exists(), reason="no shared data")
def test_all_years_are_first_names_csv(tmp_path):
    """Summed over every year, the by-year file gives first_names.csv's counts."""
    b = read_births(helpers.SHARED_DATA / "first_names_by_year.csv.gz")
    with open(helpers.SHARED_DATA / "first_names.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert b.counts == {(n, s): int(c) for n, s, c in rows}
