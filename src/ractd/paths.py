"""Where ractd keeps datasets and runs on disk (overridable by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """Root for generated/imported datasets: $RACTD_DATA_DIR, else ~/.ractd/datasets."""
    return Path(os.environ.get("RACTD_DATA_DIR", Path.home() / ".ractd" / "datasets")).expanduser()


def minari_root() -> Path:
    """Minari's local dataset root: $MINARI_DATASETS_PATH, else ~/.minari/datasets (Minari's default)."""
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets")).expanduser()
