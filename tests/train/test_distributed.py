"""DDP under torchrun (2 CPU processes, gloo) and the single-process helpers of ractd.train.distributed.

Run by pytest, and also as the script that `python -m torch.distributed.run` launches (see __main__).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from ractd.io import read_json, write_json
from ractd.train import LoopConfig, batch_indices, train, unwrap
from ractd.train.distributed import DistInfo, all_reduce_mean, resolve_device, shard, wrap_ddp
from ractd.train.logging import read_csv_log


class LinearData:
    def __init__(self, n: int = 64) -> None:
        r = np.random.default_rng(0)
        self.x = r.normal(size=(n, 3)).astype(np.float32)
        self.y = (self.x @ np.array([0.5, -1.0, 2.0], np.float32))[:, None]
        self.seen: list[list[int]] = []

    def __len__(self) -> int:
        return len(self.x)

    def get_batch(self, indices):
        self.seen.append([int(i) for i in indices])
        return {"x": self.x[indices], "y": self.y[indices]}


class Regression:
    """Deterministic MSE objective (no randomness in the loss), so 2 ranks equal 1 process. It calls the
    (DDP-wrapped) model twice per step, as the student objective does."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))

    def trainable(self):
        return self.net

    def loss(self, model, batch, step):
        first = ((model(batch["x"]) - batch["y"]) ** 2).mean()
        second = ((model(batch["x"] + 1.0) - batch["y"]) ** 2).mean()  # a second forward
        return first + 0.5 * second, {"first": first.detach()}

    def after_optimizer_step(self, model, step):
        assert not isinstance(model, nn.parallel.DistributedDataParallel)


def config() -> LoopConfig:
    return LoopConfig(epochs=3, batch_size=16, lr=5e-2, warmup_steps=2, checkpoint_every=4, log_every=1,
                      seed=0, tensorboard=True)


def main(run_dir: str) -> None:
    """What each torchrun process runs."""
    torch.set_num_threads(1)
    data = LinearData()
    train(Regression(), data, config(), run_dir, progress=False)
    # after train() the process group is gone; each rank reports which items it was given
    write_json(Path(run_dir) / f"seen-rank{os.environ['RANK']}.json", data.seen)


# --- unit tests of the helpers -------------------------------------------------------------------------

def test_shard_pads_to_equal_strided_shares():
    idx = np.array([10, 11, 12, 13, 14])
    a, b = shard(idx, 0, 2), shard(idx, 1, 2)
    assert a.tolist() == [10, 12, 14] and b.tolist() == [11, 13, 10]  # padded by wrapping around
    assert shard(idx, 0, 1) is idx
    assert [shard(np.arange(8), r, 4).tolist() for r in range(4)] == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_single_process_helpers():
    info = DistInfo()
    assert info.is_main and not info.distributed
    net = nn.Linear(2, 2)
    assert wrap_ddp(net, info) is net and unwrap(net) is net
    assert all_reduce_mean({"a": 1.5}, info) == {"a": 1.5}
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="--device tpu: not a device; expected cpu, cuda, cuda:N or mps"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"--device cuda: CUDA is not available on this machine .*--device cpu"):
            resolve_device("cuda")


# --- the real thing: torchrun with 2 CPU processes ---------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="torch.distributed with gloo is not available in this torch build")
def test_torchrun_two_cpu_processes_train_like_one_and_write_one_checkpoint(tmp_path):
    run_dir = tmp_path / "ddp"
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           __file__, str(run_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # exactly one checkpoint, written by rank 0, at the final step; one set of logs
    assert sorted(p.name for p in run_dir.iterdir() if "checkpoint" in p.name) == ["checkpoint"]
    assert read_json(run_dir / "checkpoint" / "state.json")["step"] == 12
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 1
    meta = read_json(run_dir / "meta.json")
    assert meta["world_size"] == 2 and meta["status"] == "finished"

    # each rank got its strided half of every global batch
    seen = [read_json(run_dir / f"seen-rank{r}.json") for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 12
    for step in range(12):
        global_batch = batch_indices(0, step, 64, 16)
        assert seen[0][step] == global_batch[0::2].tolist() and seen[1][step] == global_batch[1::2].tolist()

    # the averaged gradients of 2 shards = the gradient of the whole batch: same losses as 1 process
    torch.set_num_threads(1)
    single = train(Regression(), LinearData(), config(), tmp_path / "single", progress=False)
    ddp_loss = [float(r["loss"]) for r in read_csv_log(run_dir / "train.csv")]
    one_loss = [float(r["loss"]) for r in read_csv_log(single.csv_path)]
    assert len(ddp_loss) == 12 and ddp_loss[-1] < 0.5 * ddp_loss[0]
    np.testing.assert_allclose(ddp_loss, one_loss, rtol=1e-4)


if __name__ == "__main__":
    main(sys.argv[1])
