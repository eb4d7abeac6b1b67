"""The `ractd` command line: data, train, eval, bench, export, quickstart, toy.

Multi-GPU training is plain torchrun:  torchrun --nproc_per_node 4 -m ractd train teacher --task hopper-medium
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from .commands.data import app as data_app
from .commands.plot import app as plot_app
from .commands.runs import runs as runs_command

HELP = {"help_option_names": ["-h", "--help"]}  # -h everywhere: sub-commands inherit the root's context settings
app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False, context_settings=HELP)
app.add_typer(data_app, name="data")
app.add_typer(plot_app, name="plot")
train_app = typer.Typer(no_args_is_help=True, help="""Train a stage of TASK into RUNS/TASK/STAGE: teacher first, then \
reward (and inverse-dynamics for Maze2d), then student. Each later stage uses the teacher run's dataset.

Examples:
  ractd train teacher --task hopper-medium-replay --dataset /data/hopper.hdf5
  ractd train reward --task hopper-medium-replay""")
app.add_typer(train_app, name="train")
console = Console(soft_wrap=True, highlight=False)
errors = Console(stderr=True, soft_wrap=True, highlight=False)  # one line per error, on stderr


def _version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"ractd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """ractd: one-step diffusion planning for offline RL (RACTD).

    Examples:
      ractd quickstart
      ractd train teacher --task maze2d-umaze
      ractd train -h
    """


def _threads(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


# What a user's input can raise (ArtifactError and DatasetError are ValueErrors): one line on stderr, exit 2.
# Anything else is a bug in ractd and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, KeyError, OSError)


def _fail(e: Exception) -> None:
    from rich.markup import escape

    errors.print(f"[red]error:[/] {escape(e.args[0] if isinstance(e, KeyError) and e.args else str(e))}")
    raise typer.Exit(2)


def _train(stage: str, task: str, size: str | None, overrides: list[str], config: Path | None, runs: Path,
           name: str | None, device: str | None, seed: int | None, dataset: str | None, resume: bool,
           threads: int) -> None:
    """`ractd train STAGE`: the Python API's `Pipeline.fit` (`ractd.api.plan_stage`), with one-line errors."""
    _threads(threads)
    import warnings

    from rich.markup import escape

    from .api import plan_stage, task_config

    with warnings.catch_warnings():  # a warning is one line on stderr, like an error
        warnings.showwarning = _warn_one_line
        try:
            cfg = task_config(task, size, dataset=dataset, seed=seed, device=device, overrides=overrides,
                              config_file=config)
            run = plan_stage(cfg, stage, runs, name=name, resume=resume, say=lambda line: console.print(escape(line)))
            if run.finished:  # it said so
                return
            run_dir = run.train(progress=True)
        except USER_ERRORS as e:
            _fail(e)
    console.print(f"[green]done[/]: {run_dir}")


def _warn_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    from rich.markup import escape

    errors.print(f"[yellow]warning:[/] {escape(str(message))}")


# The options `ractd train` and `ractd config` share: they build the same config (`ractd.api.config`).
def _size_option():
    return typer.Option(None, "--size", help="Preset size: cpu | paper (default: paper when CUDA is available, "
                        "else cpu).")


def _set_option():
    return typer.Option([], "--set", help="Override any config field, repeatable: --set "
                        "student.ctm.reward_weight=0 (values parse as JSON).")


def _config_option():
    return typer.Option(None, "--config", help="JSON config merged over the preset: a (partial) config, or a run's "
                        "config.json to train or show that run's config again.")


def _dataset_option():
    return typer.Option(None, "--dataset", help="Generated name, D4RL hdf5 path or Minari id (default: the task's "
                        "dataset; reward, student and inverse-dynamics use the teacher run's).")


def _seed_option():
    return typer.Option(None, "--seed", help="Seed of the run: data order, initialization, noise (default: the "
                        "preset's, 0).")


def _device_option():
    return typer.Option(None, "--device", help="cpu | cuda | cuda:N | mps (default: cpu).")


def _train_command(stage: str):
    def command(
        task: str = typer.Option(..., "--task", "-t", help="Task preset (e.g. hopper-medium-replay, maze2d-umaze) "
                                 "or a gymnasium env id with --dataset."),
        size: str | None = _size_option(),
        overrides: list[str] = _set_option(),
        config: Path | None = _config_option(),
        runs: Path = typer.Option(Path("runs"), "--runs", help="Run root: the stage goes to RUNS/TASK/NAME."),
        name: str | None = typer.Option(None, "--name", help="Run folder name (default: the stage)."),
        device: str | None = _device_option(),
        seed: int | None = _seed_option(),
        dataset: str | None = _dataset_option(),
        resume: bool = typer.Option(True, "--resume/--restart", help="Resume an unfinished run of the same config "
                                    "and dataset; --restart deletes the run folder's files and starts over."),
        threads: int = typer.Option(1, "--threads", help="torch CPU threads (0 = torch default)."),
    ) -> None:
        _train(stage, task, size, overrides, config, runs, name, device, seed, dataset, resume, threads)

    command.__doc__ = TRAIN_HELP[stage]
    return command


TRAIN_HELP = {
    "teacher": """Train the EDM diffusion teacher of TASK: p(plan | state), sampled by Heun (158 NFE).

    Examples:
      ractd train teacher --task maze2d-umaze
      ractd train teacher --task Hopper-v5 --dataset /data/hopper.hdf5
    """,
    "reward": """Train the return-to-go reward model of TASK, on the teacher run's dataset.

    Examples:
      ractd train reward --task hopper-medium-replay
      ractd train reward --task hopper-medium-replay --set reward.train.epochs=20
    """,
    "student": """Train the CTM student of TASK: distils the teacher run with the reward model; plans in one step.

    Examples:
      ractd train student --task hopper-medium-replay
      ractd train student --task hopper-medium-replay --name ctd \\
          --set student.ctm.reward_weight=0
    """,
    "inverse_dynamics": """Train the inverse dynamics a = f(s, s') of TASK, the optional Maze2d controller.

    Examples:
      ractd train inverse-dynamics --task maze2d-medium
      ractd eval runs/maze2d-medium/student --controller inverse_dynamics
    """,
}

for _stage in ("teacher", "reward", "student", "inverse_dynamics"):
    train_app.command(_stage.replace("_", "-"))(_train_command(_stage))


@app.command("eval")
def eval_command(
    run: Path = typer.Argument(..., help="A teacher or student run folder."),
    episodes: int = typer.Option(100, "--episodes", "-n", min=1, help="Number of episodes."),
    seed: int = typer.Option(0, "--seed", help="Episode i is reset with seed + i."),
    sampler: str = typer.Option("auto", "--sampler", help="auto | one_step | multistep:K | heun[:LEVELS] | ddim:K"),
    controller: str = typer.Option("tracking", "--controller", help="Maze2d: tracking | inverse_dynamics"),
    inverse_dynamics: Path | None = typer.Option(None, "--inverse-dynamics", help="Inverse-dynamics run folder "
                                                 "(default: RUN/../inverse_dynamics if present)."),
    legacy_running_max: bool = typer.Option(False, "--legacy-running-max", help="Also report the reference "
                                            "code's Σ_t max_{τ≤t} r_τ metric (MuJoCo; docs/algorithm.md §8 item 1)."),
    n_action_steps: int | None = typer.Option(None, "--n-action-steps", help="Closed loop: actions executed per "
                                              "plan (default: the run's eval.n_action_steps)."),
    weights: str = typer.Option("last", "--weights", help="last | ema | best (online model selection, best/)."),
    out: Path | None = typer.Option(None, "--out", help="Result JSON (default: RUN/eval-WEIGHTS-SAMPLERSTEPS-"
                                    "nEPISODES-seedSEED.json, with the controller after the sampler for Maze2d)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing result file."),
    max_parallel: int = typer.Option(100, "--max-parallel", help="Environments stepped together (batched planner "
                                     "calls; roundabout: in each worker)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N | mps"),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (0 = torch default)."),
    split: str | None = typer.Option(None, "--split", help="Out-of-combination benchmark (a run of an ooc-* "
                                     "task): id | ooc | both (default for such runs: both). One plan per test task, "
                                     "plan metrics per split and per region pair."),
    guidance: float | None = typer.Option(None, "--guidance", help="OOC: classifier-free guidance scale λ "
                                          "(default: the run's guidance.scale; 0 = conditional model alone)."),
    waypoints: str = typer.Option("true", "--waypoints", help="OOC: true (the task's own quarter-point waypoints) | "
                                  "random (waypoints of unrelated windows, a control)."),
    tasks: int | None = typer.Option(None, "--tasks", help="OOC: evaluate only the first N tasks of each split "
                                     "(default: all, the run's ooc.n_tasks)."),
    closed_loop: bool = typer.Option(True, "--closed-loop/--no-closed-loop", help="OOC: also follow each plan in "
                                     "the env with the tracking controller."),
    plot: Path | None = typer.Option(None, "--plot", help="OOC: PNG of 8 plans per split drawn on the maze "
                                     "(default: next to the result JSON)."),
    traffic: list[str] = typer.Option([], "--traffic", help="Roundabout: test traffic (repeatable; default: mixed "
                                      "and test-2)."),
    eval_seeds: int = typer.Option(3, "--eval-seeds", min=1, help="Roundabout: evaluation seeds SEED, SEED+1, ... "
                                   "(--episodes each)."),
    kinds: str = typer.Option("true", "--kinds", help="Roundabout: true (the road users' kinds) | random (a "
                              "control)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Roundabout: processes that drive episodes."),
) -> None:
    """Seeded, vectorized evaluation: true return Σ r_t, D4RL normalized score ×100, mean ± SE.

    Episode i is reset with seed + i and draws its planner noise from its own generator, so its result does not
    depend on --episodes or --max-parallel (up to float rounding of batched network calls).

    A plan-diffusion run of an out-of-combination task (ooc-maze2d-medium, ooc-maze2d-large) is scored on its test
    tasks instead: in-distribution (id) and held-out region pairs (ooc), one plan per task, plan success, waypoint
    hits and closed-loop success, with a plot of the plans.

    Examples:
      ractd eval runs/hopper-medium-replay/student -n 100
      ractd eval runs/maze2d-umaze/teacher --sampler heun -n 20
      ractd eval runs/ooc-maze2d-medium/cross_attention --split ooc --guidance 1.3
      ractd eval runs/ooc-maze2d-medium/cross_attention --waypoints random
      ractd eval runs/ooc-roundabout/cross_attention --traffic mixed --eval-seeds 3 --workers 2

    A roundabout plan-diffusion run (ooc-roundabout) drives --episodes episodes per test traffic and evaluation
    seed, replanning every step: crashes per 100 episodes, success and return, mean ± SE over the seeds.
    """
    _threads(threads)
    saved = _config_of(run)
    if (saved.get("conditioning") or {}).get("tokens") == "composition":  # a roundabout plan-diffusion run
        _eval_roundabout(run, traffic, episodes, eval_seeds, seed, guidance, kinds, device, weights, workers,
                         max_parallel, out, overwrite)
        return
    if split is not None or (saved.get("ooc") or {}).get("split", "none") != "none":  # an OOC Maze2d run
        _eval_ooc(run, split or "both", guidance, waypoints, seed, device, weights, closed_loop, tasks, out, plot,
                  overwrite)
        return
    from .envs import get_task, make_env
    from .evaluate import check_result_path, evaluate, result_file_name
    from .planning import PlannerPolicy, load_planner

    try:
        inv = inverse_dynamics or (run.parent / "inverse_dynamics")
        inv = inv if (inv / "model.safetensors").exists() else None
        planner = load_planner(run, sampler, device, seed, n_action_steps, inv, weights)
        state_planner = planner.x_key == "observations"  # Maze2d: the controller decides the actions
        path = out or run / result_file_name(weights, planner.sampler.name, planner.sampler.steps, episodes, seed,
                                             controller if state_planner else None)
        check_result_path(path, overwrite)  # before the evaluation, not after it
        task = get_task(planner.cfg.task)
        refs = (task.ref_min_score, task.ref_max_score) if task.has_reference_scores else None
        result = evaluate(PlannerPolicy(planner, controller), lambda: make_env(task), episodes, seed=seed,
                          ref_scores=refs, legacy_running_max=legacy_running_max, max_parallel=max_parallel,
                          description=planner.describe())
        result.to_json(path)
    except USER_ERRORS as e:
        _fail(e)
    console.print(result.summary())
    console.print(f"wrote {path}")


def _config_of(run: Path) -> dict:
    """A run folder's config as saved (read without torch); {} if there is none to read."""
    import json

    try:
        cfg = json.loads((run / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _plan_weights(weights: str) -> str:
    """The weights file of a plan-diffusion run for --weights: last → model, ema → ema (no online selection)."""
    files = {"last": "model", "ema": "ema"}
    if weights not in files:
        raise ValueError(f"--weights: a plan-diffusion run has last or ema weights, got {weights!r}")
    return files[weights]


def _eval_roundabout(run: Path, traffic: list[str], episodes: int, eval_seeds: int, seed: int,
                     guidance: float | None, kinds: str, device: str, weights: str, workers: int, batch: int,
                     out: Path | None, overwrite: bool) -> None:
    """`ractd eval RUN` of a roundabout run: the Python API's `ractd.api.evaluate_roundabout`, one-line errors."""
    from rich.markup import escape

    from .api import evaluate_roundabout

    try:
        result = evaluate_roundabout(run, traffic or None, episodes, range(seed, seed + eval_seeds), guidance, kinds,
                                     device, _plan_weights(weights), workers, batch, out, overwrite,
                                     say=lambda line: console.print(escape(line)))
    except USER_ERRORS as e:
        _fail(e)
    for name, r in result["traffic"].items():
        c, s, ret = r["crashes_per_100"], r["success"], r["return"]
        console.print(f"{name}: {c['mean']:.1f} ± {c['se']:.1f} crashes per 100 episodes, success "
                      f"{s['mean']:.3f} ± {s['se']:.3f}, return {ret['mean']:.2f} ± {ret['se']:.2f}")
    console.print(f"wrote {result['path']}")


def _eval_ooc(run: Path, split: str, guidance: float | None, waypoints: str, seed: int, device: str, weights: str,
              closed_loop: bool, tasks: int | None, out: Path | None, plot: Path | None, overwrite: bool) -> None:
    """`ractd eval RUN --split ...`: the Python API's `ractd.api.evaluate_ooc`, with one-line errors."""
    from rich.markup import escape

    from .api import evaluate_ooc

    try:
        weights_file = _plan_weights(weights)
        if split not in ("id", "ooc", "both"):
            raise ValueError(f"--split must be id, ooc or both, got {split!r}")
        splits = ("id", "ooc") if split == "both" else (split,)
        result = evaluate_ooc(run, splits, guidance, waypoints, seed, device, weights_file, closed_loop, tasks,
                              out, plot or True, overwrite, say=lambda line: console.print(escape(line)))
    except USER_ERRORS as e:
        _fail(e)
    console.print(f"wrote {result['path']}" + (f" and {result['plot']}" if result.get("plot") else ""))


@app.command()
def bench(
    run_root: Path = typer.Argument(..., help="A task's run root holding teacher/ and student/."),
    out: Path | None = typer.Option(None, "--out", help="JSON output (default: RUN_ROOT/bench.json)."),
    batch: list[int] = typer.Option([1, 100], "--batch", help="Batch sizes to time (repeatable)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N | mps"),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (0 = torch default)."),
) -> None:
    """Per-action latency: student NFE 1–4 vs teacher Heun (158 NFE) vs bare forward; table, JSON and bar chart.

    Examples:
      ractd bench runs/hopper-medium-replay
      ractd bench runs/hopper-medium-replay --batch 1 --device cuda
    """
    _threads(threads)
    from . import bench as bench_mod

    try:
        bench_mod.bench_command(run_root, out or run_root / "bench.json", tuple(batch), device, threads)
    except USER_ERRORS as e:
        _fail(e)


@app.command()
def export(
    run: Path = typer.Argument(..., help="A student run folder."),
    onnx: Path = typer.Option(..., "--onnx", help="Output .onnx path."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare onnxruntime with PyTorch."),
) -> None:
    """Export the one-step planner (normalization included) to ONNX.

    Examples:
      ractd export runs/hopper-medium-replay/student --onnx planner.onnx
      ractd export runs/maze2d-umaze/student --onnx maze.onnx --no-check
    """
    from . import export as export_mod

    try:
        with console.status(f"exporting {run} to {onnx}" + (", then checking it with onnxruntime" if check else "")):
            line = export_mod.export_command(run, onnx, check)
    except USER_ERRORS as e:
        _fail(e)
    console.print(line)


@app.command()
def quickstart(
    task: str = typer.Option("maze2d-umaze", "--task", "-t", help="Task: maze2d-umaze|medium|large or a "
                             "hopper|walker2d|halfcheetah dataset such as hopper-medium-replay."),
    out: Path = typer.Option(Path("results/quickstart"), "--out", help="Results folder (default: "
                             "results/quickstart, or results/quickstart-TASK for another task)."),
    size: str = typer.Option("cpu", "--size", help="Preset size: cpu | paper."),
    episodes: int = typer.Option(50, "--episodes", "-n", help="Evaluation episodes per method."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data, the training runs and the evaluation."),
    dataset_steps: int | None = typer.Option(None, "--dataset-steps", help="Steps of the generated dataset "
                                             "(default: a small quick dataset)."),
    tiny: bool = typer.Option(False, "--tiny", help="Seconds-scale smoke run (tests)."),
    overrides: list[str] = typer.Option([], "--set", help="Override any config field of every stage, "
                                        "repeatable: --set student.train.epochs=100."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (0 = torch default)."),
) -> None:
    """The embedded default: generate data, train teacher/reward/CTD/RACTD, evaluate, benchmark, one table.

    Resumes where it stopped: finished stages and evaluations are reused.

    Examples:
      ractd quickstart
      ractd quickstart --task hopper-medium-replay -n 20
    """
    _threads(threads)
    from .quickstart import format_table, run_quickstart

    out = out if task == "maze2d-umaze" or out != Path("results/quickstart") else Path(f"results/quickstart-{task}")
    try:
        result = run_quickstart(task, out, size, episodes, seed, dataset_steps, tiny, overrides, console=console)
    except USER_ERRORS as e:
        _fail(e)
    format_table(result, console)


@app.command()
def toy(seed: int = typer.Option(0, "--seed", help="Seed of the data, training and sampling."),
        threads: int = typer.Option(1, "--threads", help="torch CPU threads (0 = torch default).")) -> None:
    """Toy distillation on two modes with a known reward: the diffusion core, no environment (~2 min on a CPU).

    Examples:
      ractd toy
      ractd toy --seed 3
    """
    _threads(threads)
    from rich.table import Table

    from .toy import ToyConfig, run_toy

    rows, times = run_toy(ToyConfig(seed=seed))
    table = Table(title="toy distillation: two equal modes, reward prefers A")
    for col in ("sampler", "NFE", "mass on rewarded mode", "distance to data", "ms / sample"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    for r in rows:
        table.add_row(r.sampler, str(r.nfe), f"{100 * r.mode_a_mass:.1f} %", f"{r.distance:.3f}",
                      f"{r.ms_per_sample:.3f}")
    console.print(table)
    console.print("training seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))


@app.command()
def config(
    task: str = typer.Argument(..., help="Task preset or gymnasium env id, as for `ractd train --task`."),
    size: str | None = _size_option(),
    overrides: list[str] = _set_option(),
    config_file: Path | None = _config_option(),
    dataset: str | None = _dataset_option(),
    seed: int | None = _seed_option(),
    device: str | None = _device_option(),
) -> None:
    """Print the config `ractd train` would use for TASK with the same options, on this machine, as JSON.

    Examples:
      ractd config hopper-medium-replay --size paper --seed 1
      ractd config maze2d-umaze --config runs/maze2d-umaze/student/config.json
    """
    import json

    from .api import task_config

    try:
        cfg = task_config(task, size, dataset=dataset, seed=seed, device=device, overrides=overrides,
                          config_file=config_file)
        console.print_json(json.dumps(cfg.to_dict()))
    except USER_ERRORS as e:
        _fail(e)


app.command("runs")(runs_command)


def main() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    app()


if __name__ == "__main__":
    main()
