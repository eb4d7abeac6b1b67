"""The package's layers: no import cycle, no import from a lower layer into a higher one, and inference (planner,
export, benchmark) never imports the training package. Read from the source with `ast`, so a function-local
import counts as much as a module-level one."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# leaves: unit -> the only ractd units it may import (a unit is ractd's top-level module or subpackage)
ONLY = {"schema": set(), "io": set(), "progress": set(), "paths": set(), "devices": set(), "loop_config": {"schema"}}
# unit -> units it must never import
FORBIDDEN = {
    "nn": {"data", "envs", "diffusion", "train", "planning", "evaluate", "artifact", "prepare", "stages", "bench"},
    "diffusion": {"data", "envs", "train", "planning", "evaluate", "artifact", "prepare", "stages", "bench"},
    "config": {"train", "artifact", "prepare", "stages", "planning", "evaluate", "bench", "presets"},
    "data": {"nn", "diffusion", "train", "planning", "evaluate", "artifact", "prepare", "stages", "bench", "config"},
    "envs": {"nn", "diffusion", "train", "planning", "evaluate", "artifact", "prepare", "stages", "bench"},
    "evaluate": {"nn", "diffusion", "train", "planning", "artifact", "prepare", "stages", "bench"},
    "weights": {"train", "artifact", "stages"},
    "artifact": {"train", "prepare", "stages", "planning", "evaluate", "bench", "export"},
    "planning": {"train", "prepare", "stages", "bench", "export"},
    "export": {"train", "prepare", "stages", "bench"},
    "bench": {"train", "prepare", "stages"},
    "prepare": {"train", "stages", "planning", "artifact"},
    "train": {"stages", "prepare", "artifact", "planning", "evaluate", "bench", "export", "cli", "presets"},
}


def modules() -> dict[str, Path]:
    out = {}
    for p in (SRC / "ractd").rglob("*.py"):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imported(path: Path, mod: str) -> set[str]:
    """Every ractd module `path` imports, resolved to the longest existing module name."""
    known = modules()
    base = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                b = base
                for _ in range(node.level - 1):
                    b = b.rpartition(".")[0]
                target = f"{b}.{node.module}" if node.module else b
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            targets = subs + ([target] if len(subs) < len(node.names) else [])
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t.startswith("ractd") and t != mod:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    return {mod: imported(path, mod) for mod, path in modules().items()}


def unit(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "ractd"


def test_no_import_cycle():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for v in sorted(g):
        if v not in index:
            strong(v)
    assert cycles == []


def test_no_upward_import():
    bad = []
    for mod, deps in graph().items():
        for dep in deps:
            u, home = unit(dep), unit(mod)
            if u != home and (u in FORBIDDEN.get(home, ()) or home in ONLY and u not in ONLY[home]):
                bad.append(f"{mod} imports {dep}")
    assert bad == []


def test_the_run_config_does_not_import_the_training_package():
    assert not {d for d in imported(SRC / "ractd" / "config.py", "ractd.config") if unit(d) == "train"}


@pytest.mark.slow
def test_loading_a_planner_exporting_and_benchmarking_never_import_the_training_package(tiny_hopper_runs):
    code = (
        "import sys; import ractd.planning, ractd.export, ractd.bench; "
        f"p = ractd.planning.load_planner({str(tiny_hopper_runs / 'student')!r}); p.act(p.norm['observations'].min); "
        "bad = sorted(m for m in sys.modules if m == 'ractd.train' or m.startswith('ractd.train.') "
        "or m in ('ractd.stages', 'ractd.prepare')); print(bad); assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
