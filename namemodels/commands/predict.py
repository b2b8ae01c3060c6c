"""``namemodels predict``, ``gender`` and ``generate``: answers from a shipped or trained model.

Invalid names are reported one line each on stderr (exit code 2) while the valid names in the same
call are still answered.
"""
from __future__ import annotations

import json
import sys
from typing import List, Tuple


def register(sub) -> None:
    p = sub.add_parser("predict", help="language of origin of surnames (log-probabilities, best first)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--model", default="surnames", help="shipped model name or model directory (default surnames)")
    p.add_argument("--top", type=int, default=3, help="how many labels per name (default 3)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_predict)

    g = sub.add_parser("gender", help="sex most associated with first names, with its probability")
    g.add_argument("names", nargs="+", metavar="NAME")
    g.add_argument("--model", default="gender", help="shipped model name or model directory (default gender)")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.set_defaults(func=run_gender)

    n = sub.add_parser("generate", help="sample new names from a generator model")
    n.add_argument("--model", default="first-names", help="first-names, surnames-gen, or a model directory")
    n.add_argument("--n", type=int, default=10, help="how many names (default 10)")
    n.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    n.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest characters")
    n.add_argument("--start", default="", metavar="PREFIX", help="every name starts with this prefix")
    n.add_argument("--category", default=None, help="condition on a label (a language, or F/M)")
    n.add_argument("--seed", type=int, default=None, help="random seed for reproducible samples")
    n.add_argument("--novel", action="store_true", help="reject names present in the training data")
    n.add_argument("--json", action="store_true", help="machine-readable output")
    n.set_defaults(func=run_generate)


def _split_valid(names: List[str]) -> Tuple[List[Tuple[str, str]], List[str]]:
    from namemodels.data import check_name
    from namemodels.errors import UsageError
    valid, errors = [], []
    for name in names:
        try:
            valid.append((name, check_name(name)))
        except UsageError as exc:
            errors.append(str(exc))
    return valid, errors


def _report(errors: List[str], command: str) -> int:
    for e in errors:
        print(f"namemodels {command}: error: {e}", file=sys.stderr)
    return 2 if errors else 0


def run_predict(args) -> int:
    from namemodels.errors import UsageError
    from namemodels.predictor import load
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    model = load(args.model)
    valid, errors = _split_valid(args.names)
    results = model.predict([clean for _, clean in valid], top=args.top) if valid else []
    if args.json:
        print(json.dumps([{"name": n, "predictions": [{"label": l, "logprob": round(p, 6)} for l, p in r]}
                          for (n, _), r in zip(valid, results)], indent=2))
    else:
        for (name, _), preds in zip(valid, results):
            print(f"> {name}")
            for label, logp in preds:
                print(f"({logp:.2f}) {label}")
    return _report(errors, "predict")


def run_gender(args) -> int:
    from namemodels.predictor import load
    model = load(args.model)
    valid, errors = _split_valid(args.names)
    rows = []
    if valid:
        probs = model.predict_proba([clean for _, clean in valid])
        female = model.labels.index("F")
        for (name, _), p in zip(valid, probs):
            label = "F" if p[female] >= 0.5 else "M"
            rows.append({"name": name, "label": label, "probability": round(float(max(p[female], 1 - p[female])), 4),
                         "p_female": round(float(p[female]), 4)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max((len(r["name"]) for r in rows), default=0)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['label']}  {r['probability']:.3f}")
    return _report(errors, "gender")


def run_generate(args) -> int:
    from namemodels.errors import UsageError
    from namemodels.predictor import load
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    names = load(args.model).generate(n=args.n, temperature=args.temperature, top_k=args.top_k, start=args.start,
                                      category=args.category, seed=args.seed, novel=args.novel)
    print(json.dumps(names) if args.json else "\n".join(names))
    return 0
