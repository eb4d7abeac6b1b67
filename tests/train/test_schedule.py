"""Cosine learning-rate schedule with linear warm-up (diffusers "cosine", docs/algorithm.md §2.4) against hand
values."""

import math

import pytest

from ractd.train.schedule import cosine_warmup_factor, cosine_warmup_lr


@pytest.mark.parametrize("step,expected", [
    (0, 0.0),                      # the first update has lr 0 (scheduler stepped after the optimizer)
    (5, 0.5),                      # halfway through the 10 warm-up steps
    (10, 1.0),                     # warm-up done
    (35, 0.8535533905932737),      # a quarter into the cosine: (1 + cos(π/4)) / 2
    (60, 0.5),                     # half-way: (1 + cos(π/2)) / 2
    (85, 0.14644660940672627),     # (1 + cos(3π/4)) / 2
    (110, 0.0),                    # end of the schedule
    (150, 0.0),                    # beyond the end: stays at 0, does not come back up
])
def test_cosine_warmup_hand_values(step, expected):
    assert cosine_warmup_factor(step, warmup_steps=10, total_steps=110) == pytest.approx(expected, abs=1e-12)


def test_no_warmup_starts_at_full_lr_and_decays_monotonically():
    f = [cosine_warmup_factor(s, 0, 50) for s in range(51)]
    assert f[0] == 1.0 and f[-1] == pytest.approx(0.0, abs=1e-15)
    assert all(a > b for a, b in zip(f, f[1:], strict=False))
    assert cosine_warmup_lr(25, 2e-4, 0, 50) == pytest.approx(1e-4)  # half the base lr mid-way


def test_warmup_longer_than_schedule_and_bad_step():
    assert cosine_warmup_factor(3, 20, 10) == pytest.approx(3 / 20)
    assert math.isclose(cosine_warmup_factor(20, 20, 10), 1.0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        cosine_warmup_factor(-1, 10, 100)
