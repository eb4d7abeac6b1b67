"""The run folder's artifacts: file names, which weights are exported, meta.json, and a fresh start's cleanup."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from torch import nn

from ractd.io import read_json
from ractd.loop_config import LoopConfig
from ractd.train import checkpoint as ckpt_io
from ractd.train.ema import EMA
from ractd.train.logging import TB_DIR
from ractd.train.meta import parameter_counts, run_metadata, utc_now
from ractd.train.state import RunState
from ractd.weights import save_state_dict

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
ONLINE_FILE = "online.safetensors"
META_FILE = "meta.json"
BEST_DIR = "best"


def exported_weights(cfg: LoopConfig, model: nn.Module, ema: EMA | None) -> dict[str, nn.Module]:
    """File name → module: model.safetensors holds the `cfg.export` weights, plus ema/online copies."""
    files = {MODEL_FILE: ema.averaged if cfg.export == "ema" and ema is not None else model}
    if ema is not None:
        files[EMA_FILE] = ema.averaged
        if cfg.export == "ema":
            files[ONLINE_FILE] = model
    return files


def save_exported_weights(run: RunState) -> None:
    """Write the final weights files of the run folder, each labelled with its step and kind."""
    for name, module in exported_weights(run.cfg, run.plain, run.ema).items():
        kind = "online" if module is run.plain else "ema"
        save_state_dict(module, run.run_dir / name, {"step": str(run.step), "weights": kind})


def clear_training_artifacts(run_dir: Path) -> None:
    """A fresh start owns the run folder's training artifacts: drop the checkpoint, TensorBoard events, best/."""
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_io.remove_checkpoint(run_dir)
    for old in (run_dir / TB_DIR).glob("events.out.tfevents.*"):
        old.unlink()
    if (run_dir / BEST_DIR).is_dir():
        shutil.rmtree(run_dir / BEST_DIR)


def initial_meta(run: RunState, run_meta: dict[str, Any] | None) -> dict[str, Any]:
    """meta.json at the start of a session; a resume keeps the first start time and appends to `resumes`."""
    path = run.run_dir / META_FILE
    meta = run_metadata(run.cfg.seed, run_meta)
    if run.resumed_from is not None and path.exists():
        try:
            previous = read_json(path)
        except ValueError:
            previous = {}
        meta["start_time"] = previous.get("start_time", meta["start_time"])
        meta["resumes"] = [*previous.get("resumes", []), {"step": run.resumed_from, "time": utc_now()}]
    meta.update({
        "status": "running",
        "loop": run.cfg.to_dict(),
        "device": str(run.device),
        "world_size": run.info.world_size,
        "n_items": run.n_items,
        "steps_per_epoch": run.steps_per_epoch,
        "total_steps": run.total_steps,
        "parameters": parameter_counts(run.plain),
    })
    return meta


def final_meta(run: RunState) -> dict[str, Any]:
    """What meta.json adds when training ends: status, step, wall time, metrics, best and exported weights."""
    weights = {name: ("online" if module is run.plain else "ema")
               for name, module in exported_weights(run.cfg, run.plain, run.ema).items()}
    return {
        "status": "finished" if run.step >= run.total_steps else "stopped",
        "end_time": utc_now(),
        "step": run.step,
        "epochs_completed": run.step // run.steps_per_epoch,
        "wall_time_s": round(run.wall_time, 3),
        "metrics": run.last_scalars,
        "best": run.best,
        "weights": weights,
    }
