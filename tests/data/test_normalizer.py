"""Min–max normalizer to [−1, 1] (docs/algorithm.md §1.5): hand values, constant dims, numpy/torch agreement, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ractd.data import DatasetError, MinMaxNormalizer, NormalizerSet


def test_hand_computed_including_a_constant_dimension():
    x = np.array([[0.0, 5.0], [10.0, 5.0], [5.0, 5.0]], dtype=np.float32)
    norm = MinMaxNormalizer.fit(x)
    np.testing.assert_allclose(norm.scale, [0.2, 1.0])
    np.testing.assert_allclose(norm.offset, [-1.0, -5.0])
    np.testing.assert_allclose(norm.normalize(x), [[-1, 0], [1, 0], [0, 0]], atol=1e-7)
    np.testing.assert_allclose(norm.unnormalize(norm.normalize(x)), x, atol=1e-6)
    # no clipping outside the fitted range
    np.testing.assert_allclose(norm.normalize(np.array([20.0, 6.0])), [3.0, 1.0], atol=1e-6)


def test_range_below_eps_counts_as_constant():
    x = np.array([[1.0], [1.0 + 5e-8]])
    norm = MinMaxNormalizer.fit(x)
    assert norm.scale[0] == 1.0 and norm.offset[0] == pytest.approx(-1.0)


def test_random_round_trip_hits_minus_one_and_one():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(1000, 5)) * [1, 10, 100, 0.01, 3] + [0, -5, 50, 2, 0]).astype(np.float32)
    norm = MinMaxNormalizer.fit(x)
    y = norm.normalize(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.min(axis=0), -1.0, atol=1e-5)
    np.testing.assert_allclose(y.max(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(norm.unnormalize(y), x, rtol=1e-5, atol=1e-4)
    # works on any leading shape: (B, H, D)
    assert norm.normalize(x.reshape(10, 100, 5)).shape == (10, 100, 5)
    with pytest.raises(ValueError, match="shape"):
        norm.normalize(np.zeros((3, 4)))


def test_scalar_fit_for_returns_broadcasts():
    rtg = np.array([0.0, 4.0, 2.0])
    norm = MinMaxNormalizer.fit(rtg)
    assert norm.shape == ()
    np.testing.assert_allclose(norm.normalize(np.array([[0.0, 2.0], [4.0, 1.0]])), [[-1, 0], [1, -0.5]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_and_numpy_agree_and_keep_dtype(dtype):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    norm = MinMaxNormalizer.fit(x)
    t = torch.as_tensor(x, dtype=dtype)
    y = norm.normalize(t)
    assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.device == t.device
    np.testing.assert_allclose(y.numpy(), norm.normalize(x), rtol=1e-6, atol=1e-6)
    back = norm.unnormalize(y)
    assert back.dtype == dtype
    np.testing.assert_allclose(back.numpy(), x, rtol=1e-5, atol=1e-5)


def test_normalizer_set_save_load_round_trip(tmp_path):
    from safetensors.numpy import load_file

    rng = np.random.default_rng(2)
    norms = NormalizerSet.fit({"observations": rng.normal(size=(50, 3)), "actions": rng.normal(size=(50, 2)),
                               "returns": rng.normal(size=50)})
    path = tmp_path / "normalizer.safetensors"
    norms.save(path)
    raw = load_file(str(path))
    assert {"observations.scale", "observations.offset", "actions.min", "returns.max"} <= set(raw)
    back = NormalizerSet.load(path)
    assert back.equals(norms, atol=0.0)
    for name in norms:
        for k, v in norms[name].state_dict().items():
            np.testing.assert_array_equal(back[name].state_dict()[k], v)
    assert list(tmp_path.iterdir()) == [path]


def test_equals_respects_atol():
    a = NormalizerSet({"x": MinMaxNormalizer.fit(np.array([[0.0], [1.0]]))})
    b = NormalizerSet({"x": MinMaxNormalizer.fit(np.array([[0.0], [1.0 + 1e-4]]))})
    assert not a.equals(b, atol=1e-6) and a.equals(b, atol=1e-3)
    assert not a.equals(NormalizerSet({"y": a["x"]}))
    with pytest.raises(KeyError, match="available"):
        a["y"]


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    import safetensors.numpy

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", boom)
    norms = NormalizerSet.fit({"x": np.zeros((3, 1))})
    with pytest.raises(RuntimeError, match="disk full"):
        norms.save(tmp_path / "n.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_load_of_a_corrupt_file_names_it(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"not safetensors at all")
    with pytest.raises(DatasetError, match="bad.safetensors"):
        NormalizerSet.load(path)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        NormalizerSet.load(tmp_path / "missing.safetensors")
