#!/usr/bin/env bash
# One prepared run on a GPU machine (no network needed): the fused-kernel tests on CUDA and the
# benchmarks against cuDNN, within about six minutes, written to OUTDIR (results.json, report.md,
# speedup_heatmap.png, pytest.txt).
#
#   bash bench/gpu_check.sh OUTDIR              # on the GPU machine, from the repository root
#   bash bench/gpu_check.sh OUTDIR --dry-run    # anywhere: tiny shapes on the CPU in Triton's interpreter
#
# The package is not installed: namemodels/ is copied to a temporary folder with kernels/, export/
# and bench/ placed inside it (the layout setup.py maps) and put first on PYTHONPATH. Python is
# $NAMEMODELS_PYTHON, else /opt/torch/.venv/bin/python when it exists, else python3; pytest the one
# beside it (or $NAMEMODELS_PYTEST).
set -euo pipefail
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: bash bench/gpu_check.sh OUTDIR [--dry-run] [--budget SECONDS] [--skip-tests]" >&2
    exit 2
fi
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${NAMEMODELS_PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x /opt/torch/.venv/bin/python ]; then PY=/opt/torch/.venv/bin/python; else PY=$(command -v python3); fi
fi
PYTEST=${NAMEMODELS_PYTEST:-$(dirname "$PY")/pytest}
if [ ! -x "$PYTEST" ]; then PYTEST=$(command -v pytest || true); fi

PKG=$(mktemp -d)
trap 'rm -rf "$PKG"' EXIT
cp -r "$ROOT/namemodels" "$PKG/namemodels"
for sub in kernels export bench; do
    rm -rf "$PKG/namemodels/$sub"
    cp -r "$ROOT/$sub" "$PKG/namemodels/$sub"
done
find "$PKG" -name __pycache__ -prune -exec rm -rf {} +
# Packages the machine lacks (no network there): an ignored folder the run can carry, e.g.
#   pip install --no-deps --target build/gpu_deps safetensors
DEPS="$ROOT/build/gpu_deps"
export PYTHONPATH="$PKG${PYTHONPATH:+:$PYTHONPATH}"
if [ -d "$DEPS" ]; then PYTHONPATH="$PYTHONPATH:$DEPS"; fi
cd "$PKG"   # python -m puts the working directory first on sys.path: the copy, not the source folder
status=0
"$PY" -m namemodels.bench.gpu_check "$OUT" --repo "$ROOT" --pytest "$PYTEST" "$@" || status=$?
exit $status
