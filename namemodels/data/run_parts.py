"""Which lines a run trains, validates and tests on: the grouped 80/10/10 split, grouped k-fold
cross-validation folds (each fold's training part split again 8 : 1 for early stopping unless it is
trained whole with ``--train-on all``), and how a model card describes them.

Every part is stratified by label and, by default (``split_by="names"``), grouped by name string (no
string in two parts: the test part measures names the model never saw); see
:func:`namemodels.data.split.grouped_parts`. With ``split_by="lines"`` the parts are drawn line by line
(still stratified), so a name that repeats in the data can sit on both sides, as the lines of a real
file to be labelled do: that part measures what users see when known names are answered from the
name table. The trainer, ``namemodels cv`` and ``namemodels evaluate`` all take their parts from
:func:`split_parts` (``evaluate`` through :func:`layout_of` the model's recorded split), so a model is
evaluated on exactly its held-out part.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import TrainConfig
from .records import NameDataset
from .split import grouped_parts, grouped_split

INNER_SPLIT = (8, 1, 0)  # a fold's training folds: 8 parts to fit, 1 to validate


def joined(parts: Sequence[NameDataset], like: NameDataset) -> NameDataset:
    """The lines of ``parts`` as one data set, with ``like``'s labels, kind and source."""
    return NameDataset([r for p in parts for r in p.records], list(like.labels), like.kind, like.source)


def fold_parts(
    ds: NameDataset, folds: int, fold: int, seed: int, by_lines: bool = False
) -> tuple[NameDataset, NameDataset]:
    """``(the other folds, fold)`` of ``folds`` grouped (``by_lines``: line by line), stratified folds of ``ds``."""
    parts = grouped_parts(ds, (1,) * folds, seed=seed, group=not by_lines)
    return joined([p for i, p in enumerate(parts) if i != fold], ds), parts[fold]


def inner_split(train: NameDataset, seed: int, by_lines: bool = False) -> tuple[NameDataset, NameDataset]:
    """A grouped (``by_lines``: line by line), stratified ``(fit, validation)`` split of a fold's training lines
    (8 : 1)."""
    fit, valid, _ = grouped_split(train, INNER_SPLIT, seed=seed, group=not by_lines)
    return fit, valid


def split_parts(ds: NameDataset, cfg: TrainConfig) -> tuple[NameDataset, NameDataset, NameDataset]:
    """``(train, valid, test)`` of a run with these settings: the grouped 80/10/10 split; with
    ``folds``, fold ``fold`` as test and the rest as train (and valid, see the module docstring); with
    ``train_on="all"`` no validation part (and without ``folds`` no test part either)."""
    seed, empty, lines = cfg.data_seed(), ds.subset([]), cfg.split_by == "lines"
    if cfg.folds:
        rest, test = fold_parts(ds, cfg.folds, cfg.fold, seed, by_lines=lines)
        if cfg.train_on == "all":
            return rest, empty, test
        return (*inner_split(rest, seed, by_lines=lines), test)
    if cfg.train_on == "all":
        return ds, empty, empty
    return grouped_split(ds, seed=seed, group=not lines)


def layout_of(split: dict) -> TrainConfig:
    """The settings that give back the parts a model's ``config.json`` ``data.split`` record describes
    (:func:`split_record`; records written before ``split_by`` existed are grouped by name)."""
    split = split if isinstance(split, dict) else {}
    return TrainConfig(
        split_seed=split.get("seed", 0),
        folds=split.get("folds", 0),
        fold=split.get("fold", 0),
        train_on=split.get("train_on", "split"),
        split_by="names" if split.get("grouped", True) else "lines",
    )


def split_record(cfg: TrainConfig, train: NameDataset, valid: NameDataset, test: NameDataset) -> dict:
    """``config.json``'s ``data.split``: how the lines were divided, and how many each part holds."""
    record = {
        "seed": cfg.data_seed(),
        "grouped": cfg.split_by != "lines",
        "train_on": cfg.train_on,
        "train": len(train),
        "valid": len(valid),
        "test": len(test),
        "valid_in_train": cfg.final_fit,
    }
    if cfg.folds:
        record.update(folds=cfg.folds, fold=cfg.fold)
    elif cfg.train_on == "split":
        record["fractions"] = [0.8, 0.1, 0.1]
    return record


def describe_split(split: dict) -> str:
    """The model card's line on what the model was trained on."""
    counts = f"{split['train']}/{split['valid']}/{split['test']} train/valid/test"
    kind = "grouped" if split.get("grouped", True) else "line-by-line (a name may sit in two parts)"
    if split.get("folds"):
        where = (
            f"fold {split['fold']} of {split['folds']} {kind} folds (seed {split['seed']}) held out as test, "
            "the other folds "
            f"{'trained on whole' if split.get('train_on') == 'all' else 'split 8 : 1 into train and valid'}"
            f" ({counts})"
        )
    elif split.get("train_on") == "all":
        where = (
            f"every line of the data ({split['train']}; `--train-on all`: no validation or test part held out, "
            "a fixed number of epochs)"
        )
    else:
        where = (
            f"grouped by name string, {counts}, seed {split['seed']}"
            if split.get("grouped", True)
            else f"held-out lines drawn line by line, stratified by label (the same name may sit in training and "
            f"test parts), {counts}, seed {split['seed']}"
        )
    return f"- split: {where}" + (
        " (`--final-fit`: trained on train + valid, so the valid row describes training data)"
        if split.get("valid_in_train")
        else ""
    )
