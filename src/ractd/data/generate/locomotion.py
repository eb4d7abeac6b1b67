"""D4RL-recipe locomotion datasets (hopper | walker2d | halfcheetah × five levels) by simulation.

The D4RL definitions (Fu et al. 2020, §5 and App. C), on gymnasium's MuJoCo v5 envs:
  random         uniform random actions                                    (default 1 M steps)
  medium         rollouts of the policy snapshot at ~1/3 of the expert's return   (1 M)
  medium-replay  the learner's experience until that snapshot, replayed from its   (as many steps as the
                 learner snapshots: snapshot j rolled out for the steps it collected  learner collected)
  expert         rollouts of the converged (best evaluated) policy                (1 M)
  medium-expert  medium ∪ expert in equal parts, medium first                     (2 M)
The behaviour policies are the ones shipped with the package (`ppo.shipped_policy_dir`), so a dataset is
only rolled out: no RL library, the same seed gives the same arrays. `train_policies=True` retrains them
with the same PPO recipe into `<env>-policies/` next to the datasets (needs the `generate` extra).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ractd.data.generate.policies import UniformRandomPolicy
from ractd.data.generate.ppo import (
    MANIFEST,
    load_behaviour_policy,
    read_manifest,
    shipped_policy_dir,
    train_behaviour_policies,
)
from ractd.data.generate.rollout import TRANSITION_KEYS, rollout_transitions
from ractd.data.generate.save import package_versions, refuse_to_replace, save_generated_dataset

LEVELS: tuple[str, ...] = ("random", "medium", "medium-replay", "expert", "medium-expert")
# D4RL dataset sizes; medium-replay is as large as the learner's experience up to the medium snapshot.
DEFAULT_STEPS: dict[str, int | None] = {
    "random": 1_000_000,
    "medium": 1_000_000,
    "medium-replay": None,
    "expert": 1_000_000,
    "medium-expert": 2_000_000,
}
# Rollout seeds are SeedSequence([seed, code]) per behaviour source, so medium-expert's halves are
# exactly the medium and expert datasets generated with the same seed and half the size (as in D4RL).
_SOURCE_CODE = {"random": 0, "medium": 1, "expert": 2, "learner": 3}


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
    """The D4RL-layout arrays of one `<robot>-<level>` dataset, rolled out from the policies in `policy_dir`.

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
        random = source == "random"
        policy = UniformRandomPolicy.for_env(env_id) if random else load_behaviour_policy(policy_dir, source)
        return rollout_transitions(
            env_id, policy, n, [seed, _SOURCE_CODE[source]], n_envs, progress, f"{robot}-{source} rollouts"
        )

    if level == "medium-replay":
        return medium_replay_arrays(env_id, policy_dir, steps, seed, n_envs, progress)
    total = int(steps or DEFAULT_STEPS[level])
    if level == "medium-expert":
        medium = rollouts("medium", total - total // 2)
        expert = rollouts("expert", total // 2)
        return {k: np.concatenate([medium[k], expert[k]]) for k in TRANSITION_KEYS}
    return rollouts(level, total)


def medium_replay_arrays(
    env_id: str, policy_dir: Path, steps: int | None, seed: int, n_envs: int = 8, progress: bool = True
) -> dict[str, np.ndarray]:
    """The medium-replay stand-in: each learner snapshot j rolled out for the steps the learner collected
    between it and the next snapshot (the last one until the medium snapshot), in training order.

    Without `steps` it is as large as the learner's experience up to the medium snapshot; with `steps` it
    keeps the first `steps` transitions (the earliest snapshots), the cut episode closed with a timeout.
    """
    manifest = read_manifest(policy_dir)
    entries = manifest["policies"]
    if not manifest["medium_replay"]:
        raise ValueError(f"{Path(policy_dir) / MANIFEST}: no learner snapshots before the medium one")
    parts: list[dict[str, np.ndarray]] = []
    done = 0
    for j, name in enumerate(manifest["medium_replay"]):
        start, end = entries[name]["replays_steps"]
        n = end - start if steps is None else min(end - start, steps - done)
        if n <= 0:
            break
        policy = load_behaviour_policy(policy_dir, name)
        parts.append(rollout_transitions(env_id, policy, n, [seed, _SOURCE_CODE["learner"], j], n_envs, progress,
                                         f"{env_id} {name} rollouts"))
        done += n
    return {k: np.concatenate([p[k] for p in parts]) for k in TRANSITION_KEYS}


def policies_id(policy_dir: Path) -> str:
    """A short hash of a behaviour-policy cache's manifest: which training run produced a dataset."""
    import hashlib

    manifest = read_manifest(policy_dir)
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
    train_policies: bool = False,
    train_steps: int | None = None,
    n_envs: int = 8,
    minari: bool = True,
    overwrite: bool = True,
) -> dict[str, Any]:
    """Generate `<env>-<level>` and write `<out_dir>/<name>.hdf5`, Minari `ractd/<name>-v0`, card, plot.

    Args:
        name: `hopper|walker2d|halfcheetah` - `random|medium|medium-replay|expert|medium-expert`.
        out_dir: the dataset's folder (ractd's layout: `<data_root>/<name>/`).
        seed: seeds the rollouts and, when policies are trained, the PPO training.
        steps: dataset size; None = D4RL's (1 M, 2 M for medium-expert; medium-replay: the learner's).
        policy_dir: a behaviour-policy folder (written by `ppo.train_behaviour_policies`); default: the
            policies shipped with the package, or with `train_policies` `<out_dir>/../<env>-policies`.
        train_policies: train the behaviour policies with the env's PPO recipe into `policy_dir` unless
            it already holds a complete run (needs the `generate` extra; the random level trains nothing).
        train_steps: PPO steps when training (implies `train_policies`); None = the recipe's.
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
    train_policies = train_policies or train_steps is not None
    if policy_dir is None:
        policy_dir = out_dir.parent / f"{robot}-policies" if train_policies else shipped_policy_dir(env_id)
    policy_dir = Path(policy_dir)
    if not overwrite:
        refuse_to_replace(out_dir, name, minari)

    manifest: dict[str, Any] | None = None
    t_train = time.perf_counter()
    if level != "random":
        if train_policies:
            train_behaviour_policies(env_id, policy_dir, seed, train_steps, progress=progress, dataset=name)
        manifest = read_manifest(policy_dir)
    train_seconds = time.perf_counter() - t_train

    t_rollout = time.perf_counter()
    arrays = locomotion_arrays(robot, level, policy_dir, steps, seed, n_envs, progress, out_dir.parent)
    rollout_seconds = time.perf_counter() - t_rollout

    sources = ("medium", "expert") if level != "medium-replay" else ("medium",)
    behaviour = {src: manifest["policies"][src] for src in sources if manifest and src in level.split("-")}
    metadata: dict[str, Any] = {
        "name": name,
        "env_id": env_id,
        "task": name,
        "generator": "ractd.data.generate.locomotion (D4RL recipe, PPO behaviour policies)",
        "policies_shipped": bool(manifest) and policy_dir.resolve() == shipped_policy_dir(env_id).resolve(),
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
