"""Build a classifier's name table (:mod:`namemodels.inference.name_table`) from its training data:
``namemodels data name-table MODEL_DIR --data PATH`` and the end of ``namemodels train`` (classify and
gender tasks) call :func:`add_name_table`.

The weights are not touched: the model is run (without any table) on every distinct name of the data
to store its log-probabilities, alpha is cross-validated on held-out counts
(:func:`namemodels.inference.name_table.choose_alpha`), the file is written and ``config.json`` gets
its ``name_table`` section and the file's SHA-256 (:mod:`namemodels.integrity`).

With ``cv`` (out-of-fold probabilities) the model's temperature is chosen first
(:func:`namemodels.inference.calibration.choose_temperature`, kept only where the cross-fitted log-loss
drops) and written to ``config.json``'s ``calibration``; alpha is then chosen with the tempered
out-of-fold prior. ``recent`` adds a second layer of counts (births per sex in a span of years, from a
``year,name,sex,count`` file) with its own strength beta (:func:`namemodels.inference.name_table.choose_beta`).
From a folder of ``<Label>.txt`` files the marked Latin letters of the raw lines (u-umlaut, sharp s, e-acute, ...)
are counted per label (the lines of the table's names that hold each, and each label's lines) and stored
in the section (``letters``), as evidence for names typed with them: a likelihood ratio whose smoothing
``k`` is cross-validated leaving one line out (:func:`namemodels.inference.name_table.choose_smoothing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..checkpoint_json import read_json, write_json
from ..config import CLASSIFIER_TASKS
from ..errors import UsageError
from ..inference.name_table import (
    FILE,
    FORMAT,
    SECTION,
    choose_alpha,
    choose_beta,
    choose_smoothing,
    marked_letters,
    name_key,
    table_counts,
    write_table,
)

if TYPE_CHECKING:
    from ..data.loader import PathLike
    from ..data.records import NameDataset

CARD_HEADING = "## Name table"


def data_counts(ds: NameDataset, labels: Sequence[str], lowercase: bool) -> tuple[list[str], np.ndarray, str]:
    """``(keys, counts, unit)`` of a loaded data set: births per sex (a ``name,sex,count`` file, each
    name's births split by its female share) or lines per label."""
    if ds.kind == "gender":
        names: list[str] = []
        labs: list[str] = []
        weights: list[float] = []
        for r, lines in ds.distinct():
            share = r.female_share
            for label, w in (("F", r.weight * share * lines), ("M", r.weight * (1.0 - share) * lines)):
                if w > 0:
                    names.append(r.name)
                    labs.append(label)
                    weights.append(w)
        unit = "births"
    else:
        pairs = [(r.name, r.label, float(n)) for r, n in ds.distinct() if r.label is not None]
        if not pairs:
            raise UsageError(
                f"{ds.source}: the data has no labels; a name table needs labeled data "
                "(a folder of <Label>.txt, a name,label file or a name,sex,count file)"
            )
        names = [name for name, _, _ in pairs]
        labs = [label for _, label, _ in pairs]
        weights = [n for _, _, n in pairs]
        unit = "lines"
    try:
        keys, counts = table_counts(names, labs, weights, labels, lowercase)
    except ValueError as exc:
        raise UsageError(f"{ds.source}: {exc}; build the table from the data the model was trained on") from None
    return keys, counts, unit


def add_name_table(
    directory: str | Path,
    data_path: str | Path,
    alpha: float | None = None,
    any_data: bool = False,
    quiet: bool = True,
    dataset: NameDataset | None = None,
    cv: str | Path | None = None,
    recent: str | Path | None = None,
    since: int | None = None,
    until: int | None = None,
    out: str | Path | None = None,
) -> dict:
    """Write ``directory/name_table.npz`` from the data at ``data_path`` and describe it in
    ``config.json``; returns the ``name_table`` section. ``alpha``: fixed instead of cross-validated.
    ``any_data``: allow data other than the data the model was trained on (its SHA-256 differs).
    ``dataset``: the lines to count (``train`` passes its training part), default all of ``data_path``.
    ``cv``: a ``namemodels cv`` folder of the same recipe and data; the temperature (``calibration``)
    and then alpha are chosen with each name's probabilities from the fold model that never saw it
    (out-of-fold), so that the model's memory of its own training names does not pass for knowledge of
    unseen births or lines. ``recent``: a ``year,name,sex,count`` file (gzip or not); the births of
    years ``since`` .. ``until`` (default: to its last year) become the table's recent layer.
    ``out``: copy the model folder there first and write the table into the copy (``directory`` is
    left as it is; a failed build removes the copy)."""
    directory = Path(directory)
    if out is None:
        return _add_name_table(directory, data_path, alpha, any_data, quiet, dataset, cv, recent, since, until)
    import shutil

    copy = _copy_model(directory, Path(out))
    try:
        return _add_name_table(copy, data_path, alpha, any_data, quiet, dataset, cv, recent, since, until)
    except BaseException:  # a failed build leaves no half-made copy behind
        shutil.rmtree(copy, ignore_errors=True)
        raise


def _without_test_part(ds: NameDataset, config: dict) -> NameDataset:
    """The model's training data less the test part its ``config.json`` records (the lines `evaluate`
    scores it on must not be answered from their own counts); all of it for a model without one."""
    from ..data.run_parts import joined, layout_of, split_parts

    split = (config.get("data") or {}).get("split")
    if not isinstance(split, dict) or not split.get("test"):
        return ds
    return joined(split_parts(ds, layout_of(split))[:2], ds)


def _add_name_table(
    directory: Path,
    data_path: str | Path,
    alpha: float | None,
    any_data: bool,
    quiet: bool,
    dataset: NameDataset | None,
    cv: str | Path | None,
    recent: str | Path | None,
    since: int | None,
    until: int | None,
) -> dict:
    from ..data import loader
    from ..inference.calibration import choose_temperature, temper
    from ..inference.predictor import Predictor
    from ..integrity import record

    config = read_json(directory / "config.json")
    task = config.get("task")
    if task not in CLASSIFIER_TASKS:
        raise UsageError(
            f"{directory}: a name table is for classifiers (tasks {', '.join(CLASSIFIER_TASKS)}); "
            f"this model's task is {task!r}"
        )
    if alpha is not None and not alpha > 0:
        raise UsageError(f"alpha must be above 0, got {alpha}")
    if recent is None and (since is not None or until is not None):
        raise UsageError("--since and --until choose the years of --recent FILE: give --recent too")
    if recent is not None and task != "gender":
        raise UsageError(
            f"{directory}: --recent adds births per sex by year, for a gender model; this model's task is {task!r}"
        )
    trained_on = (config.get("data") or {}).get("sha256")
    # train passes the lines it has just trained on: its config.json holds their data's hash already
    data_sha = trained_on if dataset is not None and trained_on else loader.data_sha256(data_path)
    if trained_on and trained_on != data_sha and not any_data:
        raise UsageError(
            f"{data_path}: not the data this model was trained on (SHA-256 {data_sha[:12]}..., "
            f"config.json records {trained_on[:12]}...); give the training data "
            f"({(config.get('data') or {}).get('path', '?')}), or --any-data to build the table anyway"
        )
    labels = list(config["labels"])
    lowercase = bool(config["tokenizer"].get("lowercase", False))
    loaded: NameDataset | None = None  # all of data_path: cv's folds are cut from all of it
    if dataset is None:
        loaded = loader.load(data_path)
        ds = _without_test_part(loaded, config) if trained_on == data_sha else loaded
    else:
        ds = dataset
    keys, counts, unit = data_counts(ds, labels, lowercase)

    model = Predictor(directory, table=False, calibrate=False)  # the network's own probabilities
    scored = model.score_chunk(keys)  # one chunk: de-duplicated, length-sorted, bad names marked
    ok = np.array([e is None for e in scored.errors], bool)[scored.index]
    keys = [k for k, good in zip(keys, ok) if good]
    counts, logp = counts[ok], scored.expand()[ok]
    if not keys:
        raise UsageError(f"{data_path}: no name of the data is a valid name to look up")
    calibration = config.get("calibration")
    temperature = float((calibration or {}).get("temperature", 1.0))
    prior, how = logp, "cross-validated on held-out counts, with the model's own probabilities"
    held: slice | np.ndarray = slice(None)
    if cv is not None:
        prior, held, folds = out_of_fold(cv, data_path, keys, lowercase, labels, loaded)
        temperature, report = choose_temperature(prior[held], counts[held])
        calibration = {
            "temperature": temperature,
            "how": f"chosen on the out-of-fold probabilities of the {int(held.sum()):,} names held out by "
            f"the {folds} fold model(s) in {cv}, weighted by their {unit} (name-table --cv); kept "
            "only where the cross-fitted log-loss drops",
            **report,
        }
        config["calibration"] = calibration
        how = (
            f"cross-validated on held-out counts of the {int(held.sum()):,} names held out by the {folds} fold "
            f"model(s) in {cv}, with their out-of-fold probabilities tempered by T = {temperature:.4g}"
        )
    elif temperature != 1.0:
        how += f" tempered by T = {temperature:.4g} (config.json's calibration)"
    prior = temper(prior, temperature)
    if alpha is None:
        alpha, report = choose_alpha(counts[held], prior[held])
        chosen = {"how": how, **report}
    else:
        chosen = {"how": "given"}
    layer: np.ndarray | None = None
    recent_section: dict | None = None
    if recent is not None:
        layer, recent_section = recent_counts(recent, keys, labels, lowercase, since, until)
        layer = np.minimum(layer, counts)  # a name's births in the span never exceed its births in all years
        beta, beta_report = choose_beta(layer[held], counts[held], prior[held], alpha)
        recent_section.update(
            {
                "beta": beta,
                "beta_choice": {
                    "how": how.replace("cross-validated", "cross-validated (nested, on the recent counts)", 1),
                    **beta_report,
                },
            }
        )
    letters, marked = letter_counts(data_path, labels, set(keys), lowercase)
    if letters:
        k, k_report = None, {"how": "given: alpha"}
        if chosen.get("how") != "given":  # leave one line out, with the (tempered, out-of-fold) prior of its name
            row = {key: i for i, key in enumerate(keys)}
            usable = np.zeros(len(keys), bool)
            usable[held] = True
            kept = [(labels.index(label), found, row[key]) for key, label, found in marked if usable[row[key]]]
            dense = {
                c: np.array([per.get(lab, 0) for lab in labels], np.float64) for c, per in letters["counts"].items()
            }
            every = np.array([letters["all_lines"].get(label, 0) for label in labels], np.float64)
            k, k_report = choose_smoothing(
                [(j, f) for j, f, _ in kept], prior[[r for _, _, r in kept]].astype(np.float64), dense, every
            )
            n = f"leaving out one at a time the {k_report['lines']:,} lines with marked letters"
            k_report["how"] = (
                how.replace("on held-out counts of the", n + " among the", 1)
                if "counts of the" in how
                else how.replace("on held-out counts", n, 1)
            )
        letters["k"] = float(alpha) if k is None else k
        letters["k_choice"] = k_report
        del letters["all_lines"]
    write_table(directory / FILE, keys, counts, logp, layer)
    section = {
        "file": FILE,
        "format": FORMAT,
        "names": len(keys),
        "unit": unit,
        "total": int(counts.sum()),
        "alpha": float(alpha),
        "alpha_choice": chosen,
        "span": None
        if recent_section is None
        else {"since": recent_section["since"], "until": recent_section["until"]},
        "recent": recent_section,
        "letters": letters,
        "data": {"path": str(data_path), "sha256": data_sha},
        "rule": "p = softmax(logp_model / T) (T: config.json calibration.temperature, 1 without); "
        "P(label) = (count[label] + alpha * p[label]) / (total count + alpha), a name not in the table "
        "gets p"
        + ("; then P = (recent[label] + beta * P[label]) / (recent total + beta)" if recent_section else "")
        + (
            "; then marked letters of the name as typed (each distinct one l, NFC, lower-cased, among "
            "letters.counts): P(c) *= rate_c(l) / q(l), renormalised, q(l) = sum m(l) / sum lines, "
            "rate_c(l) = (m_c(l) + k q(l)) / (lines_c + k) for the labels of letters.lines, q(l) for the "
            "others"
            if letters
            else ""
        )
        + "; a name in another script: restricted to the labels that write it (name_table.SCRIPTS)",
    }
    config[SECTION] = section
    write_json(directory / "config.json", record(directory, config))
    _note_card(directory, section, temperature, labels)
    if not quiet:
        extra = (
            ""
            if recent_section is None
            else (
                f"; {recent_section['total']:,} {unit} in {recent_section['since']}-"
                f"{recent_section['until']}, beta {recent_section['beta']:g}"
            )
        )
        print(
            f"{directory / FILE}: {len(keys):,} names, {int(counts.sum()):,} {unit}, alpha {alpha:g}, "
            f"temperature {temperature:.4g}{extra}"
            + (f", {len(letters['counts'])} marked letters (k {letters['k']:g})" if letters else "")
        )
    return section


def _copy_model(directory: Path, out: Path) -> Path:
    """``--out``: a copy of model folder ``directory`` at ``out`` (new or empty), to build the table into."""
    import shutil

    if not (directory / "config.json").is_file():
        from ..inference.locate import resolve

        directory = resolve(str(directory))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out}: exists and is not an empty folder; give a new folder's path")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: its folder {out.parent} does not exist; create it first")
    if out.exists():
        out.rmdir()
    shutil.copytree(directory, out)
    return out


def recent_counts(
    path: PathLike, keys: Sequence[str], labels: Sequence[str], lowercase: bool, since: int | None, until: int | None
) -> tuple[np.ndarray, dict]:
    """The births per key and sex of years ``since`` .. ``until`` of a ``year,name,sex,count`` file
    (:func:`namemodels.data.births.read_births`, streamed): ``(counts (keys, labels), section)``; names that
    are not keys are counted in the section's ``unmatched``."""
    from ..data import loader
    from ..data.births import read_births
    from ..text import ascii_fold

    births = read_births(path, since, until)
    row = {k: i for i, k in enumerate(keys)}
    column = {lab: j for j, lab in enumerate(labels)}
    out = np.zeros((len(keys), len(labels)), np.int64)
    unmatched_births, unmatched = 0, set()
    for (name, sex), count in births.counts.items():
        key = name_key(ascii_fold(name), lowercase)
        i, j = row.get(key), column.get(sex)
        if j is None:
            raise UsageError(f"{path}: sex {sex!r} of {name!r} is not one of the model's labels ({', '.join(labels)})")
        if i is None:
            unmatched_births += count
            unmatched.add(key)
        else:
            out[i, j] += count
    first, last = births.years
    lo, hi = max(since if since is not None else first, first), min(until if until is not None else last, last)
    if not out.any():
        raise UsageError(f"{path}: no births of the table's names in {lo}-{hi}")
    return out, {
        "since": lo,
        "until": hi,
        "total": int(out.sum()),
        "names": int((out.sum(axis=1) > 0).sum()),
        "unmatched": {"names": len(unmatched), "births": int(unmatched_births)},
        "data": {"path": str(path), "sha256": loader.data_sha256(path)},
    }


def letter_counts(data_path: PathLike, labels: Sequence[str], keys: set, lowercase: bool) -> tuple[dict | None, list]:
    """From a folder (or .zip) of ``<Label>.txt`` files: for each marked Latin letter of the raw lines
    (:func:`namemodels.inference.name_table.marked_letters`), the lines per label that hold it, among
    the lines whose name is one of the table's ``keys`` (a model trained on a part counts that part),
    each label's lines (``lines``: the labels with a marked line, ``A``; ``all_lines``: every label, for
    the caller's cross-validation, which removes it); and the lines with marked letters as
    ``(key, label, letters)``. ``(None, [])`` for other formats or when no line has a marked letter."""
    from ..text import ascii_fold

    path = Path(data_path)
    texts = []
    if path.is_dir():
        texts = [(p.stem, p.read_bytes()) for p in sorted(path.glob("*.txt")) if p.is_file()]
    elif path.suffix.lower() == ".zip":
        import zipfile

        with zipfile.ZipFile(path) as z:
            texts = [
                (Path(i.filename).stem, z.read(i))
                for i in z.infolist()
                if i.filename.endswith(".txt") and not Path(i.filename).name.startswith(".")
            ]
    found: dict = {}
    lines: dict = {}  # label -> its lines among the table's names
    marked: list = []  # (key, label, letters) of each line with marked letters
    for label, raw in texts:
        if label not in labels:
            continue
        for line in raw.decode("utf-8", errors="replace").splitlines():
            if name_key(ascii_fold(line), lowercase) not in keys:
                continue
            lines[label] = lines.get(label, 0) + 1
            letters = [] if line.isascii() else marked_letters(line)
            if letters:
                marked.append((name_key(ascii_fold(line), lowercase), label, letters))
                for c in letters:
                    per = found.setdefault(c, {})
                    per[label] = per.get(label, 0) + 1
    if not found:
        return None, []
    inside = sorted({label for per in found.values() for label in per})
    return {
        "counts": {c: dict(sorted(found[c].items())) for c in sorted(found)},
        "lines": {label: lines[label] for label in inside},
        "k": None,  # set by the caller (cross-validated, or alpha)
        "all_lines": dict(sorted(lines.items())),
        "how": "counts: lines per label of the training files holding each marked letter (NFC, lower-cased), "
        "among the table's names; lines: all lines of each label that has a marked line (A). A name typed "
        "with such letters: P(c) *= rate_c(l) / q(l) per distinct letter l, renormalised, q(l) = sum_A "
        "m_c(l) / sum_A lines_c, rate_c(l) = (m_c(l) + k q(l)) / (lines_c + k) in A, q(l) elsewhere",
    }, marked


def out_of_fold(
    cv: str | Path,
    data_path: PathLike,
    keys: Sequence[str],
    lowercase: bool,
    labels: Sequence[str],
    full: NameDataset | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Each key's log-probabilities from the finished fold model of ``cv`` whose held-out fold holds it
    (grouped folds: that model never saw the name). Returns ``(logp, held, folds)``: ``held`` marks
    the keys some finished fold held out (the others' rows are NaN). ``full``: the data at ``data_path``,
    when the caller has loaded it already."""
    from ..checkpoint_json import read_json as read
    from ..data import loader
    from ..data.run_parts import layout_of, split_parts
    from ..inference.name_table import name_key
    from ..inference.predictor import Predictor

    ds = loader.load(data_path) if full is None else full
    row = {k: i for i, k in enumerate(keys)}
    out: np.ndarray | None = None
    held = np.zeros(len(keys), bool)
    folds = sorted(Path(cv).glob("fold-*/model/config.json"))
    if not folds:
        raise UsageError(
            f"{cv}: no finished fold model (fold-*/model/config.json); run `namemodels cv ... --out {cv}` "
            "with the model's recipe first, or leave out --cv"
        )
    for config_path in folds:
        layout = layout_of((read(config_path).get("data") or {}).get("split") or {})
        if layout.split_by != "names":  # a line split's test part shares names with its training part
            raise UsageError(
                f"{config_path.parent}: its folds hold out lines, not names, so its model has seen the names it "
                "would answer; give a cv run with grouped folds (the default --split-by names)"
            )
        test = split_parts(ds, layout)[2]
        mine = sorted({row[k] for k in (name_key(r.name, lowercase) for r, _ in test.distinct()) if k in row})
        if mine:
            model = Predictor(config_path.parent, table=False, calibrate=False)  # the raw network: T is fitted on these
            if list(model.labels) != list(labels):
                raise UsageError(
                    f"{config_path.parent}: its labels differ from the model's; give a cv run of the same "
                    "recipe on the same data"
                )
            if out is None:
                out = np.full((len(keys), len(model.labels)), np.nan, np.float32)
            out[mine] = model.score_chunk([keys[i] for i in mine]).expand()
            held[mine] = True
    if out is None or not held.any():
        raise UsageError(f"{cv}: its fold models hold out none of the table's names; is it a cv run on {data_path}?")
    return out, held, len(folds)


def _note_card(directory: Path, section: dict, temperature: float = 1.0, labels: Sequence[str] = ()) -> None:
    """Add (or replace) the model card's paragraph on the name table."""
    card = directory / "MODEL_CARD.md"
    if not card.is_file():
        return
    text = card.read_text(encoding="utf-8")
    head = text.split(f"\n{CARD_HEADING}\n")[0].rstrip("\n")
    calibrated = (
        "the model's probabilities are first tempered, softmax(logp / T) with T = "
        f"{temperature:.4g} (config.json's calibration); "
        if temperature != 1.0
        else "the model's probabilities are used untempered (T = 1); "
    )
    recent = section.get("recent")
    later = ""
    if recent:
        later = (
            f" Then the births of {recent['since']}-{recent['until']} ({recent['total']:,}) update that answer the "
            f"same way: (recent + beta * P) / (recent total + beta), beta = {recent['beta']:g}."
        )
    if section.get("letters"):
        letters = section["letters"]
        later += (
            f" A name typed with marked letters ({''.join(letters['counts'])}) is weighed by how often the "
            f"training lines of each label hold them, as a likelihood ratio: for each of its letters l, "
            f"P(c) is multiplied by rate_c(l) / q(l), rate_c(l) = (m_c(l) + k q(l)) / (L_c + k) with m_c(l) the "
            f"lines of label c holding l, L_c its lines, q(l) the rate pooled over the labels whose lines hold "
            f"marked letters ({', '.join(letters['lines'])}) and k = {letters['k']:g} lines "
            f"({letters['k_choice']['how']}), then renormalised; the other labels' lines (folded to ASCII or "
            "transliterated at the source) say nothing about accents and keep their share, and letters no line "
            "holds are ignored."
        )
    from ..inference.name_table import SCRIPTS, script_labels

    per_script = [(name, script_labels([name], labels)) for name, _, _ in SCRIPTS]
    written = [f"{name}: {', '.join(kept)}" for name, kept in per_script if kept]
    scripts = (
        (
            f" A name written in another script is answered among the labels that write names in it "
            f"({'; '.join(written)})."
        )
        if written
        else ""
    )
    note = (
        f"\n\n{CARD_HEADING}\n\n`{section['file']}` holds the {section['names']:,} distinct names of the training "
        f"data ({section['data']['path']}, SHA-256 {section['data']['sha256'][:12]}...) with their "
        f"{section['unit']} per label ({section['total']:,} in all). {calibrated[0].upper() + calibrated[1:]}a known "
        f"name is answered by (count + alpha * p) / (total + alpha) with alpha = {section['alpha']:g} "
        f"({section['alpha_choice']['how']}); a name not in the table by the model alone.{later}{scripts} Answers say "
        "which "
        "(`source`: data or model) and how many "
        f"{section['unit']} stand behind them (`count`).\n"
    )
    card.write_text(head + note, encoding="utf-8")
