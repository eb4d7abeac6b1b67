"""Toy distillation end to end: teacher → CTD and RACTD students.

One run of `run_toy` (≈ 2–5 min on the 2-core CI machine) is shared by every assertion below.
"""

import pytest
import torch

from ractd.toy import ToyConfig, distance_to_data, mode_a_mass, run_toy, toy_reward, two_mode_dataset

torch.set_num_threads(1)

pytestmark = pytest.mark.slow

# Distance to data is the mean RMS (per element) distance to the nearest of the 4096 training sequences. The data
# jitter is 0.05 per element, so a perfect sampler lands at ≈ 0.03 (the teacher's measured value); collapsing onto
# the data mean costs 0.36 (checked below) and a sample midway between a mode and the mean ≈ 0.2. 0.15 therefore
# accepts the one-step students' measured 0.02–0.09 and rejects anything that does not land on a mode.
DISTANCE_BOUND = 0.15


@pytest.fixture(scope="module")
def toy():
    rows, times = run_toy(ToyConfig(), progress=False)
    table = "\n".join(
        f"{r.sampler:16s} NFE {r.nfe:4d}  mode A {r.mode_a_mass:.3f}  dist {r.distance:.4f}  {r.ms_per_sample:.3f} ms"
        for r in rows
    )
    print(f"\n{table}\nstage times (s): {times}")
    return {r.sampler: r for r in rows}


def test_toy_data_and_reward():
    cfg = ToyConfig()
    data, mode = two_mode_dataset(cfg.n_data, cfg, torch.Generator().manual_seed(0))
    assert data.shape == (cfg.n_data, cfg.horizon, cfg.channels)
    assert mode_a_mass(data) == pytest.approx(0.5, abs=0.03)
    assert float(toy_reward(data[mode == 1]).min()) > 0.5 > -0.5 > float(toy_reward(data[mode == 0]).max())
    # the bound is meaningful: collapsing to the mean is far, a fresh draw from the data is near
    assert distance_to_data(torch.zeros(10, cfg.horizon, cfg.channels), data) > 2 * DISTANCE_BOUND  # 0.36
    fresh, _ = two_mode_dataset(500, cfg, torch.Generator().manual_seed(1))
    assert distance_to_data(fresh, data) < 0.05


def test_toy_nfe_column(toy):
    assert toy["teacher Heun"].nfe == 158
    assert toy["CTD one-step"].nfe == toy["RACTD one-step"].nfe == 1
    assert toy["CTD two-step"].nfe == toy["RACTD two-step"].nfe == 2


def test_toy_teacher_keeps_both_modes_and_lands_on_data(toy):
    assert toy["teacher Heun"].mode_a_mass == pytest.approx(0.5, abs=0.1)
    assert toy["teacher Heun"].distance < DISTANCE_BOUND


def test_toy_ctd_one_step_keeps_the_teachers_mode_mass(toy):
    assert abs(toy["CTD one-step"].mode_a_mass - toy["teacher Heun"].mode_a_mass) <= 0.10
    assert toy["CTD one-step"].distance < DISTANCE_BOUND


def test_toy_ractd_one_step_picks_the_rewarded_mode(toy):
    assert toy["RACTD one-step"].mode_a_mass >= 0.90
    assert toy["RACTD one-step"].distance < DISTANCE_BOUND
