"""Build a classifier's name table (:mod:`namemodels.inference.name_table`) from its training data:
``namemodels data name-table MODEL_DIR --data PATH`` and the end of ``namemodels train`` (classify and
gender tasks) call :func:`add_name_table`.

The weights are not touched: the model is run (without any table) on every distinct name of the data
to store its log-probabilities, alpha is cross-validated on held-out counts
(:func:`namemodels.inference.name_table.choose_alpha`), the file is written and ``config.json`` gets
its ``name_table`` section and the file's SHA-256 (:mod:`namemodels.integrity`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from .checkpoint_json import read_json, write_json
from .errors import UsageError
from .inference.name_table import FILE, FORMAT, SECTION, choose_alpha, table_counts, write_table

CLASSIFIER_TASKS = ("classify", "gender")
CARD_HEADING = "## Name table"


def data_counts(ds, labels, lowercase: bool):
    """``(keys, counts, unit)`` of a loaded data set: births per sex (a ``name,sex,count`` file, each
    name's births split by its female share) or lines per label."""
    if ds.kind == "gender":
        names, labs, weights = [], [], []
        for r, lines in ds.distinct():
            share = r.female_share
            for label, w in (("F", r.weight * share * lines), ("M", r.weight * (1.0 - share) * lines)):
                if w > 0:
                    names.append(r.name), labs.append(label), weights.append(w)
        unit = "births"
    else:
        pairs = [(r.name, r.label, float(n)) for r, n in ds.distinct() if r.label is not None]
        if not pairs:
            raise UsageError(f"{ds.source}: the data has no labels; a name table needs labeled data "
                             "(a folder of <Label>.txt, a name,label file or a name,sex,count file)")
        names, labs, weights = zip(*pairs)
        unit = "lines"
    try:
        keys, counts = table_counts(names, labs, weights, labels, lowercase)
    except ValueError as exc:
        raise UsageError(f"{ds.source}: {exc}; build the table from the data the model was trained on") from None
    return keys, counts, unit


def add_name_table(directory: Union[str, Path], data_path: Union[str, Path], alpha: Optional[float] = None,
                   any_data: bool = False, quiet: bool = True, dataset=None,
                   cv: Optional[Union[str, Path]] = None) -> dict:
    """Write ``directory/name_table.npz`` from the data at ``data_path`` and describe it in
    ``config.json``; returns the ``name_table`` section. ``alpha``: fixed instead of cross-validated.
    ``any_data``: allow data other than the data the model was trained on (its SHA-256 differs).
    ``dataset``: the lines to count (``train`` passes its training part), default all of ``data_path``.
    ``cv``: a ``namemodels cv`` folder of the same recipe and data; alpha is then cross-validated with
    each name's probabilities from the fold model that never saw it (out-of-fold), so that the model's
    memory of its own training names does not pass for knowledge of unseen births or lines."""
    from . import data as data_mod
    from .integrity import record
    from .inference.predictor import Predictor

    directory = Path(directory)
    config = read_json(directory / "config.json")
    task = config.get("task")
    if task not in CLASSIFIER_TASKS:
        raise UsageError(f"{directory}: a name table is for classifiers (tasks {', '.join(CLASSIFIER_TASKS)}); "
                         f"this model's task is {task!r}")
    if alpha is not None and not alpha > 0:
        raise UsageError(f"alpha must be above 0, got {alpha}")
    data_sha = data_mod.data_sha256(data_path)
    trained_on = (config.get("data") or {}).get("sha256")
    if trained_on and trained_on != data_sha and not any_data:
        raise UsageError(f"{data_path}: not the data this model was trained on (SHA-256 {data_sha[:12]}..., "
                         f"config.json records {trained_on[:12]}...); give the training data "
                         f"({(config.get('data') or {}).get('path', '?')}), or --any-data to build the table anyway")
    labels = list(config["labels"])
    lowercase = bool(config["tokenizer"].get("lowercase", False))
    ds = data_mod.load(data_path) if dataset is None else dataset
    keys, counts, unit = data_counts(ds, labels, lowercase)

    model = Predictor(directory, table=False)
    scored = model.score_chunk(keys)   # one chunk: de-duplicated, length-sorted, bad names marked
    ok = np.array([e is None for e in scored.errors], bool)[scored.index]
    keys = [k for k, good in zip(keys, ok) if good]
    counts, logp = counts[ok], scored.expand()[ok]
    if not keys:
        raise UsageError(f"{data_path}: no name of the data is a valid name to look up")
    if alpha is None:
        prior, how = logp, "cross-validated on held-out counts, with the model's own probabilities"
        held = slice(None)
        if cv is not None:
            prior, held, folds = out_of_fold(cv, data_path, keys, lowercase, labels, ds if dataset is None else None)
            how = (f"cross-validated on held-out counts of the {int(held.sum()):,} names held out by the {folds} fold "
                   f"model(s) in {cv}, with their out-of-fold probabilities")
        alpha, report = choose_alpha(counts[held], prior[held])
        chosen = {"how": how, **report}
    else:
        chosen = {"how": "given"}
    write_table(directory / FILE, keys, counts, logp)
    section = {"file": FILE, "format": FORMAT, "names": len(keys), "unit": unit, "total": int(counts.sum()),
               "alpha": float(alpha), "alpha_choice": chosen, "span": None,
               "data": {"path": str(data_path), "sha256": data_sha},
               "rule": "P(label) = (count[label] + alpha * p_model[label]) / (total count + alpha); "
                       "a name not in the table gets p_model"}
    config[SECTION] = section
    write_json(directory / "config.json", record(directory, config))
    _note_card(directory, section)
    if not quiet:
        print(f"{directory / FILE}: {len(keys):,} names, {int(counts.sum()):,} {unit}, alpha {alpha:g}")
    return section


def out_of_fold(cv: Union[str, Path], data_path, keys, lowercase: bool, labels, full=None):
    """Each key's log-probabilities from the finished fold model of ``cv`` whose held-out fold holds it
    (grouped folds: that model never saw the name). Returns ``(logp, held, folds)``: ``held`` marks
    the keys some finished fold held out (the others' rows are NaN). ``full``: the data at ``data_path``,
    when the caller has loaded it already."""
    from . import data as data_mod
    from .checkpoint_json import read_json as read
    from .config import TrainConfig
    from .inference.name_table import name_key
    from .inference.predictor import Predictor
    from .splits import split_parts

    ds = data_mod.load(data_path) if full is None else full
    row = {k: i for i, k in enumerate(keys)}
    out: Optional[np.ndarray] = None
    held = np.zeros(len(keys), bool)
    folds = sorted(Path(cv).glob("fold-*/model/config.json"))
    if not folds:
        raise UsageError(f"{cv}: no finished fold model (fold-*/model/config.json); run `namemodels cv ... --out {cv}` "
                         "with the model's recipe first, or leave out --cv")
    for config_path in folds:
        recorded = (read(config_path).get("data") or {}).get("split") or {}
        layout = TrainConfig(split_seed=recorded.get("seed", 0), folds=recorded.get("folds", 0),
                             fold=recorded.get("fold", 0), train_on=recorded.get("train_on", "split"))
        test = split_parts(ds, layout)[2]
        mine = sorted({row[k] for k in (name_key(r.name, lowercase) for r, _ in test.distinct()) if k in row})
        if mine:
            model = Predictor(config_path.parent, table=False)
            if list(model.labels) != list(labels):
                raise UsageError(f"{config_path.parent}: its labels differ from the model's; give a cv run of the same "
                                 "recipe on the same data")
            if out is None:
                out = np.full((len(keys), len(model.labels)), np.nan, np.float32)
            out[mine] = model.score_chunk([keys[i] for i in mine]).expand()
            held[mine] = True
    if out is None or not held.any():
        raise UsageError(f"{cv}: its fold models hold out none of the table's names; is it a cv run on {data_path}?")
    return out, held, len(folds)


def _note_card(directory: Path, section: dict) -> None:
    """Add (or replace) the model card's paragraph on the name table."""
    card = directory / "MODEL_CARD.md"
    if not card.is_file():
        return
    text = card.read_text(encoding="utf-8")
    head = text.split(f"\n{CARD_HEADING}\n")[0].rstrip("\n")
    note = (f"\n\n{CARD_HEADING}\n\n`{section['file']}` holds the {section['names']:,} distinct names of the training "
            f"data ({section['data']['path']}, SHA-256 {section['data']['sha256'][:12]}...) with their "
            f"{section['unit']} per label ({section['total']:,} in all). A known name is answered by "
            f"(count + alpha * p_model) / (total + alpha) with alpha = {section['alpha']:g} "
            f"({section['alpha_choice']['how']}); a name not in the table by the model alone. Answers say which "
            "(`source`: data or model) and how many "
            f"{section['unit']} stand behind them (`count`).\n")
    card.write_text(head + note, encoding="utf-8")
