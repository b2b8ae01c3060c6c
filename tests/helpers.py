"""Small data sets the tests make themselves (the real data may be absent)."""
from pathlib import Path

import numpy as np

SYLLABLES = {
    "Italian": ["ro", "ssi", "bi", "an", "chi", "ni", "lo", "tti"],
    "Japanese": ["ka", "wa", "ta", "na", "be", "mo", "to", "yama"],
    "Russian": ["iv", "an", "ov", "ko", "vich", "sky", "ev", "in"],
}


def make_surnames(root: Path, per_class: int = 60, seed: int = 0) -> Path:
    """A folder of <Language>.txt with names built from each language's syllables."""
    rng = np.random.default_rng(seed)
    d = root / "names"
    d.mkdir(parents=True, exist_ok=True)
    for lang, syl in SYLLABLES.items():
        names = {"".join(rng.choice(syl, rng.integers(2, 4))).capitalize() for _ in range(per_class)}
        (d / f"{lang}.txt").write_text("\n".join(sorted(names)) + "\n", encoding="utf-8")
    return d


def make_first_names(root: Path, n: int = 200, seed: int = 0) -> Path:
    """A name,sex,count CSV where names ending in 'a' are mostly female."""
    rng = np.random.default_rng(seed)
    stems = ["mar", "ann", "jo", "el", "rob", "al", "dan", "kat", "lu", "tom", "ber", "ed"]
    rows = ["name,sex,count"]
    seen = set()
    for _ in range(n):
        stem = "".join(rng.choice(stems, rng.integers(1, 3)))
        female = rng.random() < 0.5
        name = (stem + ("a" if female else rng.choice(["o", "n", "k"]))).capitalize()
        if name in seen:
            continue
        seen.add(name)
        main = int(rng.integers(5, 500))
        rows.append(f"{name},{'F' if female else 'M'},{main}")
        if rng.random() < 0.3:
            rows.append(f"{name},{'M' if female else 'F'},{int(rng.integers(1, 5))}")
    path = root / "first_names.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
