"""LoopConfig: validation on construction, the strict dict parser (errors name `where.field`), torch-free import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ractd.loop_config import RESUME_FIELDS, LoopConfig


def test_config_rejects_negative_batch_size_naming_the_field():
    with pytest.raises(ValueError, match=r"LoopConfig\.batch_size.*positive integer.*-1"):
        LoopConfig(epochs=1, batch_size=-1)


def test_config_rejects_unknown_key_naming_it_with_a_suggestion():
    with pytest.raises(ValueError, match=r"^train\.bacth_size: unknown key \(did you mean 'batch_size'\?\)"):
        LoopConfig.from_dict({"epochs": 1, "bacth_size": 4}, where="train")


@pytest.mark.parametrize("field,value,msg", [
    ("batch_size", 8.5, "positive integer"),
    ("epochs", True, "positive integer"),
    ("lr", 0.0, "positive number"),
    ("lr", float("nan"), "positive number"),
    ("betas", (0.9,), r"two numbers in \[0, 1\)"),
    ("ema", "yes", "true or false"),
    ("device", "gpu", "'cpu', 'cuda'"),
    ("grad_clip", -1.0, "positive number or null"),
    ("export", "best", "'online' or 'ema'"),
    ("max_steps", 0, "positive integer or null"),
])
def test_config_rejects_bad_values(field, value, msg):
    with pytest.raises(ValueError, match=rf"LoopConfig\.{field}: expected (a |an )?{msg}"):
        LoopConfig(**{"epochs": 1, "batch_size": 4, field: value})


def test_numpy_numbers_are_numbers():
    cfg = LoopConfig(epochs=np.int64(2), batch_size=4, lr=np.float32(0.5))
    assert cfg.epochs == 2 and cfg.lr == 0.5 and type(cfg.lr) is float


def test_config_missing_key_export_without_ema_and_dict_round_trip():
    with pytest.raises(ValueError, match=r"stage\.loop: missing required key\(s\) 'batch_size'"):
        LoopConfig.from_dict({"epochs": 1}, where="stage.loop")
    with pytest.raises(ValueError, match=r"^cfg\.batch_size: expected a positive integer"):
        LoopConfig.from_dict({"epochs": 1, "batch_size": 0}, where="cfg")
    with pytest.raises(ValueError, match="export.*needs LoopConfig.ema"):
        LoopConfig(epochs=1, batch_size=4, ema=False, export="ema")
    cfg = LoopConfig(epochs=2, batch_size=4, betas=[0.9, 0.99], grad_clip=1)
    assert cfg.betas == (0.9, 0.99) and isinstance(cfg.grad_clip, float)
    assert LoopConfig.from_dict(cfg.to_dict()) == cfg
    assert set(RESUME_FIELDS) <= set(cfg.to_dict())


@pytest.mark.parametrize(("settings", "expected"), [
    ({"lr": "fast"}, r"^teacher\.train\.lr: expected a number, got 'fast'$"),
    ({"epochs": 2.5}, r"^teacher\.train\.epochs: expected an integer, got 2\.5$"),
    ({"ema": 1}, r"^teacher\.train\.ema: expected true or false, got 1$"),
    ({"lr": -1}, r"^teacher\.train\.lr: expected a positive number, got -1\.0$"),
    ({"betas": [0.9]}, r"^teacher\.train\.betas: expected two numbers in \[0, 1\)"),
])
def test_from_dict_names_the_dotted_field(settings, expected):
    with pytest.raises((TypeError, ValueError), match=expected):
        LoopConfig.from_dict({"epochs": 1, "batch_size": 4, **settings}, where="teacher.train")


def test_from_dict_parses_json_types():
    cfg = LoopConfig.from_dict({"epochs": 3.0, "batch_size": 4, "lr": 1, "betas": [0.9, 0.99], "max_steps": None})
    assert cfg.epochs == 3 and type(cfg.epochs) is int and type(cfg.lr) is float and cfg.betas == (0.9, 0.99)


def test_importing_the_config_does_not_import_torch():
    code = "import sys, ractd.loop_config; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
