"""Dataset card (episodes, steps, return distribution, normalized score) and the return histogram."""

from __future__ import annotations

import numpy as np
import pytest

from ractd.data import OfflineDataset, dataset_card, format_card, normalized_score, plot_return_histogram


def three_episodes() -> OfflineDataset:
    """Episode returns 2, 6, 10 (lengths 2, 3, 5); the first ends in a terminal."""
    rewards = np.array([1, 1, 2, 2, 2, 2, 2, 2, 2, 2], dtype=np.float32)
    terminals = np.zeros(10, dtype=bool)
    timeouts = np.zeros(10, dtype=bool)
    terminals[1] = True
    timeouts[[4, 9]] = True
    return OfflineDataset.from_arrays({
        "observations": np.zeros((10, 2)), "actions": np.zeros((10, 1)), "rewards": rewards,
        "terminals": terminals, "timeouts": timeouts,
    }, metadata={"name": "toy"})


def test_card_hand_computed():
    card = dataset_card(three_episodes(), ref_min_score=0.0, ref_max_score=20.0)
    assert (card["name"], card["episodes"], card["steps"], card["terminal_episodes"]) == ("toy", 3, 10, 1)
    assert card["return"]["mean"] == pytest.approx(6.0)
    assert card["return"]["std"] == pytest.approx(np.std([2, 6, 10]))
    assert (card["return"]["min"], card["return"]["q25"], card["return"]["median"]) == (2.0, 4.0, 6.0)
    assert (card["return"]["q75"], card["return"]["max"]) == (8.0, 10.0)
    assert card["episode_length"]["mean"] == pytest.approx(10 / 3)
    assert card["normalized_return"]["mean"] == pytest.approx(30.0)
    assert card["normalized_return"]["max"] == pytest.approx(50.0)
    assert "normalized_return" not in dataset_card(three_episodes())


def test_normalized_score_is_d4rl_formula():
    # hopper D4RL v2 references: the expert reference itself scores 100, the random one 0
    assert normalized_score(3234.3, -20.272305, 3234.3) == pytest.approx(100.0)
    assert normalized_score(-20.272305, -20.272305, 3234.3) == pytest.approx(0.0)


def test_format_card_shows_the_numbers():
    text = format_card(dataset_card(three_episodes(), 0.0, 20.0))
    assert "toy" in text and "episodes           3 (1 end in a terminal)" in text
    assert "mean 6.00" in text and "median 6.00" in text and "mean 30.0" in text


@pytest.mark.parametrize("ref", [None, (0.0, 20.0)])
def test_histogram_is_a_png_written_atomically(tmp_path, ref):
    path = plot_return_histogram({"medium": np.array([1.0, 2.0, 3.0]), "expert": np.array([9.0, 10.0])},
                                 tmp_path / "returns.png", title="hopper", ref=ref)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["returns.png"]
