"""The README's sample outputs are what its commands print today.

Every fenced block marked ``console`` in README.md is a session: lines starting with ``$ `` are
commands, the lines after each are what it prints on standard output (a command shows its stderr by
redirecting it, ``2>&1``), and a last line ``(exit code N)`` is its exit status when not 0. The
commands run with bash from the repository root, in order, so a later one may read what an earlier
one wrote (under ``out/``, which git ignores). ``...`` in an expected line matches any text, as in
doctest's ELLIPSIS (run times, throughputs). A block whose commands read ``../shared/data`` is
skipped when the data is not beside the checkout.

To refresh a block after an intended change, run its commands and paste what they print.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXIT = re.compile(r"^\(exit code (\d+)\)$")


def console_blocks(text: str) -> list[tuple[int, list[tuple[str, str, int]]]]:
    """(line of the block, [(command, expected output, expected exit code)]) for each console block."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == "```console":
            start, session, i = i + 1, [], i + 1
            while lines[i].strip() != "```":
                if lines[i].startswith("$ "):
                    session.append([lines[i][2:], [], 0])
                elif session:
                    m = EXIT.match(lines[i])
                    if m:
                        session[-1][2] = int(m.group(1))
                    else:
                        session[-1][1].append(lines[i])
                i += 1
            blocks.append((start, [(c, "\n".join(out) + ("\n" if out else ""), code) for c, out, code in session]))
        i += 1
    return blocks


BLOCKS = console_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_sample_sessions():
    assert len(BLOCKS) >= 2 and all(session for _, session in BLOCKS)


@pytest.mark.parametrize("start,session", BLOCKS, ids=[f"README line {s}" for s, _ in BLOCKS])
def test_readme_session_prints_what_it_shows(start, session):
    if any("../shared/data" in cmd for cmd, _, _ in session) and not (ROOT.parent / "shared" / "data").is_dir():
        pytest.skip("reads ../shared/data, which is not beside this checkout")
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        COLUMNS="100",
        PYTHONWARNINGS="ignore",
    )
    (ROOT / "out").mkdir(exist_ok=True)
    checker = doctest.OutputChecker()
    for cmd, want, code in session:
        r = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == code, (
            f"README line {start}: `{cmd}` exited {r.returncode}, the README says {code}\n{r.stderr}"
        )
        assert checker.check_output(want, r.stdout, doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE), (
            f"README line {start}: `{cmd}` printed\n{r.stdout}\nbut the README shows\n{want}"
        )
