"""Minari datasets in the local Minari root: read into an `OfflineDataset`, write from one.

Never touches the network: datasets are read straight from ``<root>/<dataset_id>/data`` with
Minari's storage classes. Writing uses ``minari.create_dataset_from_buffers`` (not
``DataCollector``, which pulls in jax) into a temporary root that is renamed into place.

Minari episodes hold L actions and L + 1 observations (the final one after the last step). The
flat layout keeps the first L as ``observations`` and exposes ``obs[1:]`` as the extra
``next_observations``. Goal-conditioned Dict observations (point maze:
``observation``/``achieved_goal``/``desired_goal``) become ``observations`` = ``observation`` and
``extras["infos/goal"]`` = ``desired_goal``. Terminations/truncations become
terminals/timeouts; an episode that ends with neither flag is marked as a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ractd.data.dataset import OfflineDataset
from ractd.data.errors import DatasetError

GOAL_KEY = "infos/goal"
#: infos sub-dict holding extras that are not ``infos/*`` (so they come back under their own name)
EXTRAS_INFO_KEY = "ractd_extras"
#: key of ractd's own metadata inside Minari's metadata.json
METADATA_KEY = "ractd"


def _root(root: str | os.PathLike | None) -> Path:
    from ractd.paths import minari_root

    return Path(root).expanduser() if root is not None else minari_root()


def minari_data_path(dataset_id: str, root: str | os.PathLike | None = None) -> Path:
    """``<root>/<dataset_id>/data``, where Minari keeps a dataset's files."""
    return _root(root) / dataset_id / "data"


def list_minari_datasets(root: str | os.PathLike | None = None) -> list[str]:
    """Ids of every dataset under the local Minari root (folders holding ``data/metadata.json``)."""
    base = _root(root)
    if not base.is_dir():
        return []
    return sorted(
        str(p.parent.parent.relative_to(base))
        for p in base.glob("**/data/metadata.json")
        if not any(part.startswith(".") for part in p.relative_to(base).parts)
    )


def _flatten_infos(infos: Mapping[str, Any] | None, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in (infos or {}).items():
        if isinstance(v, Mapping):
            out.update(_flatten_infos(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = np.asarray(v)
    return out


def _extra_name(info_key: str) -> str:
    head = f"{EXTRAS_INFO_KEY}/"
    return info_key[len(head) :] if info_key.startswith(head) else f"infos/{info_key}"


def load_minari(
    dataset_id: str,
    root: str | os.PathLike | None = None,
    next_observations: bool = True,
    progress: bool = False,
) -> OfflineDataset:
    """Read a local Minari dataset by id (e.g. ``mujoco/hopper/medium-v0``), without the network.

    Args:
        dataset_id: the Minari id, a path relative to the root.
        root: Minari datasets root; default ``ractd.paths.minari_root()`` ($MINARI_DATASETS_PATH).
        next_observations: also return ``extras["next_observations"]`` (obs[t+1]).
        progress: show a progress bar with ETA over episodes.
    """
    from gymnasium import spaces
    from minari.dataset.minari_storage import MinariStorage

    from ractd.progress import track

    data_path = minari_data_path(dataset_id, root)
    source = f"minari:{dataset_id} ({data_path})"
    if not (data_path / "metadata.json").is_file():
        local = list_minari_datasets(root)
        raise DatasetError(
            f"{data_path}: no Minari dataset '{dataset_id}' in the local root {_root(root)} "
            f"(local datasets: {local or 'none'}); ractd never downloads"
        )
    try:
        storage = MinariStorage.read(data_path)
    except Exception as e:  # Minari raises ValueError/AssertionError/KeyError for bad folders
        raise DatasetError(f"{source}: unreadable Minari dataset ({type(e).__name__}: {e})") from None
    raw_meta = MinariStorage.read_raw_metadata(data_path)
    ours = raw_meta.get(METADATA_KEY, {}) or {}
    if ours.get("final_observation") == "repeated":
        next_observations = False  # the stored final observations are placeholders, not data
    obs_space, act_space = storage.observation_space, storage.action_space
    if not isinstance(act_space, spaces.Box):
        raise DatasetError(f"{source}: key 'actions': expected a Box action space, found {act_space}")
    if isinstance(obs_space, spaces.Dict):
        if "observation" not in obs_space.spaces:
            raise DatasetError(
                f"{source}: key 'observations': Dict observation space without an 'observation' entry "
                f"(found {sorted(obs_space.spaces)}); expected a goal-conditioned space"
            )
    elif not isinstance(obs_space, spaces.Box):
        raise DatasetError(f"{source}: key 'observations': expected a Box or Dict space, found {obs_space}")

    parts: dict[str, list[np.ndarray]] = {}
    skipped: set[str] = set()
    lengths: list[int] = []

    def put(key: str, value: np.ndarray) -> None:
        parts.setdefault(key, []).append(value)

    n_episodes = int(storage.total_episodes)
    if n_episodes == 0:
        raise DatasetError(f"{source}: dataset is empty (0 episodes)")
    episodes = track(storage.get_episodes(range(n_episodes)), f"reading minari:{dataset_id}", n_episodes, progress)
    for ep in episodes:
        L = len(ep["rewards"])
        if L == 0:
            continue
        lengths.append(L)
        obs = ep["observations"]
        from_obs: set[str] = set()
        if isinstance(obs, dict):
            for k, v in obs.items():
                v = np.asarray(v).reshape(len(v), -1).astype(np.float32, copy=False)
                if k == "observation":
                    continue
                name = GOAL_KEY if k == "desired_goal" else f"observation/{k}"
                from_obs.add(name)
                put(name, v[:L])
            obs = obs["observation"]
        obs = np.asarray(obs).reshape(len(obs), -1).astype(np.float32, copy=False)
        if obs.shape[0] != L + 1:
            raise DatasetError(f"{source}: key 'observations': episode {ep['id']} has {obs.shape[0]} "
                               f"observations for {L} steps; expected {L + 1}")
        put("observations", obs[:L])
        if next_observations:
            put("next_observations", obs[1:])
        put("actions", np.asarray(ep["actions"]).reshape(L, -1))
        put("rewards", np.asarray(ep["rewards"]).reshape(L))
        term = np.asarray(ep["terminations"]).reshape(L).astype(bool)
        trunc = np.asarray(ep["truncations"]).reshape(L).astype(bool)
        trunc[-1] |= not term[-1]  # an episode boundary is a truncation if nothing else
        put("terminals", term)
        put("timeouts", trunc)
        for key, v in _flatten_infos(ep["infos"]).items():
            name = _extra_name(key)
            if name in from_obs:  # desired_goal takes precedence over an info of the same name
                continue
            if v.ndim >= 1 and v.shape[0] in (L, L + 1) and v.dtype.kind in "biuf":
                put(name, v[:L])  # infos are aligned with observations (reset info first)
            else:
                skipped.add(name)
    arrays = {k: np.concatenate(v) for k, v in parts.items() if k not in skipped and len(v) == len(lengths)}
    skipped |= {k for k, v in parts.items() if len(v) != len(lengths)}  # not present in every episode
    ends = np.cumsum(lengths).astype(np.int64)

    meta: dict[str, Any] = {k: raw_meta[k] for k in ("ref_min_score", "ref_max_score", "algorithm_name",
                                                      "description", "minari_version") if k in raw_meta}
    if "env_spec" in raw_meta:
        with contextlib.suppress(Exception):
            meta["env_id"] = json.loads(raw_meta["env_spec"])["id"]
    meta.update(ours.get("metadata", {}))
    meta.update(name=meta.get("name", dataset_id), source=source, minari_id=dataset_id)
    if skipped:
        meta["skipped_infos"] = sorted(skipped)
    arrays["actions"] = arrays["actions"].astype(np.float32, copy=False)
    arrays["rewards"] = arrays["rewards"].astype(np.float32, copy=False)
    from ractd.data.dataset import validate_arrays

    validate_arrays(arrays, source)
    extras = {k: v for k, v in arrays.items()
              if k not in ("observations", "actions", "rewards", "terminals", "timeouts")}
    return OfflineDataset(arrays["observations"], arrays["actions"], arrays["rewards"], arrays["terminals"],
                          arrays["timeouts"], ends, extras, meta)


@contextlib.contextmanager
def _minari_root_env(root: Path) -> Iterator[None]:
    """Point Minari (which reads $MINARI_DATASETS_PATH at call time) at ``root`` for a while."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _resolve_env(env: Any) -> Any:
    """An env id, spec or env; ids of gymnasium-robotics envs get registered on demand."""
    if isinstance(env, str):
        import gymnasium as gym

        if env not in gym.registry:
            with contextlib.suppress(ImportError):
                import gymnasium_robotics

                gym.register_envs(gymnasium_robotics)
    return env


def _episode_observations(ds: OfflineDataset, s: int, e: int, obs_space: Any) -> Any:
    """L + 1 observations of the episode [s, e) in the layout of ``obs_space``."""
    from gymnasium import spaces

    nxt = ds.extras.get("next_observations")
    final = nxt[e - 1 : e] if nxt is not None else ds.observations[e - 1 : e]

    def closed(a: np.ndarray, last: np.ndarray, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        full = np.concatenate([a[s:e], last])
        return full.reshape((e - s + 1, *shape)).astype(dtype, copy=False)

    if isinstance(obs_space, spaces.Dict):
        out = {}
        for k, sub in obs_space.spaces.items():
            if k == "observation":
                out[k] = closed(ds.observations, final, sub.shape, sub.dtype)
                continue
            key = GOAL_KEY if k == "desired_goal" else f"observation/{k}"
            if key in ds.extras:
                a = ds.extras[key].reshape(ds.num_steps, -1)
                out[k] = closed(a, a[e - 1 : e], sub.shape, sub.dtype)
            elif k == "achieved_goal":  # goal-conditioned convention: achieved goal = leading state dims
                d = int(np.prod(sub.shape))
                out[k] = closed(ds.observations[:, :d], final[:, :d], sub.shape, sub.dtype)
            else:
                raise DatasetError(f"<OfflineDataset>: key '{key}': needed for the '{k}' entry of the "
                                   f"Dict observation space, not in extras {sorted(ds.extras)}")
        return out
    return closed(ds.observations, final, obs_space.shape, obs_space.dtype)


def _check_spaces(ds: OfflineDataset, obs_space: Any, act_space: Any, dataset_id: str) -> None:
    """The dataset's dimensions must fit the spaces it is written with."""
    from gymnasium import spaces

    name = ds.metadata.get("name", "<OfflineDataset>")
    obs_box = obs_space.spaces.get("observation") if isinstance(obs_space, spaces.Dict) else obs_space
    if not isinstance(obs_box, spaces.Box) or not isinstance(act_space, spaces.Box):
        raise DatasetError(f"minari:{dataset_id}: expected Box (or goal Dict) observation and Box action "
                           f"spaces, found {obs_space} and {act_space}")
    for key, dim, space in (("observations", ds.obs_dim, obs_box), ("actions", ds.act_dim, act_space)):
        if dim != int(np.prod(space.shape)):
            raise DatasetError(f"{name}: key '{key}': has dimension {dim}, but the space of minari:"
                               f"{dataset_id} expects shape {space.shape}")


def _nest(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in flat.items():
        node = out
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def write_minari(
    dataset_id: str,
    dataset: OfflineDataset,
    env_id_or_spec: Any = None,
    root: str | os.PathLike | None = None,
    *,
    observation_space: Any = None,
    action_space: Any = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    algorithm_name: str | None = None,
    author: str = "ractd",
    description: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write ``dataset`` as a Minari dataset ``<root>/<dataset_id>`` (atomic: temp root, then rename).

    Args:
        dataset_id: Minari id with a version, e.g. ``ractd/hopper/medium-v0``.
        dataset: the episodes; each gets L + 1 observations (the final one from
            ``next_observations`` if present, else the last observation repeated, recorded in
            metadata so that reading does not report it as data). Extras ``infos/*`` are written as
            Minari infos (L + 1 entries, reset info first); ``infos/goal`` fills ``desired_goal`` of
            a Dict observation space; other extras go under ``infos/ractd_extras``.
        env_id_or_spec: the gymnasium env (id, ``EnvSpec`` or env) that produced the data; may be
            None if both spaces are given.
        root: Minari root; default ``ractd.paths.minari_root()``.
        observation_space, action_space: override the env's spaces.
        ref_min_score, ref_max_score: D4RL-style reference returns (both or neither: Minari would
            otherwise roll out a random policy to estimate the minimum).
        overwrite: replace an existing dataset of the same id (only after the new one is complete).
        progress: show a progress bar with ETA (Minari stores one hdf5 group per episode, ~5 ms each).

    Returns:
        The dataset folder ``<root>/<dataset_id>``.
    """
    import minari
    from gymnasium import spaces
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    from ractd.progress import track

    if (ref_min_score is None) != (ref_max_score is None):
        raise ValueError("give both ref_min_score and ref_max_score, or neither")
    base = _root(root)
    target = base / dataset_id
    if target.exists() and not overwrite:
        raise DatasetError(f"{target}: Minari dataset '{dataset_id}' already exists (pass overwrite=True)")
    env = _resolve_env(env_id_or_spec)
    if observation_space is None or action_space is None:
        if env is None:
            raise ValueError("write_minari needs env_id_or_spec or both observation_space and action_space")
        import gymnasium as gym

        probe = gym.make(env) if not isinstance(env, gym.Env) else env
        observation_space = observation_space or probe.observation_space
        action_space = action_space or probe.action_space
        if probe is not env:
            probe.close()

    _check_spaces(dataset, observation_space, action_space, dataset_id)
    goal_in_obs = isinstance(observation_space, spaces.Dict) and "desired_goal" in observation_space.spaces
    infos = {k: v for k, v in dataset.extras.items()
             if k.startswith("infos/") and not (goal_in_obs and k == GOAL_KEY)}
    others = {k: v for k, v in dataset.extras.items()
              if not k.startswith("infos/") and k != "next_observations" and not k.startswith("observation/")}
    info_arrays = {k[len("infos/") :]: v for k, v in infos.items()}
    info_arrays.update({f"{EXTRAS_INFO_KEY}/{k}": v for k, v in others.items()})

    def episode_buffers() -> Iterator[Any]:  # built lazily: one episode in memory at a time
        bounds = zip(dataset.episode_starts.tolist(), dataset.episode_ends.tolist(), strict=True)
        for i, (s, e) in enumerate(bounds):
            ep_infos = {k: np.concatenate([v[s:e], v[e - 1 : e]]) for k, v in info_arrays.items()}
            yield EpisodeBuffer(
                id=i,
                observations=_episode_observations(dataset, s, e, observation_space),
                actions=dataset.actions[s:e].reshape((e - s, *action_space.shape)).astype(
                    action_space.dtype, copy=False),
                rewards=dataset.rewards[s:e],
                terminations=dataset.terminals[s:e],
                truncations=dataset.timeouts[s:e],
                infos=_nest(ep_infos) if ep_infos else None,
            )

    buffers = track(episode_buffers(), f"writing minari:{dataset_id}", dataset.num_episodes, progress)

    tmp_root = base / f".ractd-tmp-{uuid.uuid4().hex[:12]}"
    kept = {k: v for k, v in dataset.metadata.items() if k != "source"}
    ours = {"metadata": json.loads(json.dumps(kept, default=str)),
            "final_observation": "next_observations" if "next_observations" in dataset.extras else "repeated",
            "fingerprint": dataset.fingerprint()}
    try:
        with _minari_root_env(tmp_root), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Minari warns about every unset optional field
            minari.create_dataset_from_buffers(
                dataset_id, buffers, env=env, eval_env=env, algorithm_name=algorithm_name, author=author,
                description=description, action_space=action_space, observation_space=observation_space,
                ref_min_score=ref_min_score, ref_max_score=ref_max_score,
            )
        storage_path = tmp_root / dataset_id / "data"
        MinariStorage.read(storage_path).update_metadata({METADATA_KEY: ours})
        # namespace folders carry namespace_metadata.json; copy any the real root lacks
        for meta_file in tmp_root.glob("**/namespace_metadata.json"):
            dest = base / meta_file.relative_to(tmp_root)
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(meta_file, dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            old = base / f".ractd-old-{uuid.uuid4().hex[:12]}"
            os.replace(target, old)
            os.replace(tmp_root / dataset_id, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp_root / dataset_id, target)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return target
