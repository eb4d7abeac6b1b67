"""Checkpoints: pickle-free round-trips of optimizer and RNG state, crash safety, mismatch errors."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch
from torch import nn

from ractd import weights
from ractd.train import checkpoint as ck


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


def _adam_steps(model, opt, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(4, 3, generator=g)
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()


def test_optimizer_state_round_trips_through_tensors_and_json(tmp_path):
    m1 = _model()
    o1 = torch.optim.AdamW(m1.parameters(), lr=1e-2, betas=(0.95, 0.999), weight_decay=1e-3)
    _adam_steps(m1, o1, 3)
    tensors, structure = ck.optimizer_state_to_tensors(o1)
    tensors = ck.load_tensors(ck.save_tensors(tmp_path / "opt.safetensors", tensors))
    assert set(tensors) >= {"state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step"}
    m2 = _model(seed=5)
    m2.load_state_dict(m1.state_dict())
    o2 = torch.optim.AdamW(m2.parameters(), lr=1.0)
    o2.load_state_dict(ck.optimizer_state_from_tensors(tensors, structure))
    assert o2.param_groups[0]["betas"] == (0.95, 0.999) and o2.param_groups[0]["lr"] == 1e-2
    _adam_steps(m1, o1, 2, seed=7)
    _adam_steps(m2, o2, 2, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters(), strict=True))


def test_rng_states_round_trip_and_pack():
    torch.manual_seed(3)
    np.random.seed(3)  # noqa: NPY002
    random.seed(3)
    random.gauss(0, 1)  # leaves a cached gauss_next in python's state
    state = ck.rng_state(torch.device("cpu"))
    assert all(t.dtype == torch.uint8 for t in state.values())

    def draw():
        return torch.randn(3).tolist(), np.random.rand(3).tolist(), [random.random(), random.gauss(0, 1)]  # noqa: NPY002

    first = draw()
    flat, layout = ck.pack_rng(state)
    ck.set_rng_state(ck.unpack_rng(flat, layout), torch.device("cpu"))
    assert draw() == first
    with pytest.raises(ValueError, match="layout describes"):
        ck.unpack_rng(flat[:-1], layout)


def _files(model, step):
    opt = torch.optim.AdamW(model.parameters())
    _adam_steps(model, opt, 1)
    t, s = ck.optimizer_state_to_tensors(opt)
    return {"model": model.state_dict(), "optimizer": t}, {"step": step, "optimizer": s}


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = _model()
    files, state = _files(model, 1)
    ck.save_checkpoint(tmp_path, files, state)
    saved_weight = files["model"]["0.weight"].clone()  # state_dict tensors alias the live model
    real_save = ck.save_tensors

    def crashing(path, tensors, metadata=None):
        if "optimizer" in str(path):
            raise OSError("disk full (simulated)")
        return real_save(path, tensors, metadata)

    monkeypatch.setattr(ck, "save_tensors", crashing)
    files2, state2 = _files(model, 2)
    with pytest.raises(OSError, match="simulated"):
        ck.save_checkpoint(tmp_path, files2, state2)
    loaded = ck.load_checkpoint(tmp_path)
    assert loaded is not None and loaded.step == 1 and loaded.path == tmp_path / "checkpoint"
    assert torch.equal(loaded.tensors["model"]["0.weight"], saved_weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # temp folder cleaned up


def test_crash_between_the_swap_renames_falls_back_to_the_old_checkpoint(tmp_path):
    model = _model()
    ck.save_checkpoint(tmp_path, *_files(model, 1))
    # the state after "checkpoint -> .checkpoint.old" but before "tmp -> checkpoint"
    (tmp_path / "checkpoint").rename(tmp_path / ".checkpoint.old")
    (tmp_path / ".checkpoint.tmp-2").mkdir()  # an incomplete new one
    assert ck.find_checkpoint(tmp_path) == tmp_path / ".checkpoint.old"
    assert ck.load_checkpoint(tmp_path).step == 1
    ck.save_checkpoint(tmp_path, *_files(model, 2))
    assert ck.load_checkpoint(tmp_path).step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_mixed_files_and_wrong_weights_are_refused_with_the_file_named(tmp_path):
    model = _model()
    ck.save_checkpoint(tmp_path / "a", *_files(model, 1))
    ck.save_checkpoint(tmp_path / "b", *_files(model, 2))
    (tmp_path / "b" / "checkpoint" / "model.safetensors").replace(
        tmp_path / "a" / "checkpoint" / "model.safetensors")
    with pytest.raises(ValueError, match=r"a/checkpoint/model.safetensors: metadata step '2' does not match"):
        ck.load_checkpoint(tmp_path / "a")
    path = weights.save_state_dict(model, tmp_path / "w.safetensors")
    bigger = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"w.safetensors: weights do not match the model: "
                                         r"missing keys \['3.bias'"):
        weights.load_state_dict_into(bigger, path)
    with pytest.raises(ValueError, match=r"key '0.weight' has shape \(5, 3\), the model expects \(4, 3\)"):
        weights.load_state_dict_into(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(5, 2)), path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="junk.safetensors: not a readable safetensors file"):
        ck.load_tensors(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.safetensors: file not found"):
        ck.load_tensors(tmp_path / "nope.safetensors")


def test_loading_never_unpickles_and_handles_tied_weights(tmp_path, monkeypatch):
    model = _model()
    tied = nn.Linear(2, 2)
    files, state = _files(model, 3)
    files["tied"] = {"a": tied.weight, "b": tied.weight}  # shared storage
    ck.save_checkpoint(tmp_path, files, state)

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = ck.load_checkpoint(tmp_path)
    assert torch.equal(loaded.tensors["tied"]["a"], tied.weight.detach())
    assert {p.suffix for p in (tmp_path / "checkpoint").iterdir()} == {".safetensors", ".json"}
    assert ck.tensor_file_metadata(tmp_path / "checkpoint" / "model.safetensors")["step"] == "3"
    assert ck.load_checkpoint(tmp_path / "empty") is None
