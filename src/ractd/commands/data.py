"""`ractd data`: generate D4RL-style datasets by simulation, describe a dataset, list generated ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="""Offline datasets: generate (Maze2d, MuJoCo locomotion), inspect, list.

Examples:
  ractd data generate maze2d-umaze
  ractd data info /data/hopper_medium_replay-v2.hdf5""", no_args_is_help=True
)

LOCOMOTION_ROBOTS = ("hopper", "walker2d", "halfcheetah")


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=True, highlight=False)


@app.command()
def generate(
    name: str = typer.Argument(
        ..., help="maze2d-umaze|medium|large, hopper|walker2d|halfcheetah-random|medium|medium-replay|"
        "expert|medium-expert, or roundabout-experts"
    ),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Environment steps (default: D4RL's)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same dataset."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: <data root>/NAME)."),
    minari: bool = typer.Option(True, "--minari/--no-minari", help="Also write Minari's ractd/NAME-v0."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    train_policies: bool = typer.Option(
        False, "--train-policies", help="Locomotion: retrain the behaviour policies with the env's PPO recipe "
        "into ENV-policies next to the dataset folder (<data root>/ENV-policies by default; reused once "
        "complete) instead of rolling out the shipped ones; needs the generate extra."
    ),
    train_steps: int | None = typer.Option(
        None, "--train-steps", min=1, help="Locomotion: PPO steps when retraining (implies --train-policies; "
        "default: the recipe's, 1M hopper, 1.5M walker2d/halfcheetah)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing dataset of this name (runs trained on it will no "
        "longer match it)."
    ),
    episodes: int = typer.Option(
        1000, "--episodes", min=1, help="roundabout-experts: successful episodes kept per training combination."
    ),
    recipe: list[str] = typer.Option(
        [], "--recipe", help="roundabout-experts: override a field of the experts' PPO recipe, KEY=VALUE "
        "(JSON value; ppo.KEY, net.KEY, env_config.KEY for one key of those), repeatable."
    ),
    scale: str = typer.Option("cpu", "--scale", help="roundabout-experts: recipe size, cpu (5e4 PPO steps per "
                              "expert) or paper (2e5)."),
    workers: int = typer.Option(1, "--workers", min=1, help="roundabout-experts: processes that run episodes."),
) -> None:
    r"""Generate NAME by D4RL's recipe; write NAME.hdf5, a Minari dataset, card.json and returns.png.

    Locomotion levels roll out the PPO behaviour policies shipped with ractd (no RL library needed; the
    same seed gives the same dataset). --train-policies retrains them first with the same recipe (into
    <data root>/ENV-policies), which needs the generate extra: pip install 'ractd\[generate]'.

    Examples:
      ractd data generate maze2d-umaze
      ractd data generate walker2d-medium-expert
      ractd data generate hopper-medium-replay --steps 200000 --seed 1
      ractd data generate hopper-medium --train-policies --out /data/hopper-medium-retrained
      ractd data generate roundabout-experts --workers 2

    roundabout-experts trains one PPO expert per training combination (all cars, all bicycles) into
    <data root>/roundabout-policies (reused once trained; needs the generate and ooc extras), checks that
    each drives without crashing in at least 85 % of 100 episodes, and keeps --episodes successful episodes of
    each.
    """
    from ractd.envs.registry import get_task
    from ractd.paths import data_root

    if name == "roundabout-experts":
        _generate_roundabout(steps, seed, out, progress, train_steps, overwrite, episodes, recipe, scale, workers)
        return
    try:
        task = get_task(name)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0]), param_hint="NAME") from None
    if task.dataset is None:
        raise typer.BadParameter(
            f"{name!r} is a gymnasium env id, not a dataset ractd can generate", param_hint="NAME"
        )
    name = task.dataset
    out_dir = out if out is not None else data_root() / name
    if not overwrite:  # before any simulation: generating can take a long time
        from ractd.data.errors import DatasetError
        from ractd.data.generate.save import refuse_to_replace

        try:
            refuse_to_replace(out_dir, name, minari)
        except DatasetError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(code=2) from None
    if task.kind == "maze2d":
        from ractd.data.generate.maze2d import generate_maze2d

        summary = generate_maze2d(name, out_dir, seed=seed, steps=steps, progress=progress, minari=minari,
                                  overwrite=overwrite)
    elif name.split("-")[0] in LOCOMOTION_ROBOTS:
        from ractd.data.generate.extras import MissingExtraError
        from ractd.data.generate.locomotion import generate_locomotion

        try:
            summary = generate_locomotion(
                name, out_dir, seed, steps, progress=progress, minari=minari, train_policies=train_policies,
                train_steps=train_steps, overwrite=overwrite,
            )
        except MissingExtraError as e:  # training PPO needs the generate extra: one line, no traceback
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(code=1) from None
    else:  # pragma: no cover - every registered dataset is one of the two kinds
        raise typer.BadParameter(f"no generator for {name!r}", param_hint="NAME")
    _print_summary(summary)


def _generate_roundabout(steps: int | None, seed: int, out: Path | None, progress: bool, train_steps: int | None,
                         overwrite: bool, episodes: int, recipe: list[str], scale: str, workers: int) -> None:
    from ractd.data.errors import DatasetError
    from ractd.data.generate.extras import MissingExtraError
    from ractd.data.generate.roundabout_dataset import DATASET, ExpertsBelowThresholdError, generate_roundabout
    from ractd.data.generate.save import refuse_to_replace
    from ractd.envs.roundabout import MissingHighwayEnvError
    from ractd.paths import data_root

    if steps is not None:
        raise typer.BadParameter("roundabout-experts is sized in episodes: use --episodes", param_hint="--steps")
    out_dir = out if out is not None else data_root() / DATASET
    try:
        if not overwrite:
            refuse_to_replace(out_dir, DATASET, minari=False)
        summary = generate_roundabout(out_dir, seed=seed, scale=scale, train_steps=train_steps, episodes=episodes,
                                      overrides=recipe, workers=workers, progress=progress, overwrite=overwrite)
    except (DatasetError, MissingExtraError, MissingHighwayEnvError, ExpertsBelowThresholdError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=2 if isinstance(e, DatasetError | ValueError) else 1) from None
    _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    from ractd.data.card import format_card

    console = _console()
    keys = [k for k in summary if k != "card" and not isinstance(summary[k], dict | list)]
    width = max(len(k) for k in keys)
    for k in keys:
        v = summary[k]
        console.print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    for k, v in summary.items():
        if isinstance(v, dict) and k != "card":
            console.print(f"{k:<{width}}  " + ", ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}"
                                                        for a, b in v.items()))
    if "card" in summary:
        console.print(format_card(summary["card"]))


def _references(ds: Any, task: str | None) -> tuple[float | None, float | None]:
    """Reference returns from --task, else the dataset's metadata, else its name if that is a known task."""
    from ractd.envs.registry import get_task

    if task is not None:
        spec = get_task(task)
        return spec.ref_min_score, spec.ref_max_score
    meta = ds.metadata
    if meta.get("ref_min_score") is not None and meta.get("ref_max_score") is not None:
        return float(meta["ref_min_score"]), float(meta["ref_max_score"])
    for key in ("task", "name"):
        if isinstance(meta.get(key), str):
            try:
                spec = get_task(meta[key])
            except (KeyError, ValueError):
                continue
            if spec.has_reference_scores:
                return spec.ref_min_score, spec.ref_max_score
    return None, None


@app.command()
def info(
    source: str = typer.Argument(..., help="A D4RL .hdf5 path, a local Minari id or a generated name."),
    task: str | None = typer.Option(None, "--task", help="Task whose reference returns normalize scores."),
    plot: Path | None = typer.Option(None, "--plot", help="Histogram PNG (default: ./<name>-returns.png)."),
) -> None:
    """Print SOURCE's card (episodes, steps, return distribution) and write its return histogram.

    Examples:
      ractd data info maze2d-umaze
      ractd data info /data/hopper_medium_replay-v2.hdf5 --task hopper-medium-replay
    """
    from ractd.data.card import dataset_card, format_card, plot_return_histogram
    from ractd.data.errors import DatasetError
    from ractd.data.sources import load_dataset
    from ractd.io import check_writable

    try:
        if plot is not None:
            check_writable(plot, "--plot", "returns.png")  # before reading a large dataset
        ds = load_dataset(source)
        ref_min, ref_max = _references(ds, task)
        card = dataset_card(ds, ref_min, ref_max)
        name = str(card["name"]).replace("/", "_")
        png = plot if plot is not None else check_writable(Path(f"{Path(name).stem}-returns.png"), "--plot")
        ref = (ref_min, ref_max) if ref_min is not None and ref_max is not None else None
        plot_return_histogram({card["name"]: ds.episode_returns()}, png, title=str(card["name"]), ref=ref)
    except (DatasetError, KeyError, OSError) as e:
        typer.echo(f"error: {e.args[0] if isinstance(e, KeyError) else e}", err=True)
        raise typer.Exit(code=1) from None
    console = _console()
    console.print(format_card(card))
    console.print(f"histogram          {png}")


@app.command("list")
def list_datasets() -> None:
    """List generated datasets (<data root>/NAME/NAME.hdf5) and local Minari datasets.

    The data root is $RACTD_DATA_DIR (default ~/.ractd/datasets); Minari's is $MINARI_DATASETS_PATH.

    Examples:
      ractd data list
      RACTD_DATA_DIR=/data/ractd ractd data list
    """
    from ractd.data.minari_io import list_minari_datasets
    from ractd.io import read_json
    from ractd.paths import data_root, minari_root

    console = _console()
    root = data_root()
    found = sorted(p for p in root.glob("*/*.hdf5") if p.stem == p.parent.name) if root.is_dir() else []
    if not found:
        console.print(f"no generated datasets in {root} (create one with `ractd data generate NAME`)")
    else:
        console.print(f"generated datasets in {root}:")
        for path in found:
            card_path = path.parent / "card.json"
            detail = ""
            if card_path.is_file():
                try:
                    card = read_json(card_path)
                    detail = f"{card['steps']:>10,} steps  {card['episodes']:>8,} episodes"
                except (ValueError, KeyError):
                    detail = "(unreadable card.json)"
            console.print(f"  {path.stem:<28} {detail}  {path}")
    ids = list_minari_datasets()
    if ids:
        console.print(f"Minari datasets in {minari_root()}:")
        for dataset_id in ids:
            console.print(f"  {dataset_id}")
