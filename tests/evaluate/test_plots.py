"""Plots write PNG files atomically and reject bad input with a specific error."""

from __future__ import annotations

import numpy as np
import pytest

from ractd.evaluate.plots import plot_learning_curves, plot_return_histograms, read_curve_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_return_histograms_write_a_png(tmp_path):
    rng = np.random.default_rng(0)
    runs = {"dataset": rng.normal(1000, 300, 2000), "teacher": rng.normal(2500, 200, 100),
            "RACTD": rng.normal(3000, 150, 100), "one episode": [1500.0]}
    out = plot_return_histograms(runs, tmp_path / "fig" / "hist.png", title="hopper-medium-replay")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["hist.png"]  # no temp file left
    with pytest.raises(ValueError, match="'teacher' needs finite returns"):
        plot_return_histograms({"teacher": [1.0, np.nan]}, tmp_path / "bad.png")


def test_learning_curves_from_csvs_with_sparse_columns(tmp_path):
    for run, scale in [("teacher", 1.0), ("student", 0.5)]:
        (tmp_path / run).mkdir()
        lines = ["step,loss,eval/score"] + [f"{s},{scale / (s + 1)},{'' if s % 5 else s}" for s in range(50)]
        (tmp_path / run / "metrics.csv").write_text("\n".join(lines) + "\n")
    csvs = [tmp_path / "teacher" / "metrics.csv", tmp_path / "student" / "metrics.csv"]
    columns = read_curve_csv(csvs[0])
    assert np.isnan(columns["eval/score"][1]) and columns["eval/score"][5] == 5.0
    out = plot_learning_curves(csvs, ["loss", "eval/score"], tmp_path / "curves.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    frame = {"step": np.arange(10), "loss": np.linspace(1, 0, 10)}
    assert plot_learning_curves({"in memory": frame}, ["loss"], tmp_path / "mem.png").exists()
    missing = r"metrics\.csv: no column 'reward' \(columns: step, loss, eval/score\)"
    with pytest.raises(ValueError, match=missing):
        plot_learning_curves(csvs, ["reward"], tmp_path / "x.png")
    (tmp_path / "bad.csv").write_text("step,loss\n0,0.5\n1,abc\n")
    with pytest.raises(ValueError, match=r"bad\.csv: line 3, column 'loss': expected a number, got 'abc'"):
        read_curve_csv(tmp_path / "bad.csv")
