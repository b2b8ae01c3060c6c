"""bench bulk's threads part: every setting measured in both conditions, the busy processes gone after."""

import os

from namemodels.bench import contention
from namemodels.bench.bulk import run_cli


def test_busy_cores_run_while_the_block_runs_and_are_gone_after():
    with contention.busy_cores(2) as procs:
        assert all(p.poll() is None for p in procs)
        pids = [p.pid for p in procs]
    assert all(p.poll() is not None for p in procs)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_births_sample_draws_in_proportion_to_births(tmp_path):
    f = tmp_path / "first_names.csv"
    f.write_text("name,sex,count\nAnna,F,900\nAnna,M,0\nBo,M,100\n", encoding="utf-8")
    names = contention.births_sample(f, 20_000)
    assert set(names) == {"Anna", "Bo"}
    assert abs(names.count("Anna") / len(names) - 0.9) < 0.02


def test_measure_gives_every_setting_in_both_conditions(tmp_path):
    names = ["Hinton", "Smith", "Nguyen", "Dvorak", "Rossi"] * 40
    part = contention.measure(
        {"few": {"model": "surnames", "kind": "predict", "names": names}},
        cores=1,
        rounds=1,
        workdir=tmp_path,
        run_cli=run_cli,
    )
    assert set(part["conditions"]) == {"quiet", "busy"}
    for cond in part["conditions"].values():
        w = cond["few"]
        assert w["names"] == 200 and w["distinct"] == 5
        for side in ("api", "cli"):
            assert set(w[f"{side}_names_per_s"]) == {"1 thread", "default"}
            assert all(v > 0 for v in w[f"{side}_names_per_s"].values())
            assert 0 < w[f"{side}_default_share"] <= 1
    rows = contention.targets(part)
    assert len(rows) == 4 and all(r["holds"] == (r["value"] >= contention.DEFAULT_SHARE_TARGET) for r in rows)
    assert "default" in "\n".join(contention.report_lines(part))
