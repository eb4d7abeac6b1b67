"""The generic training loop on a toy regression objective: training, data order, exact resume, callbacks,
selection, export, artifacts (LoopConfig itself: test_config.py)."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch
from torch import nn

from ractd.io import read_json
from ractd.train import LoopConfig, batch_indices, epoch_permutation, steps_per_epoch, train
from ractd.train.logging import read_csv_log
from ractd.weights import load_tensors

W_TRUE = np.array([1.0, -2.0, 0.5, 3.0], np.float32)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is ~10x faster than two on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ToyData:
    """y = x·w for Gaussian x; records every batch of indices it serves."""

    def __init__(self, n: int = 40, seed: int = 0) -> None:
        r = np.random.default_rng(seed)
        self.x = r.normal(size=(n, 4)).astype(np.float32)
        self.y = (self.x @ W_TRUE)[:, None]
        self.requests: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.x)

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        self.requests.append(np.array(indices))
        return {"x": self.x[indices], "y": self.y[indices].astype(np.float64)}  # float64 → float32


class ToyObjective:
    """MSE regression; with noise > 0 the inputs are jittered with torch, numpy and python randomness,
    so the losses depend on every RNG stream a checkpoint must restore."""

    def __init__(self, noise: float = 0.0, dropout: float = 0.0, seed: int = 0, fail_at: int | None = None,
                 hidden: int = 16) -> None:
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.noise, self.fail_at = noise, fail_at
        self.after_steps: list[int] = []
        self.epochs_started: list[int] = []

    def trainable(self) -> nn.Module:
        return self.net

    def loss(self, model, batch, step):
        if step == self.fail_at:
            raise RuntimeError("simulated crash")
        x = batch["x"]
        if self.noise:
            jitter = 1.0 + 0.1 * np.random.rand() + 0.1 * random.random()  # noqa: NPY002
            x = x + self.noise * jitter * torch.randn_like(x)
        mse = ((model(x) - batch["y"]) ** 2).mean()
        return mse, {"mse": mse.detach()}

    def after_optimizer_step(self, model, step):
        self.after_steps.append(step)

    def on_epoch_start(self, epoch):
        self.epochs_started.append(epoch)


def small_cfg(**kw) -> LoopConfig:
    base = dict(epochs=3, batch_size=8, lr=1e-2, warmup_steps=3, checkpoint_every=4, log_every=1,
                tensorboard=False)
    base.update(kw)
    return LoopConfig(**base)


# --- data order -------------------------------------------------------------------------------------

def test_data_order_is_a_function_of_seed_and_epoch():
    assert steps_per_epoch(40, 8) == 5 and steps_per_epoch(41, 8) == 6 and steps_per_epoch(3, 8) == 1
    p0, p0b, p1 = epoch_permutation(0, 0, 41), epoch_permutation(0, 0, 41), epoch_permutation(0, 1, 41)
    assert np.array_equal(p0, p0b) and not np.array_equal(p0, p1)
    assert sorted(p0) == list(range(41))
    assert not np.array_equal(p0, epoch_permutation(1, 0, 41))
    # step 8 of a 6-steps-per-epoch run: batch 2 of epoch 1
    assert np.array_equal(batch_indices(0, 8, 41, 8), p1[16:24])
    assert np.array_equal(batch_indices(0, 11, 41, 8), p1[40:])  # last batch is partial (drop_last=False)


def test_loop_visits_every_item_once_per_epoch_and_calls_hooks(tmp_path):
    data, obj = ToyData(n=21), ToyObjective()
    res = train(obj, data, small_cfg(epochs=2, checkpoint_every=0), tmp_path, progress=False)
    assert res.step == res.total_steps == 6 and res.finished
    assert [len(r) for r in data.requests] == [8, 8, 5, 8, 8, 5]
    for e in range(2):
        got = np.concatenate(data.requests[3 * e:3 * e + 3])
        assert np.array_equal(got, epoch_permutation(0, e, 21))
    assert obj.after_steps == list(range(6)) and obj.epochs_started == [0, 1]


# --- training works ---------------------------------------------------------------------------------

def test_toy_regression_trains(tmp_path):
    val = ToyData(n=64, seed=1)
    obj = ToyObjective(hidden=32)
    with torch.no_grad():
        batch = {k: torch.as_tensor(v).float() for k, v in val.get_batch(np.arange(64)).items()}
        initial = obj.loss(obj.net, batch, 0)[0].item()
    cfg = small_cfg(epochs=30, batch_size=32, lr=1e-2, warmup_steps=10, checkpoint_every=0, log_every=10,
                    select_metric="val_loss", val_every=5)
    res = train(obj, ToyData(n=256), cfg, tmp_path, val_data=val, progress=False)
    rows = read_csv_log(res.csv_path)
    val_losses = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    assert len(val_losses) == 6  # every 5 epochs
    assert initial > 5.0 and val_losses[-1] < 0.02 * initial, (initial, val_losses)
    lrs = [float(r["lr"]) for r in rows if r["lr"]]
    assert max(lrs) <= 1e-2 and lrs[-1] < 1e-5  # cosine decays to ~0 at the end
    # selection kept the epoch with the minimum validation loss
    best = read_json(tmp_path / "best" / "best.json")
    assert best["value"] == min(val_losses) and best["metric"] == "val_loss"
    assert best["step"] == int(next(r["step"] for r in rows if r["val_loss"] and
                                     float(r["val_loss"]) == best["value"]))
    assert (tmp_path / "best" / "model.safetensors").is_file()


def test_selection_needs_its_metric(tmp_path):
    with pytest.raises(ValueError, match="select_metric is 'val_loss' but train\\(\\) got no val_data"):
        train(ToyObjective(), ToyData(), small_cfg(select_metric="val_loss"), tmp_path, progress=False)
    with pytest.warns(UserWarning, match="select_metric 'score' was never logged at an epoch end"):
        train(ToyObjective(), ToyData(), small_cfg(select_metric="score", epochs=1), tmp_path, progress=False)
    assert not (tmp_path / "best").exists()


def test_non_finite_loss_stops_with_the_step(tmp_path):
    class Exploding(ToyObjective):
        def loss(self, model, batch, step):
            loss, s = super().loss(model, batch, step)
            return (loss * float("nan") if step == 2 else loss), s

    with pytest.raises(FloatingPointError, match="training loss is nan at step 3"):
        train(Exploding(), ToyData(), small_cfg(), tmp_path, progress=False)


# --- exact resume -------------------------------------------------------------------------------------

def _run(run_dir, data_seed=0, **kw):
    cfg_kw = {k: kw.pop(k) for k in list(kw) if k in LoopConfig.__dataclass_fields__}
    obj = ToyObjective(noise=0.3, dropout=0.2, **kw)
    return train(obj, ToyData(seed=data_seed), small_cfg(**cfg_kw), run_dir,
                 val_data=ToyData(n=16, seed=3), progress=False)


def _weights(path):
    return load_tensors(path)


def _assert_same_run(a, b):
    assert (a / "train.csv").read_text() == (b / "train.csv").read_text()
    for name in ("model.safetensors", "ema.safetensors"):
        wa, wb = _weights(a / name), _weights(b / name)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_after_stop_gives_the_same_losses_as_an_uninterrupted_run(tmp_path):
    full = _run(tmp_path / "full")
    assert full.step == 15
    first = _run(tmp_path / "split", max_steps=7)
    assert first.step == 7 and not first.finished
    rows = read_csv_log(tmp_path / "split" / "train.csv")
    assert rows[-1]["step"] == "7"
    second = _run(tmp_path / "split")
    assert second.resumed_from == 7 and second.step == 15
    _assert_same_run(tmp_path / "full", tmp_path / "split")
    meta = read_json(tmp_path / "split" / "meta.json")
    assert meta["status"] == "finished" and [r["step"] for r in meta["resumes"]] == [7]


def test_resume_after_a_crash_drops_rows_logged_after_the_checkpoint(tmp_path):
    _run(tmp_path / "full")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path / "crash", fail_at=10)  # checkpoints at 4 and 8, rows up to 10 written
    assert read_csv_log(tmp_path / "crash" / "train.csv")[-1]["step"] == "10"
    meta = read_json(tmp_path / "crash" / "meta.json")
    assert meta["status"] == "failed" and meta["failed_at_step"] == 10 and "simulated crash" in meta["error"]
    res = _run(tmp_path / "crash")
    assert res.resumed_from == 8
    _assert_same_run(tmp_path / "full", tmp_path / "crash")


def test_resume_refuses_a_changed_config_or_dataset(tmp_path):
    _run(tmp_path, max_steps=4)
    with pytest.raises(ValueError, match=r"checkpoint/state.json: cannot resume.*"
                                         r"lr: checkpoint 0.01 vs now 0.02"):
        _run(tmp_path, lr=2e-2)
    obj = ToyObjective()
    with pytest.raises(ValueError, match="n_items=40 items but the data now has 30"):
        train(obj, ToyData(n=30), small_cfg(), tmp_path, progress=False)
    # resume=False starts over
    res = train(ToyObjective(), ToyData(), small_cfg(max_steps=2), tmp_path, resume=False, progress=False)
    assert res.resumed_from is None
    assert [r["step"] for r in read_csv_log(tmp_path / "train.csv")] == ["1", "2"]


def test_resume_never_unpickles_and_run_dir_holds_only_safe_files(tmp_path, monkeypatch):
    _run(tmp_path, max_steps=5, tensorboard=True)

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    res = _run(tmp_path)
    assert res.resumed_from == 5
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    events = [p for p in files if p.parent.name == "tb"]
    assert events and all(p.name.startswith("events.out.tfevents.") for p in events)
    others = {p.relative_to(tmp_path).as_posix() for p in files if p not in events}
    assert all(name.endswith((".safetensors", ".json", ".csv")) for name in others), others
    assert {"model.safetensors", "ema.safetensors", "meta.json", "train.csv", "checkpoint/state.json",
            "checkpoint/model.safetensors", "checkpoint/optimizer.safetensors",
            "checkpoint/rng.safetensors", "checkpoint/ema.safetensors"} <= others


# --- callbacks, export, artifacts -------------------------------------------------------------------

def test_callbacks_log_scalars_without_perturbing_training(tmp_path):
    calls = []

    def rollout(step, epoch, model, ema_model, run_dir):
        calls.append((step, epoch, run_dir))
        assert isinstance(model, nn.Module) and isinstance(ema_model, nn.Module)
        model.eval()
        torch.randn(100), np.random.rand(5), random.random()  # noqa: NPY002  (consumes RNG)
        return {"score": torch.tensor(float(epoch))}

    plain = _run(tmp_path / "plain")
    obj = ToyObjective(noise=0.3, dropout=0.2)
    res = train(obj, ToyData(), small_cfg(epochs=3, callback_every=2), tmp_path / "cb",
                val_data=ToyData(n=16, seed=3), callbacks=[rollout], progress=False)
    assert calls == [(10, 1, tmp_path / "cb"), (15, 2, tmp_path / "cb")]  # every 2 epochs + the last
    assert obj.net.training  # the loop puts the model back in train mode
    rows = {r["step"]: r for r in read_csv_log(res.csv_path)}
    assert rows["10"]["score"] == "1.0" and rows["15"]["score"] == "2.0" and rows["5"]["score"] == ""
    plain_rows = read_csv_log(plain.csv_path)
    assert [r["loss"] for r in plain_rows] == [rows[r["step"]]["loss"] for r in plain_rows]


def test_export_ema_and_meta(tmp_path):
    obj = ToyObjective()
    res = train(obj, ToyData(), small_cfg(export="ema", epochs=1), tmp_path, progress=True,
                run_meta={"dataset": {"fingerprint": "abc"}})
    model, ema, online = (load_tensors(tmp_path / n) for n in
                          ("model.safetensors", "ema.safetensors", "online.safetensors"))
    assert all(torch.equal(model[k], ema[k]) for k in model)
    assert all(torch.equal(online[k], obj.net.state_dict()[k]) for k in online)
    assert not all(torch.equal(online[k], ema[k]) for k in online)
    meta = read_json(res.meta_path)
    assert meta["dataset"] == {"fingerprint": "abc"} and meta["status"] == "finished"
    assert meta["parameters"] == {"total": 4 * 16 + 16 + 16 + 1, "trainable": 97}
    assert meta["weights"] == {"model.safetensors": "ema", "ema.safetensors": "ema",
                               "online.safetensors": "online"}
    assert meta["step"] == 5 and meta["metrics"]["loss"] == res.last_scalars["loss"]


def test_grad_clip_logs_the_pre_clip_norm(tmp_path):
    res = train(ToyObjective(), ToyData(), small_cfg(grad_clip=1e-3, epochs=1), tmp_path, progress=False)
    norms = [float(r["grad_norm"]) for r in read_csv_log(res.csv_path)]
    assert len(norms) == 5 and all(n > 1e-3 for n in norms)
