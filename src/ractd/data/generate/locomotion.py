"""D4RL-recipe locomotion datasets (hopper | walker2d | halfcheetah × five levels) by simulation.

The D4RL definitions (Fu et al. 2020, §5 and App. C), on gymnasium's MuJoCo v5 envs:
  random         uniform random actions                                    (default 1 M steps)
  medium         rollouts of the policy snapshot at ~1/3 of the expert's return   (1 M)
  medium-replay  every trajectory the learner collected until that snapshot       (all of it)
  expert         rollouts of the converged (best evaluated) policy                (1 M)
  medium-expert  medium ∪ expert in equal parts, medium first                     (2 M)
The behaviour policies come from one cached PPO run per env (`ppo.train_behaviour_policies`),
kept in `<env>-policies/` next to the datasets so every level (and a larger or re-seeded dataset)
reuses them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ractd.data.generate.policies import UniformRandomPolicy
from ractd.data.generate.ppo import MANIFEST, STREAM, load_behaviour_policy, train_behaviour_policies
from ractd.data.generate.rollout import rollout_transitions
from ractd.data.generate.save import package_versions, refuse_to_replace, save_generated_dataset
from ractd.data.generate.stream import TRANSITION_KEYS, read_stream, replay_until

LEVELS: tuple[str, ...] = ("random", "medium", "medium-replay", "expert", "medium-expert")
# D4RL dataset sizes; medium-replay is everything the learner collected up to the medium snapshot.
DEFAULT_STEPS: dict[str, int | None] = {
    "random": 1_000_000,
    "medium": 1_000_000,
    "medium-replay": None,
    "expert": 1_000_000,
    "medium-expert": 2_000_000,
}
# Rollout seeds are SeedSequence([seed, code]) per behaviour source, so medium-expert's halves are
# exactly the medium and expert datasets generated with the same seed and half the size (as in D4RL).
_SOURCE_CODE = {"random": 0, "medium": 1, "expert": 2}


def parse_locomotion_name(name: str) -> tuple[str, str]:
    """`hopper-medium-replay` -> (`hopper`, `medium-replay`); a clear error for anything else."""
    from ractd.envs.locomotion import ROBOTS

    robot, _, level = name.strip().lower().partition("-")
    for suffix in ("-v0", "-v1", "-v2"):  # D4RL-style version suffixes
        level = level.removesuffix(suffix)
    if robot not in ROBOTS or level not in LEVELS:
        raise ValueError(
            f"not a locomotion dataset name: {name!r} (expected <env>-<level> with env in "
            f"{', '.join(ROBOTS)} and level in {', '.join(LEVELS)})"
        )
    return robot, level


def truncate_steps(arrays: dict[str, np.ndarray], steps: int) -> dict[str, np.ndarray]:
    """The first `steps` transitions; an episode cut short is closed with a timeout flag."""
    out = {k: v[:steps] for k, v in arrays.items()}
    if not out["terminals"][-1]:
        out["timeouts"] = out["timeouts"].copy()
        out["timeouts"][-1] = True
    return out


def locomotion_arrays(
    robot: str,
    level: str,
    policy_dir: Path,
    steps: int | None,
    seed: int,
    n_envs: int = 8,
    progress: bool = True,
    reuse_root: Path | None = None,
) -> dict[str, np.ndarray]:
    """The D4RL-layout arrays of one `<robot>-<level>` dataset (behaviour policies must be cached).

    With `reuse_root`, medium-expert takes its halves from `<reuse_root>/<robot>-medium|expert/*.hdf5`
    when those were generated with the same seed, size, n_envs and policies (they are then identical
    to fresh rollouts, so this only saves time).
    """
    from ractd.envs.locomotion import GYM_IDS

    env_id = GYM_IDS[robot]

    def rollouts(source: str, n: int) -> dict[str, np.ndarray]:
        if reuse_root is not None and level == "medium-expert":
            done = _matching_dataset(
                reuse_root / f"{robot}-{source}", n, seed, n_envs, policies_id(policy_dir)
            )
            if done is not None:
                return done
        policy = (
            UniformRandomPolicy.for_env(env_id)
            if source == "random"
            else load_behaviour_policy(policy_dir, source)
        )
        return rollout_transitions(
            env_id, policy, n, [seed, _SOURCE_CODE[source]], n_envs, progress, f"{robot}-{source} rollouts"
        )

    if level == "medium-replay":
        from ractd.io import read_json

        medium_step = read_json(policy_dir / MANIFEST)["medium"]["timesteps"]
        arrays = replay_until(read_stream(policy_dir / STREAM), medium_step)
        return arrays if steps is None or steps >= len(arrays["rewards"]) else truncate_steps(arrays, steps)
    total = int(steps or DEFAULT_STEPS[level])
    if level == "medium-expert":
        medium = rollouts("medium", total - total // 2)
        expert = rollouts("expert", total // 2)
        return {k: np.concatenate([medium[k], expert[k]]) for k in TRANSITION_KEYS}
    return rollouts(level, total)


def policies_id(policy_dir: Path) -> str:
    """A short hash of a behaviour-policy cache's manifest: which training run produced a dataset."""
    import hashlib

    from ractd.io import read_json

    manifest = read_json(Path(policy_dir) / MANIFEST)
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def _matching_dataset(
    folder: Path, steps: int, seed: int, n_envs: int, policies: str
) -> dict[str, np.ndarray] | None:
    """The arrays of `<folder>/<folder.name>.hdf5` if its metadata says it is exactly this rollout."""
    from ractd.data.d4rl import read_d4rl_hdf5, read_d4rl_metadata

    path = folder / f"{folder.name}.hdf5"
    if not path.is_file():
        return None
    try:
        meta = read_d4rl_metadata(path)
    except Exception:  # an unreadable file is simply not reused
        return None
    wanted = {"seed": seed, "steps": steps, "n_envs": n_envs, "policies_id": policies}
    if any(meta.get(k) != v for k, v in wanted.items()):
        return None
    arrays = read_d4rl_hdf5(path)
    return {k: arrays[k] for k in TRANSITION_KEYS}


def generate_locomotion(
    name: str,
    out_dir: Path,
    seed: int,
    steps: int | None,
    progress: bool = True,
    *,
    policy_dir: Path | None = None,
    train_steps: int | None = None,
    n_envs: int = 8,
    minari: bool = True,
    overwrite: bool = True,
) -> dict[str, Any]:
    """Generate `<env>-<level>` and write `<out_dir>/<name>.hdf5`, Minari `ractd/<name>-v0`, card, plot.

    Args:
        name: `hopper|walker2d|halfcheetah` - `random|medium|medium-replay|expert|medium-expert`.
        out_dir: the dataset's folder (ractd's layout: `<data_root>/<name>/`).
        seed: seeds the rollouts and, when no cached policies exist, the PPO training.
        steps: dataset size; None = D4RL's (1 M, 2 M for medium-expert, all of medium-replay).
        policy_dir: the behaviour-policy cache; default `<out_dir>/../<env>-policies`.
        train_steps: PPO steps when training; None = the per-env default in `PPO_SETTINGS`.
        n_envs: parallel environments per rollout (one policy forward per vector step).
        minari: also write the Minari dataset (to `ractd.paths.minari_root()`).
        overwrite: replace an existing dataset of this name; False refuses it before any policy is trained.

    Returns:
        A summary: name, paths, steps, episodes, return and normalized-return mean/std, the behaviour
        policies' evaluated returns, and timings. The same (plus versions) goes to `generation.json`.
    """
    from ractd.data.card import plot_return_histogram
    from ractd.envs.locomotion import GYM_IDS, REF_MAX_SCORE, REF_MIN_SCORE
    from ractd.io import write_json

    t_start = time.perf_counter()
    robot, level = parse_locomotion_name(name)
    name, env_id = f"{robot}-{level}", GYM_IDS[robot]
    ref = (REF_MIN_SCORE[robot], REF_MAX_SCORE[robot])
    out_dir = Path(out_dir)
    policy_dir = Path(policy_dir) if policy_dir is not None else out_dir.parent / f"{robot}-policies"
    if not overwrite:
        refuse_to_replace(out_dir, name, minari)

    manifest: dict[str, Any] | None = None
    t_train = time.perf_counter()
    if level != "random":
        manifest = train_behaviour_policies(env_id, policy_dir, seed, train_steps, progress=progress, dataset=name)
    train_seconds = time.perf_counter() - t_train

    t_rollout = time.perf_counter()
    arrays = locomotion_arrays(robot, level, policy_dir, steps, seed, n_envs, progress, out_dir.parent)
    rollout_seconds = time.perf_counter() - t_rollout

    behaviour = {src: manifest[src] for src in ("medium", "expert") if manifest and src in level.split("-")}
    metadata: dict[str, Any] = {
        "name": name,
        "env_id": env_id,
        "task": name,
        "generator": "ractd.data.generate.locomotion (D4RL recipe, PPO behaviour policies)",
        "seed": seed,
        "steps": int(len(arrays["rewards"])),
        "n_envs": n_envs,
        "policy_dir": str(policy_dir) if manifest else None,
        "policy_train_seed": manifest["seed"] if manifest else None,
        "policies_id": policies_id(policy_dir) if manifest else None,
        "behaviour": behaviour,
        "ref_min_score": ref[0],
        "ref_max_score": ref[1],
    }
    saved = save_generated_dataset(
        out_dir,
        name,
        arrays,
        metadata,
        env_id=env_id,
        ref=ref,
        algorithm_name="ractd D4RL-recipe generator (PPO behaviour policies)",
        minari=minari,
        overwrite=overwrite,
    )
    dataset, card = saved.dataset, saved.card
    returns = dataset.episode_returns()
    if level == "medium-expert":  # the medium half ends with an episode end (its stream's cut)
        n_medium = card["steps"] - card["steps"] // 2
        last_medium = int(np.searchsorted(dataset.episode_ends, n_medium))
        series = {"medium half": returns[: last_medium + 1], "expert half": returns[last_medium + 1 :]}
    else:
        series = {name: returns}
    plot_return_histogram(series, out_dir / "returns.png", title=name, ref=ref)

    summary: dict[str, Any] = {
        "name": name,
        "env_id": env_id,
        "hdf5": str(saved.hdf5),
        "minari_id": saved.minari_id,
        "steps": card["steps"],
        "episodes": card["episodes"],
        "return_mean": card["return"]["mean"],
        "return_std": card["return"]["std"],
        "normalized_mean": card["normalized_return"]["mean"],
        "normalized_std": card["normalized_return"]["std"],
        "behaviour_return": {src: info["eval_return_mean"] for src, info in behaviour.items()},
        "policy_train_seconds": round(train_seconds, 1),
        "rollout_seconds": round(rollout_seconds, 1),
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    write_json(
        out_dir / "generation.json",
        summary | {"seed": seed, "n_envs": n_envs, "policies": manifest, "versions": package_versions()},
    )
    return summary
