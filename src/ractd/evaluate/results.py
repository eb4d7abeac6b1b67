"""Evaluation results (per-episode returns, seeds, scores, timing) as JSON, and top-k checkpoint
bookkeeping for online model selection (docs/algorithm.md §6.3)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ractd.evaluate.metrics import mean_and_standard_error
from ractd.io import read_json, write_json

RESULT_FORMAT = "ractd.eval_result"
RESULT_VERSION = 1
TOPK_FORMAT = "ractd.topk_checkpoints"


def _finite_or_none(x: float) -> float | None:
    """JSON has no NaN: a missing statistic (e.g. the SE of one episode) is written as null."""
    return x if math.isfinite(x) else None


def result_file_name(weights: str, sampler: str, steps: int, episodes: int, seed: int,
                     controller: str | None = None) -> str:
    """The default name of a result file: what produced it (weights, sampler and its steps, and the controller of a
    Maze2d state planner) and on which episodes (how many, from which seed), e.g. eval-last-one_step1-n100-seed0.json.
    """
    parts = ["eval", weights.replace("/", "_"), f"{sampler}{steps}", *([controller] if controller else []),
             f"n{episodes}", f"seed{seed}"]
    return "-".join(parts) + ".json"


def check_result_path(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse a result path before the evaluation runs: one that holds a file already (unless `overwrite`), a
    folder, or one that cannot be written (a file is created there and removed to find out)."""
    from ..io import check_writable

    path = Path(path)
    if path.exists() and not path.is_dir() and not overwrite:
        raise FileExistsError(f"{path}: a result file is already there; pass --overwrite to replace it, or --out to "
                              "write elsewhere")
    check_writable(path, "--out", "eval.json")


@dataclass
class EvalResult:
    """Per-episode outcome of an evaluation run and how long it took.

    Episode i was reset with seed ``seeds[i]``; ``returns[i]`` is its true return Σ r_t, ``lengths[i]``
    its number of env steps and ``terminated[i]`` whether it ended by the env's termination (a fall)
    rather than by the step limit. ``legacy_returns`` (optional) is the reference code's running-max
    metric on the same episodes (docs/algorithm.md §8 item 1); it is never used as the score.
    """

    returns: np.ndarray
    lengths: np.ndarray
    seeds: np.ndarray
    terminated: np.ndarray
    max_episode_steps: int
    wall_seconds: float
    policy_seconds: float
    policy_description: str
    env_id: str
    mode: str
    max_parallel: int
    ref_scores: tuple[float, float] | None = None
    normalized_scores: np.ndarray | None = None
    legacy_returns: np.ndarray | None = None
    legacy_normalized_scores: np.ndarray | None = None
    construct_seconds: float = 0.0  # building the envs, before (and outside) wall_seconds

    def __post_init__(self) -> None:
        self.returns = np.asarray(self.returns, dtype=np.float64)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        self.seeds = np.asarray(self.seeds, dtype=np.int64)
        self.terminated = np.asarray(self.terminated, dtype=bool)
        n = self.returns.shape
        for name in ("lengths", "seeds", "terminated", "normalized_scores", "legacy_returns",
                     "legacy_normalized_scores"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != n:
                raise ValueError(
                    f"EvalResult.{name}: expected shape {n} (one per episode), got {np.shape(value)}"
                )
        for name in ("normalized_scores", "legacy_returns", "legacy_normalized_scores"):
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        if self.ref_scores is not None:
            self.ref_scores = (float(self.ref_scores[0]), float(self.ref_scores[1]))

    # ---- statistics -------------------------------------------------------------------------
    @property
    def n_episodes(self) -> int:
        return int(self.returns.size)

    @property
    def env_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def steps_per_second(self) -> float:
        return self.env_steps / self.wall_seconds if self.wall_seconds > 0 else math.inf

    @property
    def return_mean_se(self) -> tuple[float, float]:
        return mean_and_standard_error(self.returns)

    @property
    def score_mean_se(self) -> tuple[float, float] | None:
        """Normalized score ×100, mean ± standard error (None without reference scores)."""
        return None if self.normalized_scores is None else mean_and_standard_error(self.normalized_scores)

    @property
    def legacy_mean_se(self) -> tuple[float, float] | None:
        return None if self.legacy_returns is None else mean_and_standard_error(self.legacy_returns)

    @property
    def legacy_score_mean_se(self) -> tuple[float, float] | None:
        if self.legacy_normalized_scores is None:
            return None
        return mean_and_standard_error(self.legacy_normalized_scores)

    def summary(self) -> str:
        """A few human-readable lines: returns and scores as mean ± SE, lengths, throughput."""
        seeds = f"seed {self.seeds[0]}" if self.n_episodes == 1 else f"seeds {self.seeds[0]}–{self.seeds[-1]}"
        m, se = self.return_mean_se
        lines = [f"{self.n_episodes} episodes of {self.env_id} ({seeds}), policy: {self.policy_description}",
                 f"  return            {m:.2f} ± {se:.2f} (mean ± SE)"]
        if self.score_mean_se is not None:
            lines.append("  normalized score  {:.2f} ± {:.2f}".format(*self.score_mean_se))
        if self.legacy_mean_se is not None:
            legacy = "  legacy running-max metric (reference code, inflated): {:.2f} ± {:.2f}".format(
                *self.legacy_mean_se)
            if self.legacy_score_mean_se is not None:
                legacy += ", normalized {:.2f} ± {:.2f}".format(*self.legacy_score_mean_se)
            lines.append(legacy)
        lines.append(
            f"  length {self.lengths.mean():.1f} mean (limit {self.max_episode_steps}), "
            f"{int(self.terminated.sum())} terminated early"
        )
        policy_share = 100 * self.policy_seconds / max(self.wall_seconds, 1e-12)
        lines.append(
            f"  {self.env_steps} env steps in {self.wall_seconds:.2f} s "
            f"({self.steps_per_second:.0f} steps/s, {self.mode}, policy {policy_share:.0f}% of the time; "
            f"envs built in {self.construct_seconds:.2f} s before)"
        )
        return "\n".join(lines)

    # ---- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: per-episode lists plus summary statistics (for readers; recomputed on load)."""

        def stats(pair: tuple[float, float] | None) -> dict[str, float | None] | None:
            if pair is None:
                return None
            return {"mean": _finite_or_none(pair[0]), "se": _finite_or_none(pair[1])}

        def floats(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(v) for v in a]

        return {
            "format": RESULT_FORMAT,
            "version": RESULT_VERSION,
            "env_id": self.env_id,
            "policy_description": self.policy_description,
            "mode": self.mode,
            "max_parallel": self.max_parallel,
            "max_episode_steps": self.max_episode_steps,
            "n_episodes": self.n_episodes,
            "ref_scores": None if self.ref_scores is None else list(self.ref_scores),
            "seeds": [int(v) for v in self.seeds],
            "returns": floats(self.returns),
            "lengths": [int(v) for v in self.lengths],
            "terminated": [bool(v) for v in self.terminated],
            "normalized_scores": floats(self.normalized_scores),
            "legacy_running_max_returns": floats(self.legacy_returns),
            "legacy_running_max_normalized_scores": floats(self.legacy_normalized_scores),
            "return": stats(self.return_mean_se),
            "normalized_score": stats(self.score_mean_se),
            "legacy_running_max_return": stats(self.legacy_mean_se),
            "legacy_running_max_normalized_score": stats(self.legacy_score_mean_se),
            "wall_seconds": self.wall_seconds,
            "policy_seconds": self.policy_seconds,
            "construct_seconds": self.construct_seconds,
            "env_steps": self.env_steps,
            "steps_per_second": self.steps_per_second,
        }

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the result atomically as JSON."""
        write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> EvalResult:
        """Read a result written by :meth:`to_json`; a missing or malformed key raises a ValueError
        naming the file and the key."""
        d = read_json(path)
        if not isinstance(d, dict) or d.get("format") != RESULT_FORMAT:
            raise ValueError(f"{path}: not an evaluation result (expected \"format\": \"{RESULT_FORMAT}\")")
        if d.get("version") != RESULT_VERSION:
            raise ValueError(f"{path}: key 'version': expected {RESULT_VERSION}, got {d.get('version')!r}")

        def get(key: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
            if key not in d:
                raise ValueError(f"{path}: missing key '{key}'")
            value = d[key]
            if value is None and optional:
                return None
            if not isinstance(value, kind):
                expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
                raise ValueError(f"{path}: key '{key}': expected {expected}, got {type(value).__name__}")
            return value

        number = (int, float)
        ref = get("ref_scores", list, optional=True)
        if ref is not None and (len(ref) != 2 or not all(isinstance(v, number) for v in ref)):
            raise ValueError(f"{path}: key 'ref_scores': expected [min, max] numbers or null, got {ref!r}")
        try:
            return cls(
                returns=np.asarray(get("returns", list), dtype=np.float64),
                lengths=np.asarray(get("lengths", list), dtype=np.int64),
                seeds=np.asarray(get("seeds", list), dtype=np.int64),
                terminated=np.asarray(get("terminated", list), dtype=bool),
                max_episode_steps=get("max_episode_steps", int),
                wall_seconds=float(get("wall_seconds", number)),
                policy_seconds=float(get("policy_seconds", number)),
                policy_description=get("policy_description", str),
                env_id=get("env_id", str),
                mode=get("mode", str),
                max_parallel=get("max_parallel", int),
                ref_scores=None if ref is None else (ref[0], ref[1]),
                normalized_scores=get("normalized_scores", list, optional=True),
                legacy_returns=get("legacy_running_max_returns", list, optional=True),
                legacy_normalized_scores=get("legacy_running_max_normalized_scores", list, optional=True),
                # absent from results written before it was recorded
                construct_seconds=float(get("construct_seconds", number)) if "construct_seconds" in d else 0.0,
            )
        except (TypeError, ValueError) as e:
            if str(e).startswith(str(path)):
                raise
            raise ValueError(f"{path}: malformed per-episode lists ({e})") from None


@dataclass(frozen=True)
class CheckpointEntry:
    """One kept checkpoint: its selection score, the training step it was saved at and its path."""

    score: float
    step: int
    path: str


@dataclass
class TopKCheckpoints:
    """Keep the k best checkpoints by score (docs/algorithm.md §6.3, the reference's TopKCheckpointManager).

    ``update`` returns the paths the caller should delete (an evicted checkpoint, or the new one if it
    does not make the top k). Ties keep the earlier checkpoint, as the reference does; a NaN score
    is never kept.
    """

    k: int
    mode: Literal["max", "min"] = "max"
    entries: list[CheckpointEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"TopKCheckpoints: k must be a positive integer, got {self.k!r}")
        if self.mode not in ("max", "min"):
            raise ValueError(f"TopKCheckpoints: mode must be 'max' or 'min', got {self.mode!r}")
        if len(self.entries) > self.k:
            raise ValueError(f"TopKCheckpoints: {len(self.entries)} entries given for k={self.k}")
        self.entries = sorted(self.entries, key=self._rank)

    def _rank(self, e: CheckpointEntry) -> tuple[float, int]:
        # best first; among equal scores the earlier step first
        return (-e.score if self.mode == "max" else e.score, e.step)

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def would_keep(self, score: float) -> bool:
        """Whether a checkpoint with this score would enter the top k (to skip saving one that would not)."""
        if math.isnan(score):
            return False
        return len(self.entries) < self.k or self._better(score, self.entries[-1].score)

    def update(self, score: float, step: int, path: str | os.PathLike) -> list[str]:
        """Offer a checkpoint; return the paths that are no longer among the top k (to delete)."""
        path = str(path)
        if any(e.path == path for e in self.entries):
            raise ValueError(f"TopKCheckpoints.update: {path} is already tracked; save each checkpoint anew")
        if not self.would_keep(float(score)):
            return [path]
        self.entries = sorted([*self.entries, CheckpointEntry(float(score), int(step), path)], key=self._rank)
        evicted = self.entries[self.k:]
        self.entries = self.entries[: self.k]
        return [e.path for e in evicted]

    @property
    def best(self) -> CheckpointEntry | None:
        return self.entries[0] if self.entries else None

    def is_best(self, path: str | os.PathLike) -> bool:
        return self.best is not None and self.best.path == str(path)

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": TOPK_FORMAT,
            "k": self.k,
            "mode": self.mode,
            "entries": [{"score": e.score, "step": e.step, "path": e.path} for e in self.entries],
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], source: str = "state") -> TopKCheckpoints:
        if not isinstance(state, dict) or state.get("format") != TOPK_FORMAT:
            raise ValueError(f"{source}: not a top-k checkpoint state (expected format {TOPK_FORMAT!r})")
        try:
            entries = [CheckpointEntry(float(e["score"]), int(e["step"]), str(e["path"]))
                       for e in state["entries"]]
            return cls(k=state["k"], mode=state["mode"], entries=entries)
        except (KeyError, TypeError) as e:
            raise ValueError(f"{source}: malformed top-k state (key {e} missing or mistyped)") from None

    def to_json(self, path: str | os.PathLike) -> None:
        write_json(path, self.state_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> TopKCheckpoints:
        return cls.from_state_dict(read_json(path), source=str(Path(path)))
