"""The optional `generate` extra (stable-baselines3, tqdm): one error type and one check for everything that trains
PPO policies (locomotion behaviour policies, roundabout experts)."""

from __future__ import annotations

import importlib

INSTALL_HINT = "pip install 'ractd[generate]'"


class MissingExtraError(ImportError):
    """A package of the optional `generate` extra is not installed; the one-line message says which and why."""


def require_generate_extra(needed_for: str, purpose: str, progress: bool = False) -> None:
    """Raise MissingExtraError naming the first missing package, unless stable-baselines3 (and tqdm, for a
    progress bar) can be imported: "<needed_for> needs <package> to <purpose>; install it with: ..."."""
    packages = {"stable_baselines3": "stable-baselines3"} | ({"tqdm": "tqdm"} if progress else {})
    for module, package in packages.items():
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError(f"{needed_for} needs {package} to {purpose}; install it with: {INSTALL_HINT}"
                                    ) from None
