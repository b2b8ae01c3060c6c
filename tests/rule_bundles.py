"""Two models whose answers use every step of the rule (namemodels/inference/name_table.py's Rule), and
their bundles: a copy of the shipped surnames model with a calibration temperature (1.3) and a name table
(marked letters) from a small folder made here, and a copy of the shipped gender model with a recent layer
from a small by-year file. Used by tests/export/test_bundle.py and tests/web/test_rules_browser.py; the
builders of their data by tests/inference/test_answer_rules.py too."""

import csv
import gzip
import json
import shutil
from pathlib import Path

LINES = {
    "German": ["Müller", "Groß", "Schön", "Weber", "Mueller", "Baer"],
    "Spanish": ["Núñez", "Peña", "García"],
    "French": ["Lefèvre", "Dupont"],
    "Russian": ["Muller", "Ivanov"],
    "Chinese": ["Wang", "Li"],
    "Korean": ["Wang", "Kim"],
}
BIRTHS = [
    (1990, "Joan", "F", 30),
    (2010, "Joan", "M", 8),
    (1995, "Zed", "M", 5),
    (2011, "Ann", "F", 3),
    (1980, "Robin", "M", 20),
    (2012, "Robin", "F", 6),
]


def surnames_with_rules(root: Path, lines: dict[str, list[str]]) -> tuple[Path, Path, dict]:
    """A copy of the shipped surnames model at ``root/surnames`` with a calibration temperature (1.3) and
    a name table from ``lines`` (label -> lines, written to ``root/names``): ``(model, names, section)``."""
    import namemodels
    from namemodels.integrity import record  # the section is hash-checked: record the test's temperature
    from namemodels.training.name_tables import add_name_table

    names = root / "names"
    names.mkdir()
    for label, label_lines in lines.items():
        (names / f"{label}.txt").write_text("\n".join(label_lines) + "\n", encoding="utf-8")
    surnames = root / "surnames"
    shutil.copytree(Path(namemodels.__file__).parent / "pretrained" / "surnames", surnames)
    config = json.loads((surnames / "config.json").read_text())
    config["calibration"] = {"temperature": 1.3, "how": "set by this test"}
    (surnames / "config.json").write_text(json.dumps(record(surnames, config)))
    section = add_name_table(surnames, names, alpha=2.0, any_data=True)
    return surnames, names, section


def write_people(path: Path, births: list[tuple[int, str, str, int]]) -> None:
    """The totals per name and sex of ``births`` (year, name, sex, count) over all years, as a CSV file."""
    totals: dict[tuple[str, str], int] = {}
    for _, name, sex, n in births:
        totals[(name, sex)] = totals.get((name, sex), 0) + n
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("name", "sex", "count")] + [(n, s, c) for (n, s), c in totals.items()])


def write_by_year(path: Path, births: list[tuple[int, str, str, int]]) -> None:
    """``births`` (year, name, sex, count) as a by-year file (gzip CSV)."""
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("year", "name", "sex", "count")] + births)


def build(root: Path) -> dict:
    """``{"surnames": (model dir, bundle dir), "gender": (...)}`` under ``root``."""
    from namemodels.export import export, load_torch_model
    from namemodels.training.name_tables import add_name_table

    surnames, _, _ = surnames_with_rules(root, LINES)
    people, by_year = root / "people.csv", root / "by_year.csv.gz"
    write_people(people, BIRTHS)
    write_by_year(by_year, BIRTHS)
    gender = root / "gender"
    add_name_table("gender", people, any_data=True, recent=by_year, since=2004, out=gender)
    out = {}
    for directory in (surnames, gender):
        model, cfg, d = load_torch_model(str(directory))
        export(model, cfg, "bundle", root / f"{directory.name}-bundle", directory=d)
        out[directory.name] = (directory, root / f"{directory.name}-bundle")
    return out
