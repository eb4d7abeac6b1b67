"""Task presets as data: one JSON file per task, `{"paper": {...}, "cpu": {...}}`, read by one loader.

Each size is a complete delta over the `RunConfig` defaults (docs/presets.md): the file is the whole preset,
nothing here computes a value. The loader only adds what the file name and the size say (`task`, `size`, and
`data.dataset` = the task name unless the file sets it) and parses with the strict `ractd.schema` parser, so a
typo in a preset fails naming the file, the size and the field.

Where presets come from, first match wins: the `preset_dirs` argument, then the directories in the environment
variable `RACTD_PRESET_PATH` (separated like PATH), then the files shipped here. Adding a task = adding a
`<task>.json` to one of them. A name that has no file (a user's D4RL file, any gymnasium env id) gets
`generic.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply_overrides
from ..schema import from_dict, merge

SIZES = ("cpu", "paper")
GENERIC = "generic"  # the file for any task without one of its own
PRESET_PATH_ENV = "RACTD_PRESET_PATH"
PACKAGE_DIR = Path(__file__).parent
_FILE_KEYS = ("description", *SIZES)  # the top level of a preset file

PresetDirs = Sequence[str | os.PathLike[str]] | None


def search_path(preset_dirs: PresetDirs = None) -> list[Path]:
    """Where presets are looked up, first match wins: `preset_dirs`, then `$RACTD_PRESET_PATH`, then the package."""
    env = [p for p in os.environ.get(PRESET_PATH_ENV, "").split(os.pathsep) if p]
    return [Path(p) for p in (*(preset_dirs or ()), *env)] + [PACKAGE_DIR]


def task_names(preset_dirs: PresetDirs = None) -> list[str]:
    """Every task with a preset file on the search path (sorted; `generic` is not a task)."""
    names = {p.stem for d in search_path(preset_dirs) if d.is_dir() for p in d.glob("*.json")}
    return sorted(names - {GENERIC})


def preset_file(task: str, preset_dirs: PresetDirs = None) -> Path | None:
    """The file that defines `task`, or None (then the task gets the generic preset)."""
    if not task or Path(task).name != task or task.startswith("."):
        return None  # a path (e.g. a D4RL file given as the task) is never a preset name
    for d in search_path(preset_dirs):
        path = d / f"{task}.json"
        if path.is_file():
            return path
    return None


def read_preset_file(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The sizes of one preset file, checked for shape (the values are checked when a size is built)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read preset ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a preset is a JSON object with the keys {list(SIZES)}")
    unknown = [k for k in data if k not in _FILE_KEYS]
    missing = [s for s in SIZES if s not in data]
    if unknown or missing:
        raise ValueError(f"{path}: a preset has one object per size {list(SIZES)} and an optional 'description'"
                         + (f"; unknown: {unknown}" if unknown else "") + (f"; missing: {missing}" if missing else ""))
    for size in SIZES:
        delta = data[size]
        if not isinstance(delta, dict):
            raise ValueError(f"{path} [{size}]: expected an object, got {type(delta).__name__}")
        fixed = [k for k in ("task", "size") if k in delta]
        if fixed:
            raise ValueError(f"{path} [{size}]: remove {fixed}: the task is the file name and the size the "
                             "object's key")
    return {size: data[size] for size in SIZES}


def _build(path: Path, task: str, size: str, dataset: str = "") -> RunConfig:
    delta = read_preset_file(path)[size]
    fixed: dict[str, Any] = {"task": task, "size": size}
    data = delta.get("data")
    if dataset or not (isinstance(data, dict) and data.get("dataset")):
        fixed["data"] = {"dataset": dataset or task}
    try:
        return from_dict(RunConfig, merge(delta, fixed))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} [{size}]: {e}") from None


def _check_size(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")


def preset(task: str, size: str = "cpu", preset_dirs: PresetDirs = None) -> RunConfig:
    """The preset of `task` at `size`; a task without a preset file gets the generic one."""
    _check_size(size)
    path = preset_file(task, preset_dirs)
    if path is None:
        return generic_preset(task, size, preset_dirs=preset_dirs)
    return _build(path, task, size)


def generic_preset(task: str, size: str = "cpu", dataset: str = "", preset_dirs: PresetDirs = None) -> RunConfig:
    """`generic.json` for any dataset + gymnasium env id: `task` names the env, `dataset` (default: `task`)
    the data."""
    _check_size(size)
    path = preset_file(GENERIC, preset_dirs)
    if path is None:  # only if the package is broken
        raise ValueError(f"no {GENERIC}.json on the preset path {[str(p) for p in search_path(preset_dirs)]}")
    return _build(path, task, size, dataset)


def check_task(task: str, preset_dirs: PresetDirs = None) -> None:
    """Refuse a task that is neither a preset nor a task the registry knows (`ractd.envs`: the paper's tasks with
    every dataset level, D4RL '-vN' names, registered gymnasium ids), suggesting the closest name."""
    from ..envs.registry import did_you_mean, is_known_task

    if preset_file(task, preset_dirs) is not None or is_known_task(task):
        return
    raise ValueError(f"unknown task {task!r}{did_you_mean(task, task_names(preset_dirs))}: a task is a preset "
                     f"({', '.join(task_names(preset_dirs))}), another dataset level such as hopper-random, or a "
                     "registered gymnasium env id such as Hopper-v5")


def default_size() -> str:
    """The size `ractd train` and `ractd config` use when none is given: `paper` when CUDA is available, else
    `cpu`."""
    import torch

    return "paper" if torch.cuda.is_available() else "cpu"


def read_config_file(path: str | os.PathLike[str], task: str | None = None) -> dict[str, Any]:
    """A JSON config file as a RunConfig dict: a (partial) RunConfig, or a run folder's config.json, whose
    RunConfig is under "config". A file that names another task than `task` is refused."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read config ({e})") from None
    if isinstance(data, dict) and "stage" in data and isinstance(data.get("config"), dict):
        from ..artifact import upgrade_header

        data = upgrade_header(data)["config"]  # a run's config.json: the RunConfig it was trained with
    if not isinstance(data, dict):
        raise ValueError(f"the config file: expected a JSON object, got {type(data).__name__} ({path})")
    named = data.get("task")
    if task is not None and named not in (None, "", task):
        raise ValueError(f"{path}: a config of task {named!r}, not {task!r}; give the task {named} (or remove "
                         "\"task\" from the file)")
    return data


def resolve_config(task: str, size: str = "cpu", overrides: list[str] | None = None,
                   config_file: str | os.PathLike[str] | None = None, preset_dirs: PresetDirs = None,
                   inherited: dict | None = None) -> RunConfig:
    """Preset → `inherited` (settings taken from an earlier stage's run: the teacher run's data settings, and
    for its student the teacher's network and EDM constants) → optional JSON config file (`read_config_file`)
    → command-line overrides, validated at every layer. An unknown task is refused (`check_task`)."""
    _check_size(size)
    check_task(task, preset_dirs)
    cfg = preset(task, size, preset_dirs)
    if inherited:
        cfg = apply_overrides(cfg, None, inherited)
    extra = read_config_file(config_file, task) if config_file else None
    return apply_overrides(cfg, overrides, extra)


# The shipped tasks (docs/presets.md), whatever $RACTD_PRESET_PATH says; `task_names()` includes added ones.
TASKS = sorted(p.stem for p in PACKAGE_DIR.glob("*.json") if p.stem != GENERIC)

__all__ = ["GENERIC", "PACKAGE_DIR", "PRESET_PATH_ENV", "SIZES", "TASKS", "check_task", "default_size",
           "generic_preset", "preset", "preset_file", "read_config_file", "read_preset_file", "resolve_config",
           "search_path", "task_names"]
