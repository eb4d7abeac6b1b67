"""scripts/render_report.py: the report renders from whatever results exist and names what is missing."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def report(fresh_script, monkeypatch, tmp_path):
    monkeypatch.setenv("RACTD_DATA_DIR", str(tmp_path / "data"))
    experiments = fresh_script("experiments", "render_report", "reproduce")
    return fresh_script("render_report"), experiments


def test_rendering_does_not_load_the_runner(report):
    """The experiment tables live in scripts/experiments.py, so the report needs nothing of reproduce.py."""
    assert "reproduce" not in sys.modules


def test_the_runner_and_the_report_share_one_table(report):
    import reproduce

    _, experiments = report
    assert reproduce.TRAININGS is experiments.TRAININGS and reproduce.EVALS is experiments.EVALS
    assert set(experiments.EVALS) <= set(experiments.TRAININGS)  # every evaluated section can be run
    for k in (1, 2):
        assert f"hopper-medium/seed{k}" in experiments.TRAININGS
        assert [name for name, _, _ in experiments.TRAININGS[f"hopper-medium/seed{k}"]] == [
            f"{name}{experiments.seed_suffix(k)}" for name, _, _ in experiments.TRAININGS["hopper-medium"]]
    assert experiments.task_of("hopper-medium-replay/ablation") == "hopper-medium-replay"


def test_an_empty_results_folder_lists_every_section_as_unfinished(report, tmp_path):
    render_report, experiments = report
    render_report.render(tmp_path / "out", tmp_path / "results.md")
    text = (tmp_path / "results.md").read_text()
    for section in experiments.EVALS:
        assert f"Section `{section}` not finished" in text
    assert "| hopper-medium-replay | RACTD" not in text  # no rows invented


def test_a_finished_evaluation_is_reported_and_no_longer_missing(report, tmp_path):
    render_report, _ = report
    out = tmp_path / "out"
    (out / "eval" / "hopper-medium").mkdir(parents=True)
    scores = [50.0, 52.0, 54.0]
    (out / "eval" / "hopper-medium" / "student-one_step-tracking.json").write_text(json.dumps(
        {"normalized_score": {"mean": 52.0, "se": 1.15}, "normalized_scores": scores, "n_episodes": 3}))
    render_report.render(out, tmp_path / "results.md")
    text = (tmp_path / "results.md").read_text()
    assert "| hopper-medium | – | not run | not run | 52.0 ± 1.1 | 121.0 |" in text
    line = next(x for x in text.splitlines() if "Section `hopper-medium` not finished" in x)
    assert "student one_step tracking" not in line and "ctd one_step tracking" in line


def test_the_committed_report_renders_from_committed_json_alone(report, tmp_path):
    """No run folder and no dataset on this machine (a clean clone): the report is the committed one, bar the
    date line — every number comes from results/report/*.json."""
    import shutil

    render_report, _ = report
    root = SCRIPTS.parent
    out = tmp_path / "results" / "report"
    shutil.copytree(root / "results" / "report", out, ignore=shutil.ignore_patterns("runs"))
    target = tmp_path / "docs" / "results.md"
    render_report.render(out, target)

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("Rendered ")]

    assert body(target.read_text()) == body((root / "docs" / "results.md").read_text())
    committed = root / "results" / "report" / "mode_selection.png"
    assert (out / "mode_selection.png").read_bytes() == committed.read_bytes()  # kept: no dataset to redraw it


def test_training_a_stage_again_drops_its_earlier_evaluations(report, tmp_path, monkeypatch):
    """An evaluation belongs to one training: retraining `student` re-evaluates it instead of keeping a stale file."""
    import reproduce

    import ractd.presets
    import ractd.stages

    out = tmp_path / "report"
    evals = out / "eval" / "hopper-medium"
    evals.mkdir(parents=True)
    for stem in ("student-one_step-tracking", "student-multistep2-tracking", "student_long-one_step-tracking",
                 "ctd-one_step-tracking"):
        (evals / f"{stem}.json").write_text("{}")
    trained = []
    monkeypatch.setattr(reproduce, "OUT", out)
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.setitem(reproduce.TRAININGS, "hopper-medium", [("student", "student", [])])
    monkeypatch.setitem(reproduce.EVALS, "hopper-medium", [])
    monkeypatch.setattr(ractd.presets, "resolve_config", lambda *a, **k: None)
    monkeypatch.setattr(ractd.stages, "train_stage", lambda cfg, stage, runs, name, progress: trained.append(name))
    reproduce.run_section("hopper-medium", episodes=1, teacher_episodes=1)
    assert trained == ["student"]
    assert sorted(p.stem for p in evals.glob("*.json")) == ["ctd-one_step-tracking", "student_long-one_step-tracking"]


def test_the_study_compares_each_variant_with_ctd_on_the_same_seeds_and_reads_the_reward_probe(fresh_script,
                                                                                              tmp_path):
    seed_report = fresh_script("seed_report")
    out = tmp_path / "out"
    ctd = {("a", 0): 50.0, ("a", 1): 40.0, ("a", 2): 60.0, ("b", 0): 20.0, ("b", 1): 30.0, ("b", 2): 10.0}
    ractd = {("a", 0): 55.0, ("a", 1): 10.0, ("a", 2): 62.0, ("b", 0): 5.0, ("b", 1): 31.0}  # (b, 2) did not run
    probes = {}
    for run, scores in (("ctd", ctd), ("ractd_x", ractd)):
        for (task, k), score in scores.items():
            name = f"{run}_seed{k}" if k else run
            (out / "eval" / task).mkdir(parents=True, exist_ok=True)
            (out / "eval" / task / f"{name}-one_step-tracking.json").write_text(
                json.dumps({"normalized_score": {"mean": score}}))
            if run == "ractd_x":  # R_ψ gain grows as the score falls below CTD's: exploitation
                probes[f"{task}/{name}"] = {"reward_plan": 0.1 + (ctd[task, k] - score) / 100, "reward_data": 0.1,
                                            "above_data_max": 0.0, "at_bound_plan": 0.0, "at_bound_data": 0.0,
                                            "action_gap": 0.1}
    (out / "reward_probe.json").write_text(json.dumps(probes))
    lines = seed_report.study_lines(out, ["a", "b"], {"x": []}, [0, 1, 2], lambda k: f"_seed{k}" if k else "")
    text = "\n".join(lines)
    d = np.array([5.0, -30.0, 2.0, -15.0, 1.0])
    row = next(x for x in lines if x.startswith("| RACTD x | 5 |"))
    assert row == (f"| RACTD x | 5 | 3 | {d.mean():+.1f} ± {d.std(ddof=1) / np.sqrt(5):.1f} | -30.0 (a, seed 1) | "
                   "2 |")  # collapses (below half of CTD): 10 vs 40 (a, 1) and 5 vs 20 (b, 0)
    a, b = np.array([55.0, 10.0, 62.0]), np.array([5.0, 31.0])
    assert (f"| RACTD x | {a.mean():.1f} ± {a.std(ddof=1) / np.sqrt(3):.1f} (3/3; 55, 10, 62) | "
            f"{b.mean():.1f} ± {b.std(ddof=1) / np.sqrt(2):.1f} (2/3; 5, 31) |") in text
    assert "ρ = -1.00: the more R_ψ scores a student's actions above the data's" in text
    assert "| b | RACTD x | 2 | 18.0 | +0.070 |" in text  # (0.15 − 0.01) / 2 over the two probed seeds of b
    assert "Most robust (fewest collapses, then most pairs above CTD): RACTD x, 3 of 5 pairs above CTD, 2 collapses" \
        in text and "not a resolved improvement" in text  # mean −7.4 is within 2 SE
    da, db = np.array([5.0, -30.0, 2.0]), np.array([-15.0, 1.0])  # per task: (a) 3 seeds, (b) seed 2 did not run
    assert (f"| RACTD x | 2/3, {da.mean():+.1f} ± {da.std(ddof=1) / np.sqrt(3):.1f} | "
            f"1/2, {db.mean():+.1f} ± {db.std(ddof=1) / np.sqrt(2):.1f} |") in text


def test_a_per_task_cell_is_bold_only_when_every_seed_is_above_ctd_beyond_2_se(fresh_script):
    seed_report = fresh_script("seed_report")
    ctd = {"a": {0: 10.0, 1: 20.0, 2: 30.0}, "b": {0: 10.0, 1: 20.0, 2: 30.0}}
    steady = {"a": {0: 15.0, 1: 26.0, 2: 34.0}, "b": {0: 40.0, 1: 21.0, 2: 31.0}}  # (a) +5, +6, +4; (b) +30, +1, +1
    lines = seed_report.per_task_against_ctd_lines({"CTD": ctd, "v": steady}, "CTD")
    b = np.array([30.0, 1.0, 1.0])  # every seed above, but the mean +10.7 is within 2 SE (SE 9.7)
    assert f"| v | **3/3, +5.0 ± {1 / np.sqrt(3):.1f}** | 3/3, {b.mean():+.1f} ± {b.std(ddof=1) / np.sqrt(3):.1f} |" \
        in lines
