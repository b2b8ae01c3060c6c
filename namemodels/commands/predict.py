"""``namemodels predict``, ``gender`` and ``generate``: answers from a shipped or trained model.

Invalid names are reported one line each on stderr (exit code 2) while the valid names in the same
call are still answered: the Python API's ``predict(names, errors="return")``, which these commands
call, so the two always agree.
"""
from __future__ import annotations

import math
import sys
from typing import List

from namemodels.config import GENERATE_LIMITS, MAX_NAMES, TOP_LIMIT
from namemodels.options import number

from .common import json_text
from .files import add_file_options, need_names, run_file


def register(sub) -> None:
    p = sub.add_parser("predict", help="language of origin of surnames (log-probabilities, best first)")
    p.add_argument("names", nargs="*", metavar="NAME", help="surnames to classify (or --input FILE)")
    p.add_argument("--model", default="surnames", help="shipped model name or model directory (default surnames)")
    p.add_argument("--top", type=number(int, TOP_LIMIT), default=3, help="how many labels per name (default 3)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_file_options(p)
    p.set_defaults(func=run_predict)

    g = sub.add_parser("gender", help="sex most associated with first names, with its probability")
    g.add_argument("names", nargs="*", metavar="NAME", help="first names (or --input FILE)")
    g.add_argument("--model", default="gender", help="shipped model name or model directory (default gender)")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    add_file_options(g)
    g.set_defaults(func=run_gender)

    n = sub.add_parser("generate", help="sample new names from a generator model")
    n.add_argument("--model", default="first-names", help="first-names, surnames-gen, or a model directory")
    n.add_argument("--n", type=number(int, GENERATE_LIMITS["n"]), default=10,
                   help=f"how many names, 1 to {MAX_NAMES:,} (default 10)")
    n.add_argument("--temperature", type=number(float, GENERATE_LIMITS["temperature"]), default=0.8,
                   help="sampling temperature above 0: 1 follows the model, lower is more conservative, near 0 "
                        "always takes the likeliest letter (default 0.8)")
    n.add_argument("--top-k", type=number(int, GENERATE_LIMITS["top_k"]), default=None, metavar="K",
                   help="sample only among the k likeliest characters")
    n.add_argument("--start", default="", metavar="PREFIX", help="every name starts with this prefix")
    n.add_argument("--category", default=None, help="condition on a label (a language, or F/M)")
    n.add_argument("--seed", type=number(int, GENERATE_LIMITS["seed"]), default=None,
                   help="random seed (a whole number >= 0) for reproducible samples")
    n.add_argument("--novel", action="store_true", help="reject names present in the training data")
    n.add_argument("--json", action="store_true", help="machine-readable output")
    n.add_argument("--output", metavar="PATH", default=None,
                   help="write the names to PATH (one a line; a JSON list with --json), complete or not at all")
    n.set_defaults(func=run_generate)


def _answer(model, names: List[str], top) -> list:
    """(name as typed, less surrounding white space; its answer) per valid name, and the errors."""
    answers = model.predict(names, top=top, errors="return")
    valid = [(name.strip(), a) for name, a in zip(names, answers) if not isinstance(a, Exception)]
    return valid, [a for a in answers if isinstance(a, Exception)]


def _report(errors: List[Exception], command: str) -> int:
    for e in errors:
        print(f"namemodels {command}: error: {e}", file=sys.stderr)
    return 2 if errors else 0


def run_predict(args) -> int:
    from namemodels.inference.predictor import load
    code = run_file(args, "predict")
    if code is not None:
        return code
    need_names(args)
    valid, errors = _answer(load(args.model), args.names, args.top)
    if args.json:
        print(json_text([{"name": n, "predictions": [{"label": l, "logprob": round(p, 6)} for l, p in r]}
                         for n, r in valid]))
    else:
        for name, preds in valid:
            print(f"> {name}")
            for label, logp in preds:
                print(f"({logp:.2f}) {label}")
    return _report(errors, "predict")


def run_gender(args) -> int:
    from namemodels.inference.predictor import load
    from namemodels.inference.scoring import gender_call
    code = run_file(args, "gender")
    if code is not None:
        return code
    need_names(args)
    model = load(args.model)
    model.need_gender()
    valid, errors = _answer(model, args.names, None)
    rows = []
    for name, answer in valid:
        female = math.exp(dict(answer)["F"])
        label, probability = gender_call(female)
        rows.append({"name": name, "label": label, "probability": round(probability, 4), "p_female": round(female, 4)})
    if args.json:
        print(json_text(rows))
    else:
        width = max((len(r["name"]) for r in rows), default=0)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['label']}  {r['probability']:.3f}")
    return _report(errors, "gender")


def run_generate(args) -> int:
    from namemodels.inference.predictor import load
    names = load(args.model).generate(n=args.n, temperature=args.temperature, top_k=args.top_k, start=args.start,
                                      category=args.category, seed=args.seed, novel=args.novel)
    text = json_text(names) if args.json else "\n".join(names)
    if args.output is None:
        print(text)
        return 0
    from namemodels.bulk import atomic_output
    with atomic_output(args.output) as out:
        out.write(text + "\n")
    return 0
