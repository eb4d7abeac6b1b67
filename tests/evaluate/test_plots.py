"""Plots write PNG files atomically and reject bad input with a specific error; the figures of `ractd plot` have
their panels, labels and a fixed pixel size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ractd.evaluate import figures
from ractd.evaluate.figures import moving_average, plot_latency, plot_loss_panels, plot_score_rows
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


# ---- ractd.evaluate.figures ----------------------------------------------------------------------------------------
def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's header."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture
def drawn(monkeypatch):
    """The Figure each plot function hands to save_figure (to read its panels), saved as usual."""
    figs = []
    real = figures.save_figure

    def keep(fig, path, dpi, tight=True):
        figs.append(fig)
        return real(fig, path, dpi, tight)

    monkeypatch.setattr(figures, "save_figure", keep)
    return figs


def test_moving_average_is_a_trailing_mean():
    assert np.allclose(moving_average([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    assert np.allclose(moving_average([1, 2, 3], 5), [1, 1.5, 2])
    assert np.array_equal(moving_average([3.0, 1.0], 1), [3.0, 1.0])


def test_loss_panels_one_per_term_log_where_positive(tmp_path, drawn):
    steps = np.arange(1, 201)
    teacher = {"step": steps, "epoch": steps // 50, "loss": 1 / steps, "lr": np.full(200, 1e-3)}
    student = {"step": steps, "epoch": steps // 50, "loss": 2 / steps, "ctm": 0.1 / steps, "dsm": 1 / np.sqrt(steps),
               "reward": -np.log(steps), "lr": np.full(200, 1e-3)}
    out = plot_loss_panels({"teacher": teacher, "student": student}, tmp_path / "c.png", smooth=10, title="hopper")
    assert png_size(out) == (1280, 90 + 280 * 2)  # 4 terms: 2 × 2 panels
    axes = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert [ax.get_ylabel() for ax in axes] == ["loss (log scale)", "ctm (log scale)", "dsm (log scale)", "reward"]
    assert axes[0].get_title(loc="left").startswith("loss:") and axes[2].get_xlabel() == "optimizer step"
    assert len(axes[0].lines) == 4 and len(axes[1].lines) == 2  # raw + smoothed per run; ctm: the student only
    legend = drawn[0].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["teacher", "student"]
    assert "moving average over 10" in drawn[0].get_suptitle()

    single = plot_loss_panels({"teacher": teacher}, tmp_path / "one.png")
    assert png_size(single) == (640, 90 + 280)
    with pytest.raises(ValueError, match="no run has a column 'val_loss'"):
        plot_loss_panels({"teacher": teacher}, tmp_path / "x.png", keys=["val_loss"])
    with pytest.raises(ValueError, match="smooth must be at least 1"):
        plot_loss_panels({"teacher": teacher}, tmp_path / "x.png", smooth=0)
    (tmp_path / "nostep.csv").write_text("loss\n1.0\n")
    with pytest.raises(ValueError, match=r"nostep\.csv: no 'step' column"):
        plot_loss_panels({"x": tmp_path / "nostep.csv"}, tmp_path / "x.png")


def test_score_rows_one_row_per_method_and_the_dataset_underneath(tmp_path, drawn):
    rng = np.random.default_rng(0)
    rows = {"teacher": rng.normal(70, 10, 50), "RACTD": rng.normal(97, 1, 50)}
    out = plot_score_rows(rows, tmp_path / "s.png", dataset=rng.normal(40, 20, 3000), dataset_label="dataset: x")
    assert png_size(out) == (800, 100 + 150 * 3)
    axes = drawn[0].axes
    assert [ax.get_title(loc="left") for ax in axes] == ["teacher", "RACTD", "dataset: x"]
    assert axes[1].get_title(loc="right").startswith("n = 50, mean 97.")
    assert axes[-1].get_xlabel().startswith("D4RL normalized score (×100)")
    plot_score_rows({"raw": [10.0, 12.0]}, tmp_path / "raw.png", normalized=False)
    assert drawn[1].axes[-1].get_xlabel().startswith("episode return (raw")
    with pytest.raises(ValueError, match="'teacher' needs finite values"):
        plot_score_rows({"teacher": [1.0, np.inf]}, tmp_path / "bad.png")


def bench_result(extrapolated_teacher: bool = True) -> dict:
    def row(network, sampler, nfe, batch, ms, measured=True, speedup=None):
        return {"model": "hopper", "network": network, "sampler": sampler, "nfe": nfe, "batch": batch,
                "ms_per_action": ms, "measured": measured, "speedup_vs_teacher": speedup}

    rows = []
    for batch, scale in ((1, 1.0), (100, 0.05)):
        rows += [row("student", "forward", 1, batch, 3 * scale), row("student", "one_step", 1, batch, 3.1 * scale,
                                                                    speedup=150.0),
                 row("student", "multistep:2", 2, batch, 6 * scale), row("teacher", "forward", 1, batch, 3 * scale),
                 row("teacher", "heun:80", 158, batch, 465 * scale, measured=not (extrapolated_teacher and batch > 1),
                     speedup=1.0)]
    return {"format": "ractd.bench/2", "environment": {"device": "cpu", "threads": 1}, "settings": {"clock": "cpu"},
            "rows": rows}


def test_latency_bars_per_batch_size(tmp_path, drawn):
    out = plot_latency(bench_result(), tmp_path / "lat.png")
    assert png_size(out) == (2 * 680, 405)  # 2 batch sizes; 5 bars: 90 + 45 × 5 + 90 px
    ax = drawn[0].axes[0]
    assert ax.get_xscale() == "log" and ax.get_title(loc="left") == "batch 1: student 150× faster"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["student, 1 NFE (one step)", "student, 2 NFE (2 chained steps)", "teacher Heun, 158 NFE",
                      "bare forward (student net)", "bare forward (teacher net)"]
    texts = [t.get_text() for t in ax.texts]
    assert "465 ms" in texts
    assert any(t.get_text().startswith("≈") for t in drawn[0].axes[1].texts)  # the extrapolated teacher
    with pytest.raises(ValueError, match=r"b\.json: not a ractd benchmark result"):
        plot_latency({"rows": []}, tmp_path / "x.png", source="b.json")
    broken = bench_result()
    del broken["rows"][2]["ms_per_action"]
    with pytest.raises(ValueError, match="row 2 has no ms_per_action"):
        plot_latency(broken, tmp_path / "x.png")
