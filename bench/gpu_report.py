"""The report of ``namemodels bench gpu-check``: the targets checked against its results, a Markdown
report and a PNG heat map of the speed-ups over cuDNN (matplotlib when installed, else a plain PNG of
coloured cells written with zlib), and the writing of the report's files (:func:`write_report`).
No torch here."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

SMALL_SHAPE = (64, 16, 128)  # B, T, H of the eager-vs-graph and per-step targets


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _rows(res: dict) -> list[dict]:
    return res.get("sections", {}).get("grid", {}).get("rows", []) or []


def _target(name: str, value: float | None, limit: float, higher: bool, detail: str = "") -> dict:
    holds = None if value is None else (value >= limit if higher else value <= limit)
    return {
        "name": name,
        "value": value,
        "limit": limit,
        "direction": ">=" if higher else "<=",
        "holds": holds,
        "detail": detail,
    }


def targets(res: dict) -> list[dict]:
    """Every target of the GPU work, evaluated on the run's results (None where not measured)."""
    rows = _rows(res)
    out: list[dict] = []
    cells = sorted({r["cell"] for r in rows})
    dtypes = sorted({r["dtype"] for r in rows})
    for what, mean_goal, share_goal, label in (("fwd", 2.0, 1.5, "forward"), ("fwd+bwd", 1.5, 1.2, "forward+backward")):
        for dtype in dtypes:
            for cell in cells:
                sp: list[float] = [
                    v
                    for v in (r.get(f"speedup_{what}") for r in rows if r["cell"] == cell and r["dtype"] == dtype)
                    if v
                ]
                out.append(
                    _target(
                        f"{label} vs cuDNN, {cell} {dtype}: geometric mean",
                        _geomean(sp),
                        mean_goal,
                        True,
                        f"{len(sp)} shapes",
                    )
                )
                share = sum(v >= share_goal for v in sp) / len(sp) if sp else None
                out.append(
                    _target(
                        f"{label} vs cuDNN, {cell} {dtype}: share of shapes >= {share_goal}x",
                        share,
                        0.8,
                        True,
                        f"{len(sp)} shapes",
                    )
                )
    by_shape: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by_shape.setdefault((r["cell"], r["B"], r["T"], r["H"]), {})[r["dtype"]] = r
    for cell in cells:
        ratios = []
        for key, per in by_shape.items():
            if key[0] == cell and "bfloat16" in per and "float32" in per:
                best = min(per[d].get("cudnn_fwd_ms") or math.inf for d in ("bfloat16", "float32"))
                ours = per["bfloat16"].get("ours_fwd_ms")
                if ours and best < math.inf:
                    ratios.append(best / ours)
        out.append(
            _target(
                f"forward bf16 vs cuDNN's faster dtype, {cell}: geometric mean",
                _geomean(ratios),
                1.5,
                True,
                f"{len(ratios)} shapes",
            )
        )
    B, T, H = SMALL_SHAPE
    for r in rows:
        if (r["B"], r["T"], r["H"]) == (B, T, H) and r.get("ours_graph_ms"):
            out.append(
                _target(
                    f"eager / CUDA-graph replay at B={B}, T={T}, H={H}, {r['cell']} {r['dtype']}",
                    r["ours_fwd_ms"] / r["ours_graph_ms"],
                    1.3,
                    False,
                )
            )
            if r["cell"] == "lstm" and r["dtype"] == "bfloat16":
                out.append(
                    _target(
                        f"kernel time per step (graph / T), lstm bf16 B={B}, T={T}, H={H} (us)",
                        r["ours_graph_ms"] / T * 1e3,
                        3.0,
                        False,
                    )
                )
    for what, label in (("fwd", "forward"), ("fwd+bwd", "forward+backward")):
        for dtype in dtypes:
            mp: list[float] = [
                v for v in (r.get(f"momentum_over_plain_{what}") for r in rows if r["dtype"] == dtype) if v
            ]
            out.append(
                _target(
                    f"momentum_lstm / lstm {label} time, {dtype}: geometric mean",
                    _geomean(mp),
                    1.1,
                    False,
                    f"worst {max(mp):.2f}" if mp else "",
                )
            )
    for r in res.get("sections", {}).get("memory", {}).get("rows", []) or []:
        out.append(
            _target(
                f"peak memory forward+backward ours / cuDNN, {r['cell']} {r['dtype']} B={r['B']} T={r['T']} H={r['H']}",
                r["ratio"],
                1.0,
                False,
            )
        )
    clf = res.get("sections", {}).get("classifier", {}).get("bilstm2_128", {})
    out.append(
        _target("2-layer biLSTM 128 classifier, 1,024 names: speed-up over cuDNN", clf.get("speedup"), 3.0, True)
    )
    tr = res.get("sections", {}).get("training", {})
    out.append(
        _target(
            "one training epoch (shipped surnames configuration): speed-up over cuDNN",
            tr.get("speedup_over_cudnn"),
            1.0,
            True,
        )
    )
    return out


def _fmt(v: object, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e4 else f"{v:.3g}"
    return str(v)


def _table(head: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows
    ]


def markdown(res: dict) -> str:
    sec = res.get("sections", {})
    env = sec.get("environment", {})
    lines = [f"# GPU check: {res.get('device_name', '?')}", ""]
    if res.get("dry_run"):
        lines += [
            "**Dry run** (CPU, Triton's interpreter, tiny shapes): the numbers only show that the script "
            "works; they are not measurements of the kernels.",
            "",
        ]
    lines += [
        f"`{res.get('command', '')}` — {res.get('timestamp', '')}, {res.get('elapsed_s', '?')} s; torch "
        f"{env.get('torch', '?')}, Triton {env.get('triton', '?')}, CUDA {env.get('cuda', '–')}, "
        f"Python {env.get('python', '?')}.",
        "",
    ]
    problems = [(k, v) for k, v in sec.items() if isinstance(v, dict) and (v.get("error") or v.get("skipped"))]
    if problems:
        lines += ["## Not done", ""] + [f"- {k}: {v.get('error') or v.get('skipped')}" for k, v in problems] + [""]
    tests = sec.get("tests", {})
    if tests.get("shards"):
        lines += (
            ["## Tests on the device", ""]
            + [f"- `{s['command']}`: {s['summary']} (exit {s['returncode']})" for s in tests["shards"]]
            + [""]
        )
    lines += ["## Targets", ""]
    lines += _table(
        ["target", "value", "goal", "holds", "detail"],
        [
            [
                t["name"],
                t["value"],
                f"{t['direction']} {t['limit']}",
                {True: "yes", False: "**no**", None: "not measured"}[t["holds"]],
                t["detail"],
            ]
            for t in res.get("targets", [])
        ],
    ) + [""]
    la = sec.get("launches", {})
    if la.get("ours"):
        shape = la.get("shape", {})
        lines += [
            "## Launches per layer call",
            "",
            f"2-layer bidirectional LSTM, B={shape.get('B')}, T={shape.get('T')}, H={shape.get('H')}, "
            f"{shape.get('dtype')}, lengths {shape.get('lengths')} (torch.profiler). Before this host path, "
            f"counted on the CPU (torch operators that compute + fused launches): "
            f"{la.get('before_counted_on_cpu')}.",
            "",
        ]
        rows = []
        for who in ("ours", "cudnn"):
            for what, c in la.get(who, {}).items():
                rows.append(
                    [
                        who,
                        what,
                        c.get("kernel_launches"),
                        c.get("device_kernels"),
                        c.get("synchronisations"),
                        c.get("device_to_host_copies"),
                    ]
                )
        lines += _table(
            ["layers", "pass", "kernel launches", "device kernels", "synchronisations", "device-to-host copies"], rows
        ) + [""]
    grid_rows = _rows(res)
    if grid_rows:
        lines += ["## Grid (ms per call; speed-up = cuDNN time / ours)", ""]
        head = [
            "cell",
            "dtype",
            "B",
            "T",
            "H",
            "ours fwd",
            "cuDNN fwd",
            "fwd ×",
            "ours graph",
            "cuDNN graph",
            "ours f+b",
            "cuDNN f+b",
            "f+b ×",
            "mom/plain fwd",
            "mom/plain f+b",
        ]
        lines += _table(
            head,
            [
                [
                    r["cell"],
                    r["dtype"],
                    r["B"],
                    r["T"],
                    r["H"],
                    r.get("ours_fwd_ms"),
                    r.get("cudnn_fwd_ms"),
                    r.get("speedup_fwd"),
                    r.get("ours_graph_ms"),
                    r.get("cudnn_graph_ms"),
                    r.get("ours_fwd+bwd_ms"),
                    r.get("cudnn_fwd+bwd_ms"),
                    r.get("speedup_fwd+bwd"),
                    r.get("momentum_over_plain_fwd"),
                    r.get("momentum_over_plain_fwd+bwd"),
                ]
                for r in grid_rows
            ],
        ) + [""]
    for name, title, head, keys in (
        (
            "memory",
            "Peak memory of forward+backward (MiB above the inputs)",
            ["cell", "dtype", "ours", "cuDNN", "ratio"],
            ["cell", "dtype", "ours_peak_mb", "cudnn_peak_mb", "ratio"],
        ),
        (
            "on_chip",
            "W_hh on chip vs streamed (forward, ms)",
            ["cell", "dtype", "H", "on chip", "streamed", "default"],
            ["cell", "dtype", "H", "on_chip_ms", "streamed_ms", "default"],
        ),
    ):
        data = sec.get(name, {}).get("rows")
        if data:
            lines += [f"## {title}", ""] + _table(head, [[r.get(k) for k in keys] for r in data]) + [""]
    clf = sec.get("classifier", {})
    if clf:
        lines += ["## Classifier, 1,024 names", ""]
        lines += _table(
            ["model", "ours ms", "cuDNN ms", "speed-up", "max |diff|"],
            [
                [v.get("model", k), v.get("ours_ms"), v.get("cudnn_ms"), v.get("speedup"), v.get("diff")]
                for k, v in clf.items()
                if isinstance(v, dict) and "ours_ms" in v
            ],
        ) + [""]
    tr = sec.get("training", {})
    if tr:
        lines += ["## One training epoch", "", f"Data: {tr.get('data')}; configuration {tr.get('config')}.", ""]
        lines += _table(
            ["run", "device", "backend", "steps timed", "epoch s (est.)", "tokens/s"],
            [
                [
                    k,
                    v.get("device"),
                    v.get("backend_used"),
                    f"{v.get('steps')}/{v.get('steps_per_epoch')}",
                    v.get("epoch_s_estimate"),
                    v.get("tokens_per_s"),
                ]
                for k, v in tr.items()
                if isinstance(v, dict) and "steps" in v
            ],
        ) + [""]
    comp = sec.get("compile", {})
    if comp.get("eager_ms"):
        lines += [
            '## torch.compile(mode="reduce-overhead")',
            "",
            f"{comp['shape']}: eager {comp['eager_ms']:.3f} ms, compiled {comp['reduce_overhead_ms']:.3f} ms "
            f"(compile {comp['compile_s']} s, max |diff| {comp['max_abs_diff']:.2g}).",
            "",
        ]
    return "\n".join(lines) + "\n"


# ---- heat map ------------------------------------------------------------------------------------------
def _matrix(res: dict, what: str) -> tuple[list[tuple], list[tuple], list[list[float | None]]]:
    rows = _rows(res)
    row_keys = sorted({(r["cell"], r["dtype"]) for r in rows})
    col_keys = sorted({(r["H"], r["T"], r["B"]) for r in rows})
    grid: list[list[float | None]] = [[None] * len(col_keys) for _ in row_keys]
    for r in rows:
        i, j = row_keys.index((r["cell"], r["dtype"])), col_keys.index((r["H"], r["T"], r["B"]))
        grid[i][j] = r.get(f"speedup_{what}")
    return row_keys, col_keys, grid


def heatmap(res: dict, path: Path) -> str | None:
    """Speed-ups over cuDNN, forward and forward+backward, as a PNG; returns the file name (None
    when the grid was not measured)."""
    if not _rows(res):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm
    except ImportError:
        _plain_png(res, path)
        return path.name
    fig, axes = plt.subplots(2, 1, figsize=(14, 8), constrained_layout=True)
    for ax, what in zip(axes, ("fwd", "fwd+bwd")):
        row_keys, col_keys, grid = _matrix(res, what)
        data = [[v if v else float("nan") for v in row] for row in grid]
        im = ax.imshow(data, cmap="RdYlGn", norm=LogNorm(vmin=0.25, vmax=4), aspect="auto")
        ax.set_yticks(range(len(row_keys)), [f"{c} {d}" for c, d in row_keys])
        ax.set_xticks(range(len(col_keys)), [f"H{h} T{t}\nB{b}" for h, t, b in col_keys], fontsize=7)
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                if v:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"{'forward' if what == 'fwd' else 'forward+backward'}: cuDNN time / ours (> 1: ours faster)")
        fig.colorbar(im, ax=ax)
    fig.suptitle(res.get("device_name", ""))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _plain_png(res: dict, path: Path, cell: int = 24) -> None:
    """Without matplotlib: one coloured square per shape (red < 1 < green, log scale), forward above
    forward+backward, rows in the order of report.md's grid."""
    panels = [_matrix(res, w)[2] for w in ("fwd", "fwd+bwd")]
    height = sum(len(p) for p in panels) * cell + cell
    width = max((len(p[0]) for p in panels if p), default=1) * cell
    pixels = [[(255, 255, 255)] * width for _ in range(height)]
    y0 = 0
    for panel in panels:
        for i, row in enumerate(panel):
            for j, v in enumerate(row):
                color = (200, 200, 200)
                if v:
                    t = max(-1.0, min(1.0, math.log(v, 4)))
                    color = (
                        (255, int(255 * (1 + t)), int(255 * (1 + t)))
                        if t < 0
                        else (int(255 * (1 - t)), 255, int(255 * (1 - t)))
                    )
                for y in range(y0 + i * cell + 1, y0 + (i + 1) * cell - 1):
                    pixels[y][j * cell + 1 : (j + 1) * cell - 1] = [color] * (cell - 2)
        y0 += len(panel) * cell + cell
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(png)


# ---- the files ----------------------------------------------------------------------------------------
def write_report(res: dict, out: Path) -> dict:
    """The targets into ``res``, then ``report.md`` and ``speedup_heatmap.png`` in ``out``; returns
    the report section of ``results.json`` (the files written)."""
    res["targets"] = targets(res)
    (out / "report.md").write_text(markdown(res), encoding="utf-8")
    png = heatmap(res, out / "speedup_heatmap.png")
    return {"files": ["results.json", "report.md", "pytest.txt"] + ([png] if png else [])}
