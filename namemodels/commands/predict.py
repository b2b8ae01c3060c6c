"""``namemodels predict``, ``gender`` and ``generate``: answers from a shipped or trained model.

Invalid names are reported one line each on stderr (exit code 2) while the valid names in the same
call are still answered: the Python API's ``predict(names, errors="return")``, which these commands
call, so the two always agree.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING

from namemodels.config import GENERATE_LIMITS, MAX_NAMES, TOP_LIMIT
from namemodels.options import number

from .common import json_text
from .files import add_file_options, need_names, run_file

if TYPE_CHECKING:  # annotations only: the predictor is imported when a command runs
    from namemodels.inference.predictor import Answer, Predictor


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="language of origin of surnames (log-probabilities, best first)")
    p.add_argument("names", nargs="*", metavar="NAME", help="surnames to classify (or --input FILE)")
    p.add_argument("--model", default="surnames", help="shipped model name or model directory (default surnames)")
    p.add_argument("--top", type=number(int, TOP_LIMIT), default=3, help="how many labels per name (default 3)")
    p.add_argument("--json", action="store_true", help="print the answers as JSON on stdout")
    _add_min_prob(p)
    add_file_options(p)
    p.set_defaults(func=run_predict)

    g = sub.add_parser("gender", help="sex most associated with first names, with its probability")
    g.add_argument("names", nargs="*", metavar="NAME", help="first names (or --input FILE)")
    g.add_argument("--model", default="gender", help="shipped model name or model directory (default gender)")
    g.add_argument("--json", action="store_true", help="print the answers as JSON on stdout")
    _add_min_prob(g)
    add_file_options(g)
    g.set_defaults(func=run_gender)

    n = sub.add_parser("generate", help="sample new names from a generator model")
    n.add_argument("--model", default="first-names", help="first-names, surnames-gen, or a model directory")
    n.add_argument(
        "--n",
        type=number(int, GENERATE_LIMITS["n"]),
        default=10,
        help=f"how many names, 1 to {MAX_NAMES:,} (default 10)",
    )
    n.add_argument(
        "--temperature",
        type=number(float, GENERATE_LIMITS["temperature"]),
        default=0.8,
        help="sampling temperature above 0: 1 follows the model, lower is more conservative, near 0 "
        "always takes the likeliest letter (default 0.8)",
    )
    n.add_argument(
        "--top-k",
        type=number(int, GENERATE_LIMITS["top_k"]),
        default=None,
        metavar="K",
        help="sample only among the k likeliest characters",
    )
    n.add_argument("--start", default="", metavar="PREFIX", help="every name starts with this prefix")
    n.add_argument("--category", default=None, help="condition on a label (a language, or F/M)")
    n.add_argument(
        "--seed",
        type=number(int, GENERATE_LIMITS["seed"]),
        default=None,
        help="random seed (a whole number >= 0) for reproducible samples",
    )
    n.add_argument("--novel", action="store_true", help="reject names present in the training data")
    n.add_argument(
        "--json", action="store_true", help="print the names as a JSON list on stdout (with --output: write it there)"
    )
    n.add_argument(
        "--output",
        metavar="PATH",
        default=None,
        help="write the names to PATH (one a line; a JSON list with --json), complete or not at all",
    )
    n.set_defaults(func=run_generate)


def _add_min_prob(p: argparse.ArgumentParser) -> None:
    from namemodels.options import Range

    p.add_argument(
        "--min-prob",
        type=number(float, Range(0.0, 1.0)),
        default=None,
        metavar="P",
        help="answer 'unknown' (with the reason) when the likeliest label's probability is below P",
    )


def _answer(
    model: Predictor, names: list[str], top: int | None, min_prob: float | None = None
) -> tuple[list[tuple[str, Answer]], list[Exception]]:
    """(name as typed, less surrounding white space; its :class:`Answer`) per valid name, and the errors."""
    answers = model.predict(names, top=top, errors="return", details=True, min_prob=min_prob)
    valid = [(name.strip(), a) for name, a in zip(names, answers) if not isinstance(a, Exception)]
    return valid, [a for a in answers if isinstance(a, Exception)]


def _evidence(a: Answer) -> str:
    """``data: 488,070 births`` or ``model`` (the name is not in the model's name table), then what
    else the answer took in: the recent span's count, marked letters, the script's labels."""
    if a.source != "data":
        text = "model"
    else:
        unit = a.unit or "counts"
        text = f"data: {a.count:,} {unit[:-1] if a.count == 1 and unit.endswith('s') else unit}"
    if a.recent is not None:
        text += f", {a.recent['count']:,} in {a.recent['span']}"
    ev = a.evidence or {}
    if ev.get("also_spelled"):
        text += f" with {ev['also_spelled']}"
    if ev.get("letters"):
        text += "; letters " + ", ".join(
            f"{c}: " + " ".join(f"{label} {n}" for label, n in per.items()) for c, per in ev["letters"].items()
        )
    if ev.get("scripts"):
        text += f"; {'+'.join(ev['scripts'])} script" + (
            f": {', '.join(ev['labels'])} only" if ev.get("labels") else ""
        )
    return text


def _evidence_json(a: Answer) -> dict:
    out = {"source": a.source, "count": a.count}
    if a.recent is not None:  # a table with a recent layer: the span and the name's births in it
        out["recent"] = a.recent
    if a.evidence:  # marked letters (lines per label), scripts and the labels kept
        out["evidence"] = a.evidence
    if a.reason is not None:
        out["reason"] = a.reason
    if a.transliterated is not None:  # the Latin form the model read (another script, anyascii)
        out["transliterated"] = a.transliterated
    return out


def _shown(name: str, a: Answer) -> str:
    """The name as typed, and the Latin form the model read when it was transliterated."""
    return name if a.transliterated is None else f"{name} = {a.transliterated}"


def _report(errors: list[Exception], command: str) -> int:
    for e in errors:
        print(f"namemodels {command}: error: {e}", file=sys.stderr)
    return 2 if errors else 0


def run_predict(args: argparse.Namespace) -> int:
    from namemodels.inference.predictor import load

    code = run_file(args, "predict")
    if code is not None:
        return code
    need_names(args)
    valid, errors = _answer(load(args.model), args.names, args.top, args.min_prob)
    if args.json:
        print(
            json_text(
                [
                    {
                        "name": n,
                        "label": a.label,
                        "probability": round(a.probability, 4),
                        **_evidence_json(a),
                        "predictions": [
                            {"label": label, "logprob": round(p, 6)} for label, p in a.top if p > -math.inf
                        ],
                    }
                    for n, a in valid
                ]
            )
        )
    else:
        for name, a in valid:
            print(f"> {_shown(name, a)} ({_evidence(a)})")
            if a.reason is not None:
                print(f"unknown: {a.reason}")
                continue
            for label, logp in a.top:
                if logp > -math.inf:  # a label ruled out (probability 0: another script) is not listed
                    print(f"({logp:.2f}) {label}")
    return _report(errors, "predict")


def run_gender(args: argparse.Namespace) -> int:
    from namemodels.inference.predictor import load
    from namemodels.inference.scoring import gender_call

    code = run_file(args, "gender")
    if code is not None:
        return code
    need_names(args)
    model = load(args.model)
    model.need_gender()
    valid, errors = _answer(model, args.names, None, args.min_prob)
    rows, shown = [], []
    for name, answer in valid:
        female = math.exp(dict(answer.top)["F"])
        label, probability = gender_call(female)
        if answer.reason is not None:
            label = answer.label
        rows.append(
            {
                "name": name,
                "label": label,
                "probability": round(probability, 4),
                "p_female": round(female, 4),
                **_evidence_json(answer),
            }
        )
        shown.append(
            _evidence(answer)
            + (f"; {answer.reason}" if answer.reason else "")
            + (f"; read as {answer.transliterated}" if answer.transliterated else "")
        )
    if args.json:
        print(json_text(rows))
    else:
        width = max((len(r["name"]) for r in rows), default=0)
        lw = max((len(r["label"]) for r in rows), default=0)
        for r, evidence in zip(rows, shown):
            print(f"{r['name']:<{width}}  {r['label']:<{lw}}  {r['probability']:.3f}  ({evidence})")
    return _report(errors, "gender")


def run_generate(args: argparse.Namespace) -> int:
    from namemodels.inference.predictor import load

    names = load(args.model).generate(
        n=args.n,
        temperature=args.temperature,
        top_k=args.top_k,
        start=args.start,
        category=args.category,
        seed=args.seed,
        novel=args.novel,
    )
    text = json_text(names) if args.json else "\n".join(names)
    if args.output is None:
        print(text)
        return 0
    from namemodels.bulk import atomic_output

    with atomic_output(args.output) as out:
        out.write(text + "\n")
    return 0
