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

app = typer.Typer(help="ractd: one-step diffusion planning for offline RL (RACTD).", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
app.add_typer(data_app, name="data")
app.add_typer(plot_app, name="plot")
train_app = typer.Typer(help="Train a stage: teacher, reward, student, inverse-dynamics.", no_args_is_help=True)
app.add_typer(train_app, name="train")
console = Console(soft_wrap=True, highlight=False)
errors = Console(stderr=True, soft_wrap=True, highlight=False)  # one line per error, on stderr


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
    _threads(threads)
    import warnings

    from .presets import resolve_config
    from .stages import prepare_stage, teacher_settings

    size = size or ("cpu" if not _has_gpu() else "paper")
    extra = list(overrides)
    if device:
        extra.append(f"device={device}")
    if seed is not None:
        extra.append(f"seed={seed}")
    if dataset:
        extra.append(f'data.dataset="{dataset}"')
    with warnings.catch_warnings():  # a warning is one line on stderr, like an error
        warnings.showwarning = _warn_one_line
        try:
            cfg = resolve_config(task, size, extra, str(config) if config else None)
            if stage == "student":  # the teacher run's network and EDM constants, unless set here (then checked)
                inherited = teacher_settings(runs / task, cfg.student.teacher_run)
                if inherited:
                    cfg = resolve_config(task, size, extra, str(config) if config else None, inherited=inherited)
            run = prepare_stage(cfg, stage, runs / task, name=name, resume=resume)  # checks, writes nothing
            if run.finished:
                from rich.markup import escape

                console.print(escape(run.folder.describe()))
                return
            run_dir = run.train(progress=True)
        except USER_ERRORS as e:
            _fail(e)
    console.print(f"[green]done[/]: {run_dir}")


def _warn_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    from rich.markup import escape

    errors.print(f"[yellow]warning:[/] {escape(str(message))}")


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _train_command(stage: str):
    def command(
        task: str = typer.Option(..., "--task", "-t", help="Task preset (e.g. hopper-medium-replay, maze2d-umaze) "
                                 "or a gymnasium env id with --dataset."),
        size: str | None = typer.Option(None, "--size", help="Preset size: cpu | paper (default: paper on a GPU)."),
        overrides: list[str] = typer.Option([], "--set", help="Override any field: --set student.ctm.reward_weight=0"),
        config: Path | None = typer.Option(None, "--config", help="JSON file merged over the preset."),
        runs: Path = typer.Option(Path("runs"), "--runs", help="Run root: artifacts go to RUNS/TASK/NAME."),
        name: str | None = typer.Option(None, "--name", help="Run folder name (default: the stage)."),
        device: str | None = typer.Option(None, "--device", help="cpu | cuda | cuda:N | mps"),
        seed: int | None = typer.Option(None, "--seed"),
        dataset: str | None = typer.Option(None, "--dataset", help="Generated name, D4RL hdf5 path or Minari id."),
        resume: bool = typer.Option(True, "--resume/--restart", help="Resume an unfinished run of the same config "
                                    "and dataset; --restart deletes the run folder's files and starts over."),
        threads: int = typer.Option(1, "--threads", help="torch CPU threads (0 = torch default)."),
    ) -> None:
        _train(stage, task, size, overrides, config, runs, name, device, seed, dataset, resume, threads)

    command.__doc__ = f"Train the {stage.replace('_', ' ')} of TASK."
    return command


for _stage in ("teacher", "reward", "student", "inverse_dynamics"):
    train_app.command(_stage.replace("_", "-"))(_train_command(_stage))


@app.command("eval")
def eval_command(
    run: Path = typer.Argument(..., help="A teacher or student run folder."),
    episodes: int = typer.Option(100, "--episodes", "-n", min=1),
    seed: int = typer.Option(0, "--seed", help="Episode i is reset with seed + i."),
    sampler: str = typer.Option("auto", "--sampler", help="auto | one_step | multistep:K | heun[:LEVELS] | ddim:K"),
    controller: str = typer.Option("tracking", "--controller", help="Maze2d: tracking | inverse_dynamics"),
    inverse_dynamics: Path | None = typer.Option(None, "--inverse-dynamics", help="Inverse-dynamics run folder "
                                                 "(default: RUN/../inverse_dynamics if present)."),
    legacy_running_max: bool = typer.Option(False, "--legacy-running-max", help="Also report the reference "
                                            "code's Σ_t max_{τ≤t} r_τ metric (MuJoCo; docs/algorithm.md §8 item 1)."),
    n_action_steps: int | None = typer.Option(None, "--n-action-steps", help="Closed loop: actions per plan."),
    weights: str = typer.Option("last", "--weights", help="last | ema | best (online model selection, best/)."),
    out: Path | None = typer.Option(None, "--out", help="Result JSON (default: RUN/eval-WEIGHTS-SAMPLERSTEPS-"
                                    "nEPISODES-seedSEED.json, with the controller after the sampler for Maze2d)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing result file."),
    max_parallel: int = typer.Option(100, "--max-parallel"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N | mps"),
    threads: int = typer.Option(1, "--threads"),
) -> None:
    """Seeded, vectorized evaluation: true return Σ r_t, D4RL normalized score ×100, mean ± SE.

    Episode i is reset with seed + i and draws its planner noise from its own generator, so its result does not
    depend on --episodes or --max-parallel (up to float rounding of batched network calls)."""
    _threads(threads)
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


@app.command()
def bench(
    run_root: Path = typer.Argument(..., help="A task's run root holding teacher/ and student/."),
    out: Path | None = typer.Option(None, "--out", help="JSON output (default: RUN_ROOT/bench.json)."),
    batch: list[int] = typer.Option([1, 100], "--batch", help="Batch sizes to time."),
    device: str = typer.Option("cpu", "--device"),
    threads: int = typer.Option(1, "--threads"),
) -> None:
    """Per-action latency: student NFE 1–4 vs teacher Heun (158 NFE) vs bare forward; table + JSON."""
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
    """Export the one-step planner (normalization included) to ONNX."""
    from . import export as export_mod

    try:
        console.print(export_mod.export_command(run, onnx, check))
    except USER_ERRORS as e:
        _fail(e)


@app.command()
def quickstart(
    task: str = typer.Option("maze2d-umaze", "--task", "-t"),
    out: Path = typer.Option(Path("results/quickstart"), "--out"),
    size: str = typer.Option("cpu", "--size"),
    episodes: int = typer.Option(50, "--episodes", "-n"),
    seed: int = typer.Option(0, "--seed"),
    dataset_steps: int | None = typer.Option(None, "--dataset-steps"),
    tiny: bool = typer.Option(False, "--tiny", help="Seconds-scale smoke run (tests)."),
    overrides: list[str] = typer.Option([], "--set"),
    threads: int = typer.Option(1, "--threads"),
) -> None:
    """The embedded default: generate data, train teacher/reward/CTD/RACTD, evaluate, benchmark, one table."""
    _threads(threads)
    from .quickstart import format_table, run_quickstart

    out = out if task == "maze2d-umaze" or out != Path("results/quickstart") else Path(f"results/quickstart-{task}")
    try:
        result = run_quickstart(task, out, size, episodes, seed, dataset_steps, tiny, overrides, console=console)
    except USER_ERRORS as e:
        _fail(e)
    format_table(result, console)


@app.command()
def toy(seed: int = typer.Option(0, "--seed"), threads: int = typer.Option(1, "--threads")) -> None:
    """Toy distillation on two modes with a known reward (the diffusion core, no environment)."""
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
    task: str = typer.Argument(...),
    size: str = typer.Option("cpu", "--size"),
    overrides: list[str] = typer.Option([], "--set"),
) -> None:
    """Print the resolved config of TASK as JSON (preset + overrides)."""
    import json

    from .presets import resolve_config

    try:
        console.print_json(json.dumps(resolve_config(task, size, overrides).to_dict()))
    except USER_ERRORS as e:
        _fail(e)


app.command("runs")(runs_command)


def main() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    app()


if __name__ == "__main__":
    main()
