"""Two models whose answers use every step of the rule (namemodels/inference/name_table.py's Rule), and
their bundles: a copy of the shipped surnames model with a calibration temperature (1.3) and a name table
(marked letters) from a small folder made here, and a copy of the shipped gender model with a recent layer
from a small by-year file. Used by tests/export/test_bundle.py and tests/web/test_rules_browser.py."""

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


def build(root: Path) -> dict:
    """``{"surnames": (model dir, bundle dir), "gender": (...)}`` under ``root``."""
    import namemodels
    from namemodels.export import export, load_torch_model
    from namemodels.training.name_tables import add_name_table

    pretrained = Path(namemodels.__file__).parent / "pretrained"
    names = root / "names"
    names.mkdir()
    for label, lines in LINES.items():
        (names / f"{label}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    surnames = root / "surnames"
    shutil.copytree(pretrained / "surnames", surnames)
    config = json.loads((surnames / "config.json").read_text())
    config["calibration"] = {"temperature": 1.3, "how": "set by this test"}
    from namemodels.integrity import record  # the section is hash-checked: record the test's temperature

    (surnames / "config.json").write_text(json.dumps(record(surnames, config)))
    add_name_table(surnames, names, alpha=2.0, any_data=True)
    people, by_year = root / "people.csv", root / "by_year.csv.gz"
    with open(people, "w", newline="") as f:
        csv.writer(f).writerows([("name", "sex", "count")] + [r[1:] for r in BIRTHS])
    with gzip.open(by_year, "wt", newline="") as f:
        csv.writer(f).writerows([("year", "name", "sex", "count")] + BIRTHS)
    gender = root / "gender"
    add_name_table("gender", people, any_data=True, recent=by_year, since=2004, out=gender)
    out = {}
    for directory in (surnames, gender):
        model, cfg, d = load_torch_model(str(directory))
        export(model, cfg, "bundle", root / f"{directory.name}-bundle", directory=d)
        out[directory.name] = (directory, root / f"{directory.name}-bundle")
    return out
