"""namemodels.data.run_parts: the line-by-line split (--split-by lines) beside the grouped one, and the layout a
model's recorded split gives back (what evaluate uses to find its held-out lines)."""

import collections

import pytest

from namemodels.config import TrainConfig
from namemodels.data.records import NameDataset, NameRecord
from namemodels.data.run_parts import describe_split, layout_of, split_parts, split_record


def _repeated() -> NameDataset:
    """Names that repeat on many lines, as in the surname files: 60 strings, each on 1 to 8 lines."""
    records = []
    for i in range(60):
        label = "AB"[i % 2]
        records += [NameRecord(f"Name{i}", label)] * (1 + i % 8)
    return NameDataset(records, ["A", "B"], "labeled")


def _lines(ds):
    return collections.Counter((r.name, r.label) for r in ds.records)


@pytest.mark.parametrize("folds", [0, 4])
def test_line_split_shares_names_grouped_split_does_not(folds):
    ds = _repeated()
    for by, shared in (("names", False), ("lines", True)):
        cfg = TrainConfig(split_by=by, folds=folds)
        train, valid, test = split_parts(ds, cfg)
        assert _lines(train) + _lines(valid) + _lines(test) == _lines(ds)  # every line once
        both = {r.name for r in train.records} & {r.name for r in test.records}
        assert bool(both) == shared, by
        # stratified by label: each label's share of the test part is its share of the data (+- one line)
        for label in "AB":
            want = sum(r.label == label for r in ds.records) * len(test) / len(ds)
            assert abs(sum(r.label == label for r in test.records) - want) <= 2


def test_line_split_is_deterministic_and_record_round_trips():
    ds = _repeated()
    cfg = TrainConfig(split_by="lines", seed=3)
    parts = split_parts(ds, cfg)
    record = split_record(cfg, *parts)
    assert record["grouped"] is False
    again = split_parts(ds, layout_of(record))
    assert [_lines(p) for p in again] == [_lines(p) for p in parts]
    assert "line by line" in describe_split(record)
    grouped = split_record(TrainConfig(), *split_parts(ds, TrainConfig()))
    assert layout_of(grouped).split_by == "names" and layout_of({}).split_by == "names"  # older records: grouped


def test_split_by_is_checked():
    from namemodels.errors import UsageError

    with pytest.raises(UsageError, match="--split-by"):
        TrainConfig(split_by="words").check()
