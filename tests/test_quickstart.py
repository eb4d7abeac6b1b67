"""`ractd quickstart --tiny`: the whole flow (data → 4 trainings → evaluation → latency → table) in seconds."""

from __future__ import annotations

import json
import math

from typer.testing import CliRunner

from ractd.cli import app


def test_quickstart_tiny_writes_table_and_results(tmp_path, monkeypatch):
    monkeypatch.setenv("RACTD_DATA_DIR", str(tmp_path / "unused"))
    out = tmp_path / "qs"
    result = CliRunner().invoke(app, ["quickstart", "--tiny", "--out", str(out), "--episodes", "3"])
    assert result.exit_code == 0, result.output
    for label in ("teacher (EDM, Heun)", "CTD student", "RACTD student"):
        assert label in result.output
    summary = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in summary["rows"]}
    assert rows["teacher (EDM, Heun)"]["nfe"] == 158
    assert rows["RACTD student"]["nfe"] == 1 and rows["RACTD student, 2 steps"]["nfe"] == 2
    for r in summary["rows"]:
        assert r["episodes"] == 3
        assert math.isfinite(r["score_mean"]) and math.isfinite(r["ms_per_action"]) and r["ms_per_action"] > 0
    # the one-step student is faster than the 158-evaluation teacher, measured side by side
    assert rows["RACTD student"]["speedup_vs_teacher"] > 5
    for f in ("returns.png", "learning_curves.png", "runs/teacher/model.safetensors", "runs/ctd/meta.json",
              "runs/student/config.json", "data/maze2d-umaze/maze2d-umaze.hdf5"):
        assert (out / f).exists(), f
    assert len(list((out / "eval").glob("*.json"))) == len(summary["rows"])

    # resumable: a second call reuses every stage and evaluation
    again = CliRunner().invoke(app, ["quickstart", "--tiny", "--out", str(out), "--episodes", "3"])
    assert again.exit_code == 0, again.output
    assert "already trained" in again.output and "(cached)" in again.output


class _Stop(Exception):
    pass


def test_locomotion_quickstart_reuses_cached_behaviour_policies_read_only(tmp_path, monkeypatch):
    import ractd.data.generate.locomotion as loco
    from ractd.quickstart import run_quickstart

    root = tmp_path / "root"
    (root / "hopper-policies").mkdir(parents=True)
    (root / "hopper-policies" / "policies.json").write_text("{}")
    monkeypatch.setenv("RACTD_DATA_DIR", str(root))
    seen = {}

    def fake_generate(name, out_dir, **kw):
        seen.update(name=name, out_dir=out_dir, **kw)
        raise _Stop

    monkeypatch.setattr(loco, "generate_locomotion", fake_generate)
    try:
        run_quickstart("hopper-medium-replay", tmp_path / "qs", tiny=True, progress=False)
    except _Stop:
        pass
    assert seen["name"] == "hopper-medium-replay"
    assert seen["policy_dir"] == root / "hopper-policies"
    assert seen["out_dir"] == tmp_path / "qs" / "data" / "hopper-medium-replay"  # the dataset is written here

    seen.clear()
    monkeypatch.setenv("RACTD_DATA_DIR", str(tmp_path / "empty"))
    try:
        run_quickstart("hopper-medium-replay", tmp_path / "qs2", tiny=True, progress=False)
    except _Stop:
        pass
    assert seen["policy_dir"] is None  # no cache: trained next to the quickstart's data
