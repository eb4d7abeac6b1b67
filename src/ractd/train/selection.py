"""Best-model selection: keep the epoch-end weights with the best `select_metric` in best/."""

from __future__ import annotations

import math
import warnings

from ractd.io import write_json
from ractd.train.artifacts import BEST_DIR, exported_weights
from ractd.train.state import RunState
from ractd.weights import save_state_dict


def is_better(value: float, old: float, mode: str) -> bool:
    """Strictly better: lower for mode "min", higher for "max" (a tie keeps the earlier epoch)."""
    return value < old if mode == "min" else value > old


def update_best(run: RunState, epoch: int, scalars: dict[str, float]) -> None:
    """If the epoch-end `scalars` improve on run.best, record them and (rank 0) write best/ and best.json."""
    metric = run.cfg.select_metric
    if metric is None or metric not in scalars or not math.isfinite(scalars[metric]):
        return
    value = scalars[metric]
    if run.best is not None and not is_better(value, run.best["value"], run.cfg.select_mode):
        return
    run.best = {"metric": metric, "mode": run.cfg.select_mode, "value": value, "step": run.step, "epoch": epoch}
    if run.info.is_main:
        best_dir = run.run_dir / BEST_DIR
        for name, module in exported_weights(run.cfg, run.plain, run.ema).items():
            save_state_dict(module, best_dir / name, {"step": str(run.step)})
        write_json(best_dir / "best.json", run.best)


def warn_if_never_selected(run: RunState) -> None:
    """Say so (rank 0) when `select_metric` was set but never logged at an epoch end."""
    if run.cfg.select_metric is not None and run.best is None and run.info.is_main:
        warnings.warn(f"LoopConfig.select_metric {run.cfg.select_metric!r} was never logged at an epoch end "
                      f"(validation gives 'val_loss', callbacks their own keys); {BEST_DIR}/ not written",
                      stacklevel=3)
