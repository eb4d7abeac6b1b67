"""Whether a training run may write into its folder: start it, resume it, or leave it alone because it is finished.

A run folder's config.json (`ractd.artifact.stage_header`) says what the weights next to it are: the stage, the
dimensions, the dataset's fingerprint and the resolved config. A re-run into an existing folder is compared with
that header before any byte is written (`plan_run_folder`), so a folder never ends up describing one run while
holding the weights of another:

- no folder, an empty one, or `resume=False` (`--restart`) on a ractd run folder: a fresh start;
- the same run, unfinished (stopped, interrupted, failed): it resumes from its checkpoint;
- the same run, finished: nothing to do, nothing is written;
- anything else: refused, with one error naming every differing field with both values and the two ways out.

"The same run" means the same stage, dimensions and dataset fingerprint, and the same value of every config field
the stage reads (`stage_settings`: its network, objective, data and training loop), except the bookkeeping fields,
which may change between sessions of one run because they do not change what is trained:

- `<stage>.train.log_every`, `checkpoint_every`, `tensorboard`, `wandb`, `wandb_project`: what is logged and saved
  along the way;
- `<stage>.train.max_steps`: where this session stops (the schedule spans all epochs, so a run stopped early
  resumes to the same result);
- `device` (and `<stage>.train.device`): a run may continue on another device;
- `size`: the preset's label; the values it stands for are compared field by field.

Whether to show a progress bar is an argument of the call, not part of the config. The training loop checks its
own settings against the checkpoint again when it restores it (`ractd.train.state.RunState.restore`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .artifact import ArtifactError, upgrade_header
from .config import RunConfig
from .io import read_json
from .schema import from_dict, to_dict

BOOKKEEPING = ("log_every", "checkpoint_every", "tensorboard", "wandb", "wandb_project", "max_steps", "device")
UNCOMPARED = ("size", "device")  # top-level config fields that never block a resume (see the module docstring)
HEADER_FIELDS = ("stage", "obs_dim", "act_dim", "dataset_fingerprint")
ESCAPES = "train a new run next to it with --name NEW, or start this one over with --restart, which deletes its files"

Action = Literal["start", "resume", "finished", "refused"]


@dataclass(frozen=True)
class RunFolder:
    """What a training run will do with its folder, decided before anything is written."""

    path: Path
    action: Action
    status: str | None = None  # meta.json's status of the run already there ("finished", "stopped", ...)
    step: int | None = None  # the step it reached
    reason: str = ""  # why the run may not write here (action "refused"): one line naming the way out

    def check(self) -> None:
        """Raise ArtifactError with the reason when the run may not write into this folder."""
        if self.action == "refused":
            raise ArtifactError(self.reason)

    @property
    def clears_old_run(self) -> bool:
        """A fresh start over an existing run folder (`--restart`): its files go once every check has passed."""
        return self.action == "start" and (self.path / "config.json").exists()

    def describe(self) -> str:
        """One line for the finished case: where the run is and how to train it again."""
        step = f" (step {self.step})" if self.step is not None else ""
        return f"{self.path}: already finished{step} with this config and dataset, nothing to do; {ESCAPES}"


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A JSON-like tree as {dotted path: leaf}; lists are leaves."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def differing_fields(here: Any, there: Any, prefix: str = "", where: str = "the run") -> list[str]:
    """Dotted paths where two JSON-like trees differ, each with both values (for one readable error line)."""
    a, b = flatten(here, prefix), flatten(there, prefix)
    return [f"{path} = {a.get(path)!r} here, {b.get(path)!r} in {where}"
            for path in sorted(set(a) | set(b)) if a.get(path) != b.get(path)]


def stage_settings(stage: str, config: dict[str, Any]) -> tuple[str, ...]:
    """The config paths (a path covers everything under it) that `stage` reads to build and train its model."""
    common = ("task", "seed", "data")
    if stage == "teacher":
        guided = float((config.get("teacher") or {}).get("reward_guidance") or 0) > 0
        return (*common, "teacher", "eval", *(("student.reward_run", "student.reward_aggregate") if guided else ()))
    if stage == "student":
        return (*common, "teacher.kind", "teacher.unet", "teacher.edm", "student", "eval")
    return (*common, stage)  # reward, inverse_dynamics


def covered(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether the dotted `path` is one of `prefixes` or lies under one."""
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def _bookkeeping(path: str) -> bool:
    parts = path.split(".")
    return path in UNCOMPARED or (len(parts) >= 2 and parts[-2] == "train" and parts[-1] in BOOKKEEPING)


def _show(key: str, value: Any) -> Any:
    return value[:12] + "…" if key == "dataset_fingerprint" and isinstance(value, str) else value


def header_differences(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every difference between a run folder's header and the header of the run about to start that makes them
    different runs: config fields first (what the user set), then stage, dimensions and dataset fingerprint.

    Both headers are complete (`stage_header`); `saved` is read with `read_saved_header`.
    """
    stage = new["stage"]
    ours, theirs = flatten(new["config"]), flatten(saved["config"])
    prefixes = tuple(dict.fromkeys((*stage_settings(stage, new["config"]), *stage_settings(stage, saved["config"]))))
    diffs = [f"{path} = {ours.get(path)!r} here, {theirs.get(path)!r} in the run"
             for path in sorted(set(ours) | set(theirs))
             if covered(path, prefixes) and not _bookkeeping(path) and ours.get(path) != theirs.get(path)]
    diffs += [f"{key} = {_show(key, new.get(key))!r} here, {_show(key, saved.get(key))!r} in the run"
              for key in HEADER_FIELDS if new.get(key) != saved.get(key)]
    return diffs


def read_saved_header(run_dir: Path) -> dict[str, Any]:
    """A run folder's config.json as `stage_header` writes it today (earlier formats upgraded, defaults filled)."""
    path = run_dir / "config.json"
    try:
        header = upgrade_header(read_json(path))
        if not isinstance(header.get("config"), dict):
            raise ValueError("no 'config' object")
        header["config"] = to_dict(from_dict(RunConfig, header["config"]))
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ArtifactError(f"{path}: cannot read the run already in {run_dir} ({e}); {ESCAPES}") from None
    return as_json(header)


def as_json(tree: Any) -> Any:
    """The tree as it reads back from JSON (tuples become lists), so a saved and a new header compare equal."""
    return json.loads(json.dumps(tree, default=str))


def plan_run_folder(run_dir: str | Path, header: dict[str, Any], resume: bool = True) -> RunFolder:
    """Decide what a run with `header` does with `run_dir`, reading only (see the module docstring).

    A folder that holds another run, or is not a ractd run folder, gives action "refused" with a one-line
    reason (`RunFolder.check` raises it).
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return RunFolder(run_dir, "start")
    if not run_dir.is_dir():
        return RunFolder(run_dir, "refused", reason=f"{run_dir}: exists and is not a folder; choose another run "
                         "folder with --name NEW")
    if not (run_dir / "config.json").exists():
        if any(run_dir.iterdir()):
            return RunFolder(run_dir, "refused", reason=f"{run_dir}: exists and is not a ractd run folder (no "
                             "config.json), so it is left alone; choose another run folder with --name NEW")
        return RunFolder(run_dir, "start")
    if not resume:
        return RunFolder(run_dir, "start")
    try:
        diffs = header_differences(read_saved_header(run_dir), as_json(header))
    except ArtifactError as e:
        return RunFolder(run_dir, "refused", reason=str(e))
    if diffs:
        return RunFolder(run_dir, "refused", reason=f"{run_dir} holds another run ({'; '.join(diffs)}); {ESCAPES}")
    meta: dict[str, Any] = {}
    if (run_dir / "meta.json").exists():
        try:
            meta = read_json(run_dir / "meta.json")
        except ValueError:
            meta = {}
    status, step = meta.get("status"), meta.get("step")
    if status == "finished" and (run_dir / "model.safetensors").exists():
        return RunFolder(run_dir, "finished", status, step)
    return RunFolder(run_dir, "resume", status, step)


def clear_run_folder(run_dir: Path) -> None:
    """Delete everything in a ractd run folder (a `--restart`); called once every check of the new run passed."""
    if not (run_dir / "config.json").exists():
        raise ArtifactError(f"{run_dir}: not a ractd run folder (no config.json); not deleting it")
    for entry in run_dir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
