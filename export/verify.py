"""Run exported artifacts in every installed runtime and compare with the PyTorch model.

Runtimes: ONNX Runtime, the ONNX reference evaluator, OpenVINO, tract (ONNX) and TorchScript. A
runtime that is not installed is skipped and reported as such. Inputs (``cases="full"``, what
``namemodels export --verify`` runs): random ids and real names, batch sizes 1..64, lengths 1..40
(mixed within a batch); generators run 40 decoding steps from the initial state with each runtime
feeding back its own state. ``cases="quick"`` (the tests) keeps one of each kind of case -- a single
one-character name, a batch with lengths 1..9 mixed (padding and per-sequence reversal), real names;
a generator's batch of random tokens and of real names -- because the reference evaluator is slow.
Pass: max abs error <= 1e-4 on the log-probabilities and the same top-1 everywhere. Each runtime is
also timed against PyTorch eager.

OpenVINO note: its CPU plugin computes in bfloat16 by default on CPUs with AVX-512 BF16 or AMX
(``INFERENCE_PRECISION_HINT``), which moves log-probabilities by ~0.1. The ``openvino`` runtime therefore
compiles with ``INFERENCE_PRECISION_HINT=f32`` (fp32-exact on every CPU) and is judged by the 1e-4
tolerance. ``openvino-native`` runs OpenVINO at the CPU's own default precision; ``namemodels export
--verify`` adds it only where that default is not f32, and judges it against ``LOW_PRECISION_TOLERANCE``
(bfloat16 keeps 8 significant bits).

tract note: tract 0.23's declutter pass fails on a momentum graph with a symbolic time axis, and
its recurrent ops panic on a symbolic batch, so the tract runner pins each call's (batch, time) as
input facts (one optimized plan per shape, cached); the ONNX file itself stays fully dynamic.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, cast

import numpy as np

from namemodels.recipe import zero_state
from namemodels.samples import SURNAMES
from namemodels.tokenizer import CharTokenizer

from .onnx_graph import step_state_layout

if TYPE_CHECKING:  # OpenVINO is optional, imported where it runs; torch where a model is checked
    import openvino
    from torch import nn

    from .weights import ModelWeights

TOLERANCE = 1e-4
# openvino-native in bfloat16: max abs error on log-probabilities, and the share of rows whose top-1 may
# differ from PyTorch (near-ties flip when 8 significant bits are left).
LOW_PRECISION_TOLERANCE = {"max_abs_err": 0.5, "top1_mismatch_share": 0.05}
# real surnames, with the extremes of length among them (the longest the models take, one letter)
REAL_NAMES = [*SURNAMES[:20], "Wolfeschlegelsteinhausenbergerdorff", *SURNAMES[20:22], "Z", *SURNAMES[22:30]]
RUNTIMES = ("onnxruntime", "reference", "openvino", "tract", "torchscript")
PT2 = "pt2"  # torch.export (export/pt2.py): checked when asked for (export --format pt2 --verify)
AOTI = "aoti"  # an AOTInductor package (export/pt2.py:save_aoti): checked when asked for (--format aoti --verify)
# The AOTInductor package is judged more tightly than the other runtimes: it is the model's own
# float32 arithmetic, compiled (Inductor may reorder sums and fuse, not change precision).
AOTI_TOLERANCE = 5e-5
# Reported beside RUNTIMES where it differs from them (see openvino_default_precision).
OPENVINO_NATIVE = "openvino-native"
_MODULES = {
    "onnxruntime": "onnxruntime",
    "reference": "onnx",
    "openvino": "openvino",
    OPENVINO_NATIVE: "openvino",
    "tract": "tract",
    "torchscript": "torch",
    "pt2": "torch",
    "aoti": "torch",
}


def available(runtime: str) -> str | None:
    """None when usable, else why not."""
    module = _MODULES[runtime]
    return None if importlib.util.find_spec(module) else f"{module} is not installed"


def openvino_core() -> openvino.Core:
    """The ``openvino.Core`` every OpenVINO runner compiles with (one place, so tests can stand in a
    Core whose CPU default precision is forced to bf16)."""
    import openvino as ov

    return ov.Core()


def openvino_default_precision() -> str | None:
    """OpenVINO's CPU default inference precision here (``"f32"``, ``"bf16"``, ...), None without OpenVINO."""
    if available("openvino"):
        return None
    return openvino_core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


def onnx_runtimes() -> tuple:
    """The runtimes ``namemodels export --format onnx --verify`` checks on this machine."""
    base = ("onnxruntime", "reference", "openvino", "tract")
    precision = openvino_default_precision()
    return base + ((OPENVINO_NATIVE,) if precision not in (None, "f32") else ())


# ---- runners: feeds dict -> list of outputs (graph order) ---------------------------------------
def onnx_runner(runtime: str, path: str | Path) -> Callable[[dict], list]:
    if runtime == "onnxruntime":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda feeds: sess.run(None, feeds)
    if runtime == "reference":
        import onnx
        from onnx.reference import ReferenceEvaluator

        ref = ReferenceEvaluator(onnx.load(str(path)))
        return lambda feeds: cast(list, ref.run(None, feeds))  # a list of the outputs
    if runtime in ("openvino", OPENVINO_NATIVE):
        # f32 explicitly: on bf16-capable CPUs OpenVINO's default would compute in bfloat16.
        config = {"INFERENCE_PRECISION_HINT": "f32"} if runtime == "openvino" else {}
        compiled = openvino_core().compile_model(str(path), "CPU", config)
        outputs = compiled.outputs

        def run(feeds):
            res = compiled(feeds)
            return [np.asarray(res[o]) for o in outputs]

        return run
    if runtime == "tract":
        import tract

        plans: dict[tuple, tuple[list[str], Any]] = {}

        def run(feeds):
            key = tuple((k, v.shape) for k, v in feeds.items())
            if key not in plans:
                model = tract.onnx().load(str(path))
                names = [model.input_name(i) for i in range(model.input_count())]
                for i, n in enumerate(names):
                    v = feeds[n]
                    model.set_input_fact(
                        i,
                        ",".join(map(str, v.shape))
                        + ("," if v.shape else "")
                        + ("i64" if v.dtype == np.int64 else "f32"),
                    )
                plans[key] = (names, model.into_model().into_runnable())
            names, plan = plans[key]
            return [t.to_numpy() for t in plan.run([feeds[n] for n in names])]

        return run
    raise ValueError(runtime)


def _module_runner(module: Any, generator: bool, state_names: list[str]) -> Callable[[dict], list]:
    """Feeds -> outputs of a torch module with the exported signature (TorchScript and pt2 share it):
    ``(ids, lengths) -> logprobs`` for a classifier, ``(token, states, category) -> (logprobs, states)``
    for a generator step."""
    import torch

    def run(feeds):
        with torch.inference_mode():
            if not generator:
                return [module(torch.from_numpy(feeds["ids"]), torch.from_numpy(feeds["lengths"])).numpy()]
            state = [torch.from_numpy(feeds[n]) for n in state_names]
            cat = torch.from_numpy(feeds.get("category", np.zeros(len(feeds["token"]), np.int64)))
            logp, state = module(torch.from_numpy(feeds["token"]), state, cat)
            return [logp.numpy()] + [s.numpy() for s in state]

    return run


def torchscript_runner(path: str | Path, generator: bool, state_names: list[str]) -> Callable[[dict], list]:
    import torch

    from .weights import quiet_torchscript

    with quiet_torchscript():
        module = torch.jit.load(str(path))
    return _module_runner(module, generator, state_names)


def pt2_runner(path: str | Path, generator: bool, state_names: list[str]) -> Callable[[dict], list]:
    """A torch.export program (export/pt2.py) loaded with ``torch.export.load``, called as a user would."""
    from .pt2 import load_program

    return _module_runner(load_program(path).module(), generator, state_names)


def aoti_runner(path: str | Path, generator: bool, state_names: list[str]) -> Callable[[dict], list]:
    """An AOTInductor package (export/pt2.py:save_aoti) loaded with ``torch._inductor.aoti_load_package``
    (:func:`namemodels.export.pt2.load_aoti`), called as the pt2 program is."""
    from .pt2 import load_aoti

    return _module_runner(load_aoti(path)[0], generator, state_names)


def aoti_max_length(path: str | Path) -> int | None:
    """A classifier package's fixed length (``aoti_max_length`` in its ``namemodels.json``), None for a
    generator's step."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        name = next((n for n in z.namelist() if n.endswith("/extra/namemodels.json")), None)
        return json.loads(z.read(name)).get("aoti_max_length") if name else None


# ---- cases --------------------------------------------------------------------------------------
FIRST_CHAR = len(CharTokenizer.SPECIALS)  # random names draw ids from here up: characters, no specials


def _vocab_ids(w: ModelWeights, names: list[str]) -> list[list[int]]:
    """``names`` encoded by the model's own tokenizer (config.json's), as its users' inputs are."""
    tok = CharTokenizer.from_dict(w.config["tokenizer"])
    return [tok.encode(n) for n in names]


CASES = ("full", "quick")


def classifier_cases(
    w: ModelWeights, rng: np.random.Generator, cases: str = "full", max_length: int | None = None
) -> list[dict]:
    """``max_length``: the longest name a runtime takes (an AOTInductor package's fixed length); longer
    lengths are capped and longer real names left out."""
    V = w.embedding.shape[0]
    quick = cases == "quick"
    out = []
    shapes: tuple[tuple[int, int, int], ...] = (
        ((1, 1, 1), (4, 1, 9)) if quick else ((1, 1, 1), (1, 40, 40), (2, 1, 40), (7, 1, 12), (16, 1, 40), (64, 3, 25))
    )
    if max_length is not None:
        shapes = tuple((B, min(lo, max_length), min(hi, max_length)) for B, lo, hi in shapes)
    for B, lo, hi in shapes:
        lengths = rng.integers(lo, hi + 1, B)
        if B > 2:  # both extremes present: a one-step sequence padded to the longest
            lengths[:2] = lo, hi
        ids = np.zeros((B, int(lengths.max())), np.int64)
        for i, L in enumerate(lengths):
            ids[i, :L] = rng.integers(FIRST_CHAR, V, L)
        out.append({"ids": ids, "lengths": lengths.astype(np.int64)})
    for names in (REAL_NAMES[:5],) if quick else (REAL_NAMES[:1], REAL_NAMES[:5], REAL_NAMES):
        seqs = [s for s in _vocab_ids(w, names) if max_length is None or len(s) <= max_length]
        ids = np.zeros((len(seqs), max(map(len, seqs))), np.int64)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
        out.append({"ids": ids, "lengths": np.array([len(s) for s in seqs], np.int64)})
    return out


def generator_cases(w: ModelWeights, rng: np.random.Generator, cases: str = "full") -> list[dict]:
    """Each case: tokens (S, B) fed step by step, category (B,) or None."""
    V = w.embedding.shape[0]
    K = len(w.labels) if w.category is not None else 0
    quick = cases == "quick"
    out = []
    for B, S in ((3, 6),) if quick else ((1, 40), (5, 12), (32, 8)):
        toks = rng.integers(CharTokenizer.pad_id + 1, V, (S, B))
        toks[0] = CharTokenizer.bos_id
        out.append({"tokens": toks, "category": rng.integers(0, K + 1, B) if K else None})
    seqs = _vocab_ids(w, REAL_NAMES[:4] if quick else REAL_NAMES[:8])
    S = max(map(len, seqs)) + 1
    toks = np.full((S, len(seqs)), CharTokenizer.eos_id, np.int64)
    toks[0] = CharTokenizer.bos_id
    for i, s in enumerate(seqs):
        toks[1 : len(s) + 1, i] = s
    out.append({"tokens": toks, "category": rng.integers(0, K + 1, len(seqs)) if K else None})
    return out


def _torch_reference(model, w, cases):
    import torch

    outs = []
    with torch.inference_mode():
        for case in cases:
            if not w.generator:
                outs.append([model.log_probs(torch.from_numpy(case["ids"]), torch.from_numpy(case["lengths"])).numpy()])
                continue
            state, steps = None, []
            cat = torch.from_numpy(case["category"]) if case["category"] is not None else None
            for tok in case["tokens"]:
                logp, state = model.step(torch.from_numpy(tok), state, cat)
                steps.append(logp.numpy())
            outs.append(steps)
    return outs


def _run_case(run, w, case, state_names):
    if not w.generator:
        return [run({"ids": case["ids"], "lengths": case["lengths"]})[0]]
    state = zero_state(step_state_layout(w), case["tokens"].shape[1])
    steps = []
    for tok in case["tokens"]:
        feeds = {"token": tok.astype(np.int64), **state}
        if case["category"] is not None:
            feeds["category"] = case["category"].astype(np.int64)
        outs = run(feeds)
        steps.append(outs[0])
        state = dict(zip(state_names, outs[1:]))
    return steps


def _timing_feeds(w: ModelWeights, batch: int, rng: np.random.Generator, length: int = 8) -> dict:
    V = w.embedding.shape[0]
    if not w.generator:
        lengths = np.full(batch, length, np.int64)
        return {"ids": rng.integers(FIRST_CHAR, V, (batch, length)), "lengths": lengths}
    feeds = {"token": rng.integers(CharTokenizer.pad_id + 1, V, batch)}
    feeds.update(zero_state(step_state_layout(w), batch))
    if w.category is not None:
        feeds["category"] = np.zeros(batch, np.int64)
    return feeds


def _time(fn: Callable[[], object], repeat: int, budget_s: float = 1.0) -> float:
    fn()
    times = []
    start = time.perf_counter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return float(np.median(times)) * 1e3


def _torch_timer(model, w, feeds):
    import torch

    if not w.generator:
        ids, lengths = torch.from_numpy(feeds["ids"]), torch.from_numpy(feeds["lengths"])

        def fn():
            with torch.inference_mode():
                model.log_probs(ids, lengths)

        return fn
    tok = torch.from_numpy(feeds["token"])
    cat = torch.from_numpy(feeds["category"]) if "category" in feeds else None

    def step_fn():
        with torch.inference_mode():
            model.step(tok, None, cat)

    return step_fn


def _within_tolerance(runtime: str, err: float, top1_mismatches: int, rows: int) -> bool:
    if runtime == OPENVINO_NATIVE:
        return (
            err <= LOW_PRECISION_TOLERANCE["max_abs_err"]
            and top1_mismatches <= LOW_PRECISION_TOLERANCE["top1_mismatch_share"] * rows
        )
    if runtime == AOTI:
        return err <= AOTI_TOLERANCE and top1_mismatches == 0
    return err <= TOLERANCE and top1_mismatches == 0


def verify(
    model: nn.Module,
    config: dict,
    onnx_path: str | Path | None = None,
    torchscript_path: str | Path | None = None,
    runtimes: Sequence[str] = RUNTIMES,
    seed: int = 0,
    timing: bool = True,
    cases: str = "full",
    pt2_path: str | Path | None = None,
    aoti_path: str | Path | None = None,
) -> dict:
    """Compare artifacts with ``model``; returns ``{"cell", "kind", "rows": [...], "ok"}``.

    ``cases``: ``"full"`` (every batch size and length; the export command) or ``"quick"`` (one case of
    each kind; the tests). With ``aoti_path`` and ``"aoti"`` among ``runtimes``, a classifier's cases
    stay within the package's fixed length (for every runtime of the call)."""
    from .weights import extract

    if cases not in CASES:
        raise ValueError(f"cases must be one of {CASES}, got {cases!r}")
    w = extract(model, config)
    rng = np.random.default_rng(seed)
    limit = aoti_max_length(aoti_path) if aoti_path is not None and AOTI in runtimes else None
    case_list = generator_cases(w, rng, cases) if w.generator else classifier_cases(w, rng, cases, limit)
    expected = _torch_reference(model, w, case_list)
    names = list(step_state_layout(w))
    rows = []
    length = min(8, limit or 8)
    timing_feeds = {1: _timing_feeds(w, 1, rng, length), 256: _timing_feeds(w, 256, rng, length)}
    torch_ms = {b: _time(_torch_timer(model, w, f), 200) for b, f in timing_feeds.items()} if timing else {}
    for runtime in runtimes:
        path = {"torchscript": torchscript_path, "pt2": pt2_path, AOTI: aoti_path}.get(runtime, onnx_path)
        row: dict[str, Any] = {
            "runtime": runtime,
            "format": runtime if runtime in ("torchscript", "pt2", AOTI) else "onnx",
        }
        rows.append(row)
        if path is None:
            row["status"] = "skipped: no artifact"
            continue
        why = available(runtime)
        if why:
            row["status"] = f"skipped: {why}"
            continue
        t_start = time.perf_counter()
        try:
            run = (
                torchscript_runner(path, w.generator, names)
                if runtime == "torchscript"
                else pt2_runner(path, w.generator, names)
                if runtime == "pt2"
                else aoti_runner(path, w.generator, names)
                if runtime == AOTI
                else onnx_runner(runtime, path)
            )
            err, top1, n = 0.0, 0, 0
            for case, ref in zip(case_list, expected):
                got = _run_case(run, w, case, names)
                for g, r in zip(got, ref):
                    err = max(err, float(np.abs(np.asarray(g) - r).max()))
                    top1 += int((np.asarray(g).argmax(1) != r.argmax(1)).sum())
                    n += r.shape[0]
            row.update(
                max_abs_err=err,
                top1_mismatches=top1,
                compared_rows=n,
                check_s=time.perf_counter() - t_start,
                status="ok" if _within_tolerance(runtime, err, top1, n) else "FAIL",
            )
            if runtime in ("openvino", OPENVINO_NATIVE):
                row["precision"] = "f32" if runtime == "openvino" else openvino_default_precision()
            if timing:
                reps = 5 if runtime == "reference" else 200
                for b, f in timing_feeds.items():
                    ms = _time(functools.partial(run, f), reps)
                    row[f"ms_b{b}"] = ms
                    row[f"torch_ms_b{b}"] = torch_ms[b]
                    row[f"speedup_b{b}"] = torch_ms[b] / ms if ms else None
        except Exception as exc:  # a runtime that cannot load or run the graph is a failure, not a crash
            row.update(
                status="FAIL", error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            )
    ok = all(r["status"] == "ok" or r["status"].startswith("skipped") for r in rows)
    return {
        "cell": w.cell,
        "kind": w.kind,
        "layers": w.layers,
        "bidirectional": w.directions == 2,
        "conditioned": w.category is not None,
        "pool": w.pool,
        "rows": rows,
        "ok": ok,
    }


def format_table(reports: list[dict]) -> str:
    lines = [
        f"{'model':<34} {'runtime':<16} {'status':<32} {'max|err|':>9} {'top1':>5} "
        f"{'ms b=1':>8} {'torch':>8} {'x':>6} {'ms b=256':>9} {'torch':>8} {'x':>6}"
    ]
    for rep in reports:
        label = (
            f"{rep['kind']}/{rep['cell']}"
            + ("/bi" if rep.get("bidirectional") else "")
            + (f"/L{rep['layers']}" if rep.get("layers", 1) > 1 else "")
            + ("/cond" if rep.get("conditioned") else "")
            + ("/max" if rep.get("pool") == "max" else "")
        )
        for r in rep["rows"]:

            def f(k: str, fmt: str, r: dict = r) -> str:
                return format(r[k], fmt) if r.get(k) is not None else "-"

            runtime = f"openvino {r['precision']}" if r.get("precision") else r["runtime"]
            lines.append(
                f"{label:<34} {runtime:<16} {r['status'][:32]:<32} {f('max_abs_err', '.1e'):>9} "
                f"{f('top1_mismatches', 'd'):>5} {f('ms_b1', '.3f'):>8} {f('torch_ms_b1', '.3f'):>8} "
                f"{f('speedup_b1', '.1f'):>6} {f('ms_b256', '.2f'):>9} {f('torch_ms_b256', '.2f'):>8} "
                f"{f('speedup_b256', '.1f'):>6}"
            )
            if r.get("error"):
                lines.append(f"{'':<34} {'':<16} error: {r['error']}")
    return "\n".join(lines)
