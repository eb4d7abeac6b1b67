"""stable-baselines3 is an optional extra: without it, PPO levels fail with one line, everything else works."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ractd
from ractd.data.generate.extras import MissingExtraError
from ractd.data.generate.ppo import train_behaviour_policies

# Run in a fresh interpreter in which `import stable_baselines3` fails, as it does when it is not installed.
WITHOUT_SB3 = "import sys\nsys.modules['stable_baselines3'] = None\n"


def run_without_sb3(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    env = os.environ | {"RACTD_DATA_DIR": str(tmp_path / "data"), "MINARI_DATASETS_PATH": str(tmp_path / "minari")}
    return subprocess.run([sys.executable, "-c", WITHOUT_SB3 + code], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


def cli(*args: str) -> str:
    return f"from ractd.cli import main\nsys.argv = ['ractd', *{list(args)!r}]\nmain()\n"


def test_shipped_policies_need_no_sb3_and_retraining_fails_with_one_line(tmp_path: Path) -> None:
    result = run_without_sb3(tmp_path, cli("data", "generate", "hopper-medium", "--steps", "300", "--no-progress",
                                           "--no-minari"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "data" / "hopper-medium" / "hopper-medium.hdf5").is_file()
    assert not (tmp_path / "data" / "hopper-policies").exists()  # rolled out from the shipped policies

    result = run_without_sb3(tmp_path, cli("data", "generate", "hopper-expert", "--steps", "300", "--no-progress",
                                           "--train-policies"))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "dataset hopper-expert needs stable-baselines3" in lines[0]
    assert "pip install 'ractd[generate]'" in lines[0]
    assert not (tmp_path / "data" / "hopper-expert").exists()
    assert not (tmp_path / "data" / "hopper-policies").exists()

    result = run_without_sb3(tmp_path, cli("data", "generate", "hopper-random", "--steps", "300", "--no-progress",
                                           "--train-policies"))
    assert result.returncode == 0, result.stdout + result.stderr  # random trains nothing
    assert (tmp_path / "data" / "hopper-random" / "hopper-random.hdf5").is_file()


def test_every_generation_module_imports_without_sb3(tmp_path: Path) -> None:
    modules = ["ractd.cli", "ractd.commands.data"] + [
        f"ractd.data.generate.{p.stem}" for p in sorted(Path(ractd.__file__).parent.glob("data/generate/*.py"))
    ]
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    result = run_without_sb3(tmp_path, code)
    assert result.returncode == 0, result.stderr


def test_only_the_ppo_trainers_import_sb3_and_only_inside_functions() -> None:
    src = Path(ractd.__file__).parent
    found = []
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text())
        top_level = set(map(id, tree.body))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "stable_baselines3" for n in names):
                found.append((path.relative_to(src).as_posix(), id(node) in top_level))
    # the PPO trainers: locomotion behaviour policies, and the roundabout experts
    assert found and {p for p, _ in found} == {"data/generate/ppo.py", "data/generate/roundabout.py"}, found
    assert not any(top for _, top in found), "stable_baselines3 must be imported lazily, inside functions"


def test_training_names_the_missing_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    with pytest.raises(MissingExtraError, match=r"^Hopper-v5 needs stable-baselines3 .*ractd\[generate\]"):
        train_behaviour_policies("Hopper-v5", tmp_path / "p", dataset=None, progress=False)
    monkeypatch.delitem(sys.modules, "stable_baselines3")
    monkeypatch.setitem(sys.modules, "tqdm", None)  # SB3's progress bar needs tqdm
    with pytest.raises(MissingExtraError, match=r"^dataset hopper-expert needs tqdm .*ractd\[generate\]"):
        train_behaviour_policies("Hopper-v5", tmp_path / "p", dataset="hopper-expert", progress=True)


def test_saved_policies_need_no_sb3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ractd.data.generate.ppo import FORMAT
    from ractd.io import write_json

    write_json(tmp_path / "policies.json", {"format": FORMAT, "env_id": "Hopper-v5", "total_steps": 2048})
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    assert train_behaviour_policies("Hopper-v5", tmp_path)["total_steps"] == 2048
