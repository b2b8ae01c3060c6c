"""The bulk readers (:func:`namemodels.bulk.open_source`) against Python's ``csv`` module: one row out
per row in, whatever the file holds -- quotes, separators and line breaks inside fields, a BOM, CRLF
or lone CR line breaks, empty lines, bad UTF-8, and quotes that never close.

The reference reads the decoded text with ``io.StringIO(text, newline="")`` and ``csv.reader``, as
the csv module's documentation says to read a file. Its one deviation is the rule for a quote that
never closes (the csv module would read the rest of the file into that field): the record is then its
first line alone, and reading starts again at the next line."""

import csv
import io
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from namemodels import bulk
from namemodels.cli import main
from namemodels.errors import UsageError


def read_all(data: bytes, suffix: str, column=None):
    """Every row ``open_source`` gives for ``data`` in a ``suffix`` file: (header, names, fields, lines, errors)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "input" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        names, fields, lines, errors = [], [], [], {}
        with bulk.open_source(path, column) as source:
            for chunk in source.chunks(7):  # small chunks: records cross chunk boundaries
                errors.update((len(names) + i, e) for i, e in chunk.errors.items())
                names += chunk.names
                fields += chunk.fields or [[n] for n in chunk.names]
                lines += chunk.lines
        return source.header, names, fields, lines, errors


def _alone(text, delimiter):
    try:
        return next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:
        return []


def reference(text: str, delimiter: str):
    """(fields, first line number, unclosed, lines) per record of ``text``, as described above."""
    lines = io.StringIO(text, newline="").readlines()
    records, k = [], 0
    while k < len(lines):
        reader = csv.reader(lines[k:], delimiter=delimiter)
        used = 0
        for record in reader:
            start, span = k + used, reader.line_num - used
            own = lines[start : start + span]
            # unclosed: a line put after the record changes it (the csv module read on into it)
            if next(csv.reader(own + ["x\n"], delimiter=delimiter)) != record:
                records.append((_alone(lines[start].rstrip("\r\n"), delimiter), start + 1, True, own[:1]))
                k = start + 1
                break
            records.append((record, start + 1, False, own))
            used = reader.line_num
        else:
            k = len(lines)
    return records


FIELD = st.lists(st.sampled_from(list("ab \"',\t\n\r;xé") + ["Li", "\u017d"]), max_size=5).map("".join)


@st.composite
def delimited_files(draw):
    """(bytes, delimiter, suffix): rows written by csv.writer or joined raw (any quoting, unclosed
    quotes too), then a BOM, CRLF, empty lines and bad UTF-8 bytes sprinkled in."""
    fmt = draw(st.sampled_from(["csv", "tsv"]))
    delimiter = bulk.DELIMITERS[fmt]
    width = draw(st.integers(1, 3))
    header = ["name", "id", "note"][:width]
    rows = draw(st.lists(st.lists(FIELD, min_size=width - 1, max_size=width + 1), max_size=12))
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    if draw(st.booleans()):
        buf = io.StringIO()
        quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
        csv.writer(buf, delimiter=delimiter, lineterminator=terminator, quoting=quoting).writerows([header] + rows)
        text = buf.getvalue()
    else:
        text = terminator.join(delimiter.join(r) for r in [header] + rows) + draw(st.sampled_from(["", terminator]))
    data = text.encode("utf-8")
    for _ in range(draw(st.integers(0, 3))):  # empty lines, bad bytes, lone CRs anywhere after the header
        cut = len(header) and len(delimiter.join(header).encode()) + len(terminator)
        at = draw(st.integers(min(cut, len(data)), len(data)))
        data = data[:at] + draw(st.sampled_from([b"\n", b"\r\n", b"\xff", b"\xc3", b"\r"])) + data[at:]
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data, delimiter, "." + fmt


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delimited_files())
def test_csv_and_tsv_rows_are_the_csv_modules(case):
    data, delimiter, suffix = case
    ref = reference(data.decode("utf-8-sig", "replace"), delimiter)
    if not ref or ref[0][2]:  # no header line, or one whose quote never closes: refused
        with pytest.raises(UsageError):
            read_all(data, suffix)
        return
    header = ref[0][0]
    if any("\ufffd" in line for line in ref[0][3]):
        with pytest.raises(UsageError, match="UTF-8"):
            read_all(data, suffix)
        return
    got_header, names, fields, lines, errors = read_all(data, suffix)
    assert got_header == header
    rows = ref[1:]
    assert len(fields) == len(rows)  # one row out per row in
    assert lines == [line for _, line, _, _ in rows]  # each where it starts
    width = len(header)
    index = [h.strip().lower() for h in header].index("name") if "name" in [h.strip().lower() for h in header] else 0
    for i, (want, line, unclosed, own) in enumerate(rows):
        bad = unclosed or len(want) != width or any("\ufffd" in s for s in own)
        assert (i in errors) == bad, (i, want, errors.get(i))
        assert fields[i] == ((want + [""] * width)[:width] if bad else want)  # every field as csv reads it
        assert names[i] == fields[i][index]
        if unclosed:
            assert f"quote opened on line {line} is not closed" in errors[i]


@st.composite
def plain_files(draw):
    pieces = draw(
        st.lists(
            st.sampled_from(
                [b"Li", b"Hinton", b"\n", b"\r\n", b"\r", b"\xff", b"\xc3", b'"', b",", b"\t", "\u017d".encode(), b" "]
            ),
            max_size=30,
        )
    )
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + b"".join(pieces)


@settings(max_examples=100, deadline=None)
@given(plain_files())
def test_plain_rows_are_the_lines(data):
    """A plain file: a row per line (LF, or CR LF, ends a line; quotes and separators are letters)."""
    raw = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    want = raw.split(b"\n")
    if want[-1] == b"":
        want.pop()
    want = [w[:-1] if w.endswith(b"\r") else w for w in want]
    _, names, _, lines, errors = read_all(data, ".txt")
    assert names == [w.decode("utf-8", "replace") for w in want]
    assert lines == list(range(1, len(want) + 1))
    assert sorted(errors) == [
        i
        for i, w in enumerate(want)
        if b"\xff" in w or b"\xc3" in w and w.decode("utf-8", "replace") != w.decode("utf-8", "ignore")
    ]


# ---- a quote that never closes, end to end ----------------------------------------------------------
def _people(n, bad_at, delimiter=","):
    """``n`` rows ``id,name,city``; the row with id ``bad_at`` opens a quote it never closes."""
    lines = [delimiter.join(["id", "name", "city"])]
    for i in range(n):
        name = ["Hinton", "Nguyen", "Schmidt", "Li"][i % 4]
        lines.append(delimiter.join([str(i), f'"{name}' if i == bad_at else name, "Leeds"]))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("bad_at, fmt", [(55, "csv"), (19_990, "csv"), (7, "tsv")])
def test_unclosed_quote_swallows_no_rows(tmp_path, capsys, bad_at, fmt):
    """20,000 rows with one unclosed quote (early: the csv module's field limit is reached; near the
    end: the file ends first): 20,000 rows out, in order, one bad, and the summary adds up."""
    n = 20_000
    src = tmp_path / f"people.{fmt}"
    src.write_text(_people(n, bad_at, bulk.DELIMITERS[fmt]), encoding="utf-8")
    out = tmp_path / "scored.csv"
    code = main(["predict", "--input", str(src), "--output", str(out), "--top", "1"])
    err = capsys.readouterr().err
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert code == 2 and len(rows) == n
    assert [r["id"] for r in rows] == [str(i) for i in range(n)]
    assert [r["city"] for r in rows] == ["Leeds"] * bad_at + [""] + ["Leeds"] * (n - bad_at - 1)  # its own line only
    assert [i for i, r in enumerate(rows) if r["error"]] == [bad_at]
    assert f"quote opened on line {bad_at + 2} is not closed" in rows[bad_at]["error"]
    assert f"{n - 1:,} of {n:,} rows scored" in err and "; 1 could not be scored" in err
    assert f"first at line {bad_at + 2}" in err


def test_unclosed_quote_without_the_csv_field_limit(tmp_path, monkeypatch):
    """A program that lifted csv.field_size_limit: the record is still cut at MAX_LINE bytes."""
    monkeypatch.setattr(bulk, "MAX_LINE", 2_000)
    monkeypatch.setattr(bulk, "BLOCK", 1_000)
    old = csv.field_size_limit(1 << 30)
    try:
        _, names, fields, lines, errors = read_all(_people(5_000, 3).encode(), ".csv")
    finally:
        csv.field_size_limit(old)
    assert [f[0] for f in fields] == [str(i) for i in range(5_000)] and list(errors) == [3]
    assert "quote opened on line 5 is not closed within 2,000 bytes" in errors[3]


def test_unclosed_quote_in_the_header_is_refused(tmp_path, capsys):
    src = tmp_path / "t.csv"
    src.write_text('id,"name\n1,Li\n', encoding="utf-8")
    assert main(["predict", "--input", str(src)]) == 2
    err = capsys.readouterr().err
    assert "header line opens a quote that is never closed" in err and len(err.strip().splitlines()) == 1
