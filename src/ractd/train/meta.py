"""Run metadata for `meta.json`: versions, platform, ractd's git revision, times, parameter counts."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import ractd
from ractd.nn import count_parameters


def utc_now() -> str:
    """Current time, ISO 8601 in UTC with seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def ractd_source_root() -> Path | None:
    """Root of the git checkout ractd is imported from, or None for an installed (non-checkout) copy."""
    pkg = Path(ractd.__file__).resolve().parent
    for parent in pkg.parents:
        if (parent / ".git").exists():
            return parent
    return None


def git_revision() -> dict[str, Any]:
    """{'commit': sha | None, 'dirty': bool | None} of ractd's own checkout (not the current directory).

    `dirty` means tracked files differ from the commit (untracked files are ignored).
    """
    root = ractd_source_root()
    if root is None:
        return {"commit": None, "dirty": None}
    commit = _git(["rev-parse", "HEAD"], root)
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def parameter_counts(module: nn.Module) -> dict[str, int]:
    """meta.json's parameter counts: {'total': all scalar parameters, 'trainable': those with requires_grad}."""
    return {"total": count_parameters(module), "trainable": count_parameters(module, trainable_only=True)}


def run_metadata(seed: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to say what produced a run, merged with `extra` (e.g. dataset fingerprint).

    Keys: seed, start_time, versions (python, torch, numpy, ractd), platform, git ({commit, dirty}),
    command (sys.argv). `extra` keys override these.
    """
    meta: dict[str, Any] = {
        "seed": seed,
        "start_time": utc_now(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "ractd": ractd.__version__,
        },
        "platform": {
            "system": platform.platform(),
            "machine": platform.machine(),
            "processor": platform.processor() or None,
            "cuda": torch.version.cuda,
            "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "torch_threads": torch.get_num_threads(),
        },
        "git": git_revision(),
        "command": list(sys.argv),
    }
    meta.update(extra or {})
    return meta
