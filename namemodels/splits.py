"""Which lines a run trains, validates and tests on: the grouped 80/10/10 split, grouped k-fold
cross-validation folds (each fold's training part split again 8 : 1 for early stopping unless it is
trained whole with ``--train-on all``), and how a model card describes them.

Every part is grouped by name string (no string in two parts) and stratified by label; see
:func:`namemodels.data.grouped_parts`. The trainer, ``namemodels cv`` and ``namemodels evaluate`` all
take their parts from :func:`split_parts`, so a fold model is evaluated on exactly its held-out fold.
"""
from __future__ import annotations

from typing import Sequence, Tuple

from .config import TrainConfig
from .data import NameDataset, grouped_parts, grouped_split

INNER_SPLIT = (8, 1, 0)   # a fold's training folds: 8 parts to fit, 1 to validate

def _joined(parts: Sequence[NameDataset], like: NameDataset) -> NameDataset:
    return NameDataset([r for p in parts for r in p.records], list(like.labels), like.kind, like.source)


def fold_parts(ds: NameDataset, folds: int, fold: int, seed: int) -> Tuple[NameDataset, NameDataset]:
    """``(the other folds, fold)`` of ``folds`` grouped, stratified folds of ``ds``."""
    parts = grouped_parts(ds, (1,) * folds, seed=seed)
    return _joined([p for i, p in enumerate(parts) if i != fold], ds), parts[fold]


def inner_split(train: NameDataset, seed: int) -> Tuple[NameDataset, NameDataset]:
    """A grouped, stratified ``(fit, validation)`` split of a fold's training lines (8 : 1)."""
    fit, valid, _ = grouped_split(train, INNER_SPLIT, seed=seed)
    return fit, valid


def split_parts(ds: NameDataset, cfg: TrainConfig) -> Tuple[NameDataset, NameDataset, NameDataset]:
    """``(train, valid, test)`` of a run with these settings: the grouped 80/10/10 split; with
    ``folds``, fold ``fold`` as test and the rest as train (and valid, see the module docstring); with
    ``train_on="all"`` no validation part (and without ``folds`` no test part either)."""
    seed, empty = cfg.data_seed(), ds.subset([])
    if cfg.folds:
        rest, test = fold_parts(ds, cfg.folds, cfg.fold, seed)
        if cfg.train_on == "all":
            return rest, empty, test
        return (*inner_split(rest, seed), test)
    if cfg.train_on == "all":
        return ds, empty, empty
    return grouped_split(ds, seed=seed)


def split_record(cfg: TrainConfig, train: NameDataset, valid: NameDataset, test: NameDataset) -> dict:
    """``config.json``'s ``data.split``: how the lines were divided, and how many each part holds."""
    record = {"seed": cfg.data_seed(), "grouped": True, "train_on": cfg.train_on,
              "train": len(train), "valid": len(valid), "test": len(test), "valid_in_train": cfg.final_fit}
    if cfg.folds:
        record.update(folds=cfg.folds, fold=cfg.fold)
    elif cfg.train_on == "split":
        record["fractions"] = [0.8, 0.1, 0.1]
    return record


def describe_split(split: dict) -> str:
    """The model card's line on what the model was trained on."""
    counts = f"{split['train']}/{split['valid']}/{split['test']} train/valid/test"
    if split.get("folds"):
        where = (f"fold {split['fold']} of {split['folds']} grouped folds (seed {split['seed']}) held out as test, "
                 f"the other folds {'trained on whole' if split.get('train_on') == 'all' else 'split 8 : 1 into train and valid'}"
                 f" ({counts})")
    elif split.get("train_on") == "all":
        where = (f"every line of the data ({split['train']}; `--train-on all`: no validation or test part held out, "
                 "a fixed number of epochs)")
    else:
        where = f"grouped by name string, {counts}, seed {split['seed']}"
    return f"- split: {where}" + (" (`--final-fit`: trained on train + valid, so the valid row describes "
                                  "training data)" if split.get("valid_in_train") else "")
