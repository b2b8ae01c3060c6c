"""Bulk scoring: length-bucketed chunks, predict_iter / predict_frame, pickling, and files and
streams through the CLI (formats, pass-through, order, bad rows, pipes, interruption).

The reference for every prediction is the model's backend run on one name at a time (a batch of
one: no padding, no sorting, no de-duplication)."""

import csv
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import namemodels
from namemodels import bulk
from namemodels.batching import encode_batch
from namemodels.cli import main
from namemodels.text import check_name

NAMES = [
    "Hinton",
    "Nguyen",
    "Schmidt",
    "O'Neill",
    "Li",
    "Papadopoulos",
    "Van der Berg",
    "Hinton",
    "Kowalski",
    "Abbas",
    "Alexandropoulos",
    "Ng",
    "Li",
    "Yamamoto",
]
BAD = {"": "empty name", "Rafaj1": "contains digits", "   ": "empty name", "Smith\u263a": "not allowed in a name"}
CLI = [sys.executable, "-m", "namemodels.cli"]


def one_at_a_time(model, names):
    """(N, C) log-probabilities, each name run alone through the backend, then given the predictor's rule
    (namemodels/inference/name_table.py): tempered by the calibration, a name of the model's name table
    combined with its counts, and marked letters of the name as typed weighed in."""
    from namemodels.inference.name_table import name_key

    rule, out = model.rule, []
    for n in names:
        logp = model.backend.logprobs(*encode_batch(model.tokenizer, [check_name(n)]))
        row = model.table.lookup([name_key(check_name(n), model.table.lowercase)])
        if row[0] >= 0:
            logp = rule.known(logp, model.table.rows(row)[0], model.table.recent_rows(row))
        else:
            logp = rule.model(logp)
        note = None if n.isascii() else rule.evidence(n)
        if note:
            logp = rule.adjust(logp[0], note)[None]
        out.append(np.asarray(logp, np.float32))
    return np.concatenate(out)


def why(name):
    """check_name's message for a bad name."""
    with pytest.raises(namemodels.errors.UsageError) as info:
        check_name(name)
    return str(info.value)


def top_labels(model, logp, k):
    order = np.argsort(-logp, 1)[:, :k]
    return [[(model.labels[j], float(row[j])) for j in idx] for row, idx in zip(logp, order)]


# ---- the predictor: buckets, chunks, iteration, frames, pickling --------------------------------
def test_bucketed_chunks_equal_one_name_at_a_time(shipped_surnames):
    rng = np.random.default_rng(0)
    names = [NAMES[i] for i in rng.integers(0, len(NAMES), 200)]
    ref = one_at_a_time(shipped_surnames, names)
    np.testing.assert_allclose(shipped_surnames.predict_logproba(names), ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(shipped_surnames.predict_logproba(names, batch=3), ref, rtol=0, atol=1e-5)
    got = list(shipped_surnames.predict_iter(iter(names), top=2, chunk=7, batch=2))
    assert [[lab for lab, _ in r] for r in got] == [[lab for lab, _ in r] for r in top_labels(shipped_surnames, ref, 2)]
    np.testing.assert_allclose([[p for _, p in r] for r in got], np.sort(ref, 1)[:, ::-1][:, :2], atol=1e-5)


def test_each_distinct_name_runs_once_in_length_order(shipped_surnames, monkeypatch):
    seen = []
    run = shipped_surnames.backend.logprobs

    def spy(ids, lengths):
        seen.append(lengths.tolist())
        return run(ids, lengths)

    monkeypatch.setattr(shipped_surnames.backend, "logprobs", spy)
    names = NAMES * 5 + ["Rafaj1", ""]
    scored = shipped_surnames.score_chunk(names, batch=4)
    distinct_valid = {check_name(n) for n in NAMES}
    unseen = [n for n in distinct_valid if shipped_surnames.table.lookup([n.lower()])[0] < 0]  # the others: the table
    flat = [n for batch in seen for n in batch]
    assert 0 < len(flat) == len(unseen)  # duplicates, bad and known names never run
    assert flat == sorted(flat)  # batches in length order
    assert all(len(b) <= 4 for b in seen)
    assert [str(e) for e in scored.errors if e is not None] == [why("Rafaj1"), why("")]
    expanded = scored.expand()
    assert expanded.shape == (len(names), len(shipped_surnames.labels))
    assert np.isnan(expanded[-2:]).all() and np.isfinite(expanded[:-2]).all()
    np.testing.assert_allclose(expanded[: len(NAMES)], one_at_a_time(shipped_surnames, NAMES), atol=1e-5)


def test_encode_batch_is_tokenizer_encode():
    from namemodels.tokenizer import CharTokenizer

    rng = np.random.default_rng(1)
    alphabet = list("abcXYZjk' -") + ["é", "ß", "Ж", "\t"]
    for lowercase in (False, True):
        tok = CharTokenizer("abcdefghijKLM' -", lowercase=lowercase)
        for _ in range(100):
            names = ["".join(rng.choice(alphabet, rng.integers(0, 9))) for _ in range(rng.integers(1, 6))]
            for bos in (False, True):
                for eos in (False, True):
                    ids, lengths = encode_batch(tok, names, bos, eos)
                    seqs = [tok.encode(n, bos=bos, eos=eos) for n in names]
                    assert lengths.tolist() == [len(s) for s in seqs]
                    for row, s in zip(ids, seqs):
                        assert row[: len(s)].tolist() == s and (row[len(s) :] == tok.pad_id).all()


def test_line_blocks_are_a_plain_split(monkeypatch):
    """Tiny blocks and a tiny line limit: whatever the block boundaries, the lines are those of
    ``bytes.split(b"\\n")`` (CR LF ends a line too), undecodable and over-long lines named."""
    monkeypatch.setattr(bulk, "BLOCK", 5)
    monkeypatch.setattr(bulk, "MAX_LINE", 12)
    rng = np.random.default_rng(2)
    pieces = [b"Li", b"Hinton", b"\n", b"\r\n", b"\xff", "Mu\u00f1oz".encode(), b"x" * 9, b"", b" "]
    for _ in range(400):
        data = b"".join(pieces[i] for i in rng.integers(0, len(pieces), rng.integers(0, 12)))
        got, errors = [], {}
        for lines, errs in bulk.line_blocks(io.BytesIO(data)):
            errors.update((len(got) + i, e) for i, e in errs.items())
            got += lines
        raw = data.split(b"\n")
        if raw[-1] == b"":
            raw.pop()
        want, why = [], {}
        for i, r in enumerate(raw):
            r = r[:-1] if r.endswith(b"\r") else r
            if len(raw[i]) > 12:
                want.append("")
                why[i] = "longer than 12 bytes"
                continue
            want.append(r.decode("utf-8", "replace"))
            try:
                r.decode("utf-8")
            except UnicodeDecodeError:
                why[i] = "not valid UTF-8"
        assert got == want, data
        assert sorted(errors) == sorted(why) and all(why[i] in errors[i] for i in why), data


def test_predict_iter_is_lazy(shipped_surnames):
    taken = []

    def names():
        for i in range(10_000):
            taken.append(i)
            yield NAMES[i % len(NAMES)]

    it = shipped_surnames.predict_iter(names(), top=1, chunk=100)
    first = next(it)
    assert len(taken) <= 101 and first[0][0] == shipped_surnames.predict([NAMES[0]], top=1)[0][0][0]


def test_predict_frame(shipped_surnames, shipped_gender):
    pd = pytest.importorskip("pandas")
    names = NAMES + list(BAD)
    df = pd.DataFrame({"id": range(len(names)), "surname": names, "label": "x"})
    out = shipped_surnames.predict_frame(df, "surname", top=2)
    assert list(out.columns) == [
        "id",
        "surname",
        "label",
        "predicted_label",
        "predicted_logprob",
        "predicted_label_2",
        "predicted_logprob_2",
        "predicted_source",
        "predicted_count",
        "predicted_error",
    ]
    assert out["id"].tolist() == list(range(len(names))) and out["label"].tolist() == ["x"] * len(names)
    ref = top_labels(shipped_surnames, one_at_a_time(shipped_surnames, NAMES), 2)
    assert out["predicted_label"].tolist()[: len(NAMES)] == [r[0][0] for r in ref]
    assert out["predicted_label_2"].tolist()[: len(NAMES)] == [r[1][0] for r in ref]
    np.testing.assert_allclose(out["predicted_logprob"][: len(NAMES)], [r[0][1] for r in ref], atol=1e-5)
    bad = out.iloc[len(NAMES) :]
    assert bad["predicted_label"].isna().all() and bad["predicted_logprob"].isna().all()
    assert all(why in err for why, err in zip(BAD.values(), bad["predicted_error"]))
    assert out["predicted_error"][: len(NAMES)].isna().all()

    g = shipped_gender.predict_frame(pd.DataFrame({"name": ["Maria", "John", None]}), "name", kind="gender")
    assert list(g.columns) == ["name", "label", "probability", "source", "count", "error"]
    p_female = np.exp(one_at_a_time(shipped_gender, ["Maria", "John"])[:, shipped_gender.labels.index("F")])
    assert g["label"].tolist()[:2] == ["F" if p >= 0.5 else "M" for p in p_female]
    np.testing.assert_allclose(g["probability"][:2], np.maximum(p_female, 1 - p_female), atol=1e-5)
    assert "must be text" in g["error"][2]
    with pytest.raises(namemodels.errors.UsageError, match="not a gender model"):
        shipped_surnames.predict_frame(df, "surname", kind="gender")
    with pytest.raises(namemodels.errors.UsageError, match="no column 'nope'"):
        shipped_surnames.predict_frame(df, "nope")


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m: m.predict(None), "names must be a name (str) or a list"),
        (lambda m: m.predict(5, top=1), "got int 5"),
        (lambda m: m.predict_logproba(None), "names must be"),
        (lambda m: next(m.predict_iter(None)), "names must be"),
        (lambda m: namemodels.load(None), "load needs a shipped model's name ('first-names', 'gender', 'surnames'"),
        (
            lambda m: m.predict_frame(["Hinton"], "name"),
            "needs a pandas DataFrame, got list; for a list of names use predict",
        ),
    ],
)
def test_api_misuse_says_what_to_pass(shipped_surnames, call, words):
    """Wrong types (which raised TypeError or AttributeError from deep inside) are a UsageError that
    says what to pass, and still a TypeError for code that caught that."""
    pytest.importorskip("pandas")
    with pytest.raises(namemodels.errors.UsageError, match=re.escape(words)) as info:
        call(shipped_surnames)
    assert isinstance(info.value, TypeError)


def test_pickle_round_trip_in_a_new_process(tmp_path, shipped_surnames):
    """The pickle carries the ONNX model: it unpickles in a fresh process after the model's
    directory is gone, and gives the same numbers."""
    shutil.copytree(shipped_surnames.directory, tmp_path / "model")
    model = namemodels.load(tmp_path / "model", threads=1)
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(model))
    shutil.rmtree(tmp_path / "model")
    code = (
        "import pickle, sys, numpy as np; p = pickle.load(open(sys.argv[1], 'rb')); "
        "np.save(sys.argv[2], p.predict_logproba(sys.argv[3:]))"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.pkl"), str(tmp_path / "out.npy"), *NAMES], check=True)
    assert np.array_equal(np.load(tmp_path / "out.npy"), shipped_surnames.predict_logproba(NAMES))
    again = pickle.loads(pickle.dumps(pickle.loads((tmp_path / "p.pkl").read_bytes())))
    assert again.predict(NAMES, top=3) == shipped_surnames.predict(NAMES, top=3)


# ---- the CLI on files -----------------------------------------------------------------------------
def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def parse(text, fmt):
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    rows = list(csv.reader(io.StringIO(text), delimiter="\t" if fmt == "tsv" else ","))
    return [dict(zip(rows[0], r)) for r in rows[1:]]


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_plain_file_every_output_format(tmp_path, capsys, shipped_surnames, fmt):
    src = tmp_path / "names.txt"
    src.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "predict", "--input", str(src), "--format", fmt, "--top", "2")
    assert code == 0 and f"{len(NAMES)} of {len(NAMES)} rows scored" in err
    rows = parse(out, fmt)
    ref = top_labels(shipped_surnames, one_at_a_time(shipped_surnames, NAMES), 2)
    assert [r["name"] for r in rows] == NAMES  # order kept, duplicates too
    assert [(r["label"], r["label_2"]) for r in rows] == [(a[0], b[0]) for a, b in ref]
    np.testing.assert_allclose([float(r["logprob"]) for r in rows], [a[1] for a, _ in ref], atol=2e-6)
    assert all(r["error"] in ("", None) for r in rows)


def test_csv_and_tsv_columns_carried_through(tmp_path, capsys, shipped_surnames):
    rows = [["1", "Hinton", 'London, "UK"'], ["2", "Nguyen", "Hanoi"], ["3", "Rossi", ""]]
    for suffix, delim in ((".csv", ","), (".tsv", "\t"), (".dat", ",")):
        src = tmp_path / f"people{suffix}"
        with open(src, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter=delim).writerows([["id", "surname", "city"]] + rows)
        out_path = tmp_path / "out.csv"
        code, _, _ = run_cli(
            capsys, "predict", "--input", str(src), "--column", "surname", "--output", str(out_path), "--top", "1"
        )
        assert code == 0
        got = list(csv.reader(out_path.open(encoding="utf-8")))
        assert got[0] == ["id", "surname", "city", "label", "logprob", "source", "count", "error"]
        assert [r[:3] for r in got[1:]] == rows
        assert [r[3] for r in got[1:]] == [
            r[0][0] for r in top_labels(shipped_surnames, one_at_a_time(shipped_surnames, [r[1] for r in rows]), 1)
        ]
    # a quoted field may hold the delimiter, quotes and a line break; all come back as they were
    src = tmp_path / "odd.csv"
    src.write_text('id,name,note\n1,"Multi\nLine","a, ""b"""\n2,Li,"x\ty"\n', encoding="utf-8")
    for fmt in ("csv", "tsv", "jsonl"):
        code, out, _ = run_cli(capsys, "predict", "--input", str(src), "--format", fmt, "--top", "1")
        rows = parse(out, fmt)
        assert code == 2 and [(r["id"], r["name"], r["note"]) for r in rows] == [
            ("1", "Multi\nLine", 'a, "b"'),
            ("2", "Li", "x\ty"),
        ]
        assert "line break" in rows[0]["error"] and rows[1]["label"]
    # no --column: the column called 'name', else the first
    src = tmp_path / "n.csv"
    src.write_text("id,Name\n1,Hinton\n", encoding="utf-8")
    assert parse(run_cli(capsys, "predict", "--input", str(src), "--format", "csv")[1], "csv")[0]["label"] == "English"
    src.write_text("surname,id\nHinton,1\n", encoding="utf-8")
    assert parse(run_cli(capsys, "predict", "--input", str(src), "--format", "csv")[1], "csv")[0]["label"] == "English"


def test_bad_rows_are_kept_counted_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_LINE", 100)
    src = tmp_path / "names.txt"
    src.write_bytes(b"Hinton\n\nRafaj1\nSmi\xffth\n" + b"x" * 300 + b"\nSmith\xe2\x98\xba\nNguyen\n")
    code, out, err = run_cli(capsys, "predict", "--input", str(src), "--top", "1", "--format", "jsonl")
    rows = parse(out, "jsonl")
    assert code == 2 and len(rows) == 7
    assert [r["label"] is None for r in rows] == [False, True, True, True, True, True, False]
    assert [r["error"] is None for r in rows] == [r["label"] is not None for r in rows]
    assert "empty name" in rows[1]["error"] and "digits" in rows[2]["error"]
    assert "not valid UTF-8" in rows[3]["error"] and "longer than 100 bytes" in rows[4]["error"]
    assert rows[4]["name"] == "" and rows[6]["name"] == "Nguyen"
    assert "2 of 7 rows scored" in err and "5 could not be scored" in err and "first at line 2" in err
    assert len(err.strip().splitlines()) == 1
    # CSV rows with the wrong number of fields are bad rows too; the others still score
    src = tmp_path / "t.csv"
    src.write_text("id,name\n1,Hinton\n2\n3,Li,extra\n4,Nguyen\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "predict", "--input", str(src), "--format", "csv", "--quiet")
    rows = parse(out, "csv")
    assert code == 2 and [r["id"] for r in rows] == ["1", "2", "3", "4"]
    assert [bool(r["label"]) for r in rows] == [True, False, False, True]
    assert "has 1 fields, the header has 2" in rows[1]["error"] and "2 could not be scored" in err


def test_usage_errors_write_nothing(tmp_path, capsys):
    out = tmp_path / "out.tsv"
    src = tmp_path / "t.csv"
    src.write_text("id,surname\n1,Hinton\n", encoding="utf-8")
    for argv, message in [
        (["--input", str(tmp_path / "missing.txt")], "no such file"),
        (["--input", str(src), "--column", "nope"], "no column 'nope'"),
        (["--column", "surname", "Hinton"], "--column picks"),
        (["--input", str(src), "Hinton"], "not both"),
        (["--input", str(src), "--json"], "--format jsonl"),
        (["--input", str(src), "--threads", "0"], "--threads"),
    ]:
        code, _, err = run_cli(capsys, "predict", *argv, "--output", str(out))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
    code, _, err = run_cli(capsys, "predict", "Hinton", "--output", str(tmp_path / "x.json"))
    assert code == 2 and ".jsonl" in err
    assert list(tmp_path.iterdir()) == [src]


def test_output_name_and_header_collisions(tmp_path, capsys, shipped_surnames):
    src = tmp_path / "data.tsv"
    src.write_text("name\tlabel\nHinton\tEnglish\nNguyen\tVietnamese\n", encoding="utf-8")
    code, _, _ = run_cli(capsys, "predict", "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--top", "1")
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert code == 0 and list(rows[0]) == [
        "name",
        "label",
        "predicted_label",
        "predicted_logprob",
        "predicted_source",
        "predicted_count",
        "predicted_error",
    ]
    assert [r["label"] for r in rows] == ["English", "Vietnamese"]
    assert oct((tmp_path / "o.jsonl").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_a_scored_file_scored_again_gets_no_column_twice(tmp_path, capsys, shipped_surnames):
    """An input that already has ``predicted_label`` (a file scored before): the new columns take the
    next free prefix, ``predicted2_``, then ``predicted3_``; the input's columns are kept as they were."""
    pd = pytest.importorskip("pandas")
    src = tmp_path / "scored.csv"
    src.write_text("name,label,predicted_label\nHinton,English,English\nNguyen,,Vietnamese\n", encoding="utf-8")
    ref = [r[0][0] for r in top_labels(shipped_surnames, one_at_a_time(shipped_surnames, ["Hinton", "Nguyen"]), 1)]
    code, out, _ = run_cli(capsys, "predict", "--input", str(src), "--format", "csv", "--top", "1")
    header = next(csv.reader(io.StringIO(out)))
    assert code == 0 and header == [
        "name",
        "label",
        "predicted_label",
        "predicted2_label",
        "predicted2_logprob",
        "predicted2_source",
        "predicted2_count",
        "predicted2_error",
    ]
    rows = parse(out, "csv")
    assert [r["predicted_label"] for r in rows] == ["English", "Vietnamese"]
    assert [r["predicted2_label"] for r in rows] == ref
    again = out.replace("predicted2_error", "predicted2_label_2")  # a prefixed name taken too: the next prefix
    src.write_text(again, encoding="utf-8")
    code, out, _ = run_cli(capsys, "predict", "--input", str(src), "--format", "csv", "--top", "2")
    header = next(csv.reader(io.StringIO(out)))
    assert (
        code == 0
        and len(header) == len(set(header))
        and header[8:]
        == [
            "predicted3_label",
            "predicted3_logprob",
            "predicted3_label_2",
            "predicted3_logprob_2",
            "predicted3_source",
            "predicted3_count",
            "predicted3_error",
        ]
    )
    df = pd.DataFrame({"name": ["Hinton"], "label": ["x"], "predicted_label": ["y"], "predicted_error": [""]})
    frame = shipped_surnames.predict_frame(df, "name")
    assert list(frame.columns) == list(df.columns) + [
        "predicted2_label",
        "predicted2_logprob",
        "predicted2_source",
        "predicted2_count",
        "predicted2_error",
    ]
    assert frame["predicted_label"].tolist() == ["y"] and frame["predicted2_label"].tolist() == ref[:1]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_gender_file_and_generate_output(tmp_path, capsys, shipped_gender):
    src = tmp_path / "first.txt"
    src.write_text("Maria\nJohn\n7\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "gender", "--input", str(src))
    rows = parse(out, "tsv")
    p_female = np.exp(one_at_a_time(shipped_gender, ["Maria", "John"])[:, shipped_gender.labels.index("F")])
    assert code == 2 and [r["label"] for r in rows] == ["F" if p >= 0.5 else "M" for p in p_female] + [""]
    np.testing.assert_allclose(
        [float(r["probability"]) for r in rows[:2]], np.maximum(p_female, 1 - p_female), atol=1e-4
    )
    code, _, _ = run_cli(capsys, "generate", "--n", "5", "--seed", "3", "--output", str(tmp_path / "gen.txt"))
    assert code == 0
    assert (tmp_path / "gen.txt").read_text().splitlines() == namemodels.load("first-names").generate(n=5, seed=3)


def test_stdin_to_stdout_pipe(shipped_surnames):
    r = subprocess.run(
        CLI + ["predict", "--input", "-", "--format", "csv", "--top", "1"],
        input="\n".join(NAMES) + "\n",
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr
    rows = parse(r.stdout, "csv")
    assert [x["name"] for x in rows] == NAMES
    ref = top_labels(shipped_surnames, one_at_a_time(shipped_surnames, NAMES), 1)
    assert [x["label"] for x in rows] == [t[0][0] for t in ref]


def test_without_torch(tmp_path):
    """Bulk scoring runs on onnxruntime alone: torch hidden, the file path never imports it."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_torch_free import BLOCKER

    src = tmp_path / "n.csv"
    src.write_text("id,name\n1,Hinton\n2,Li\n", encoding="utf-8")
    code = (
        BLOCKER
        + f"""
from namemodels.cli import main
assert main(['predict', '--input', {str(src)!r}, '--output', {str(tmp_path / "o.tsv")!r}, '--quiet']) == 0
assert 'torch' not in sys.modules
print('TORCH-FREE-OK')
"""
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "TORCH-FREE-OK" in r.stdout, r.stderr
    assert len((tmp_path / "o.tsv").read_text().splitlines()) == 3


@pytest.mark.parametrize("sig, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_interrupted_run_leaves_no_output_file(tmp_path, sig, exit_code):
    """Killed while reading its input: the output name never appears; Ctrl-C and SIGTERM also
    remove the partial file (SIGKILL cannot be caught: a hidden .partial file stays)."""
    out = tmp_path / "scored.tsv"
    proc = subprocess.Popen(
        CLI + ["predict", "--input", "-", "--output", str(out), "--quiet"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a background job inherits SIGINT ignored, and Python then leaves it so
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    proc.stdin.write("Hinton\nNguyen\n" * 10)
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".scored.tsv.*.partial")):  # the model is loaded, the run has begun
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == exit_code and "Traceback" not in err
    assert not out.exists()
    leftovers = list(tmp_path.iterdir())
    assert leftovers == [] if sig != signal.SIGKILL else all(p.name.endswith(".partial") for p in leftovers)


def test_dask_module_without_dask_says_how_to_install():
    code = """
import sys, importlib.abc
class _Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('dask', 'distributed'):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Missing())
import namemodels.dask
from namemodels.errors import UsageError
try:
    namemodels.dask.predict(None, column='surname')
except UsageError as exc:
    print(exc)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "pip install 'namemodels[dask]'" in r.stdout, r.stderr
