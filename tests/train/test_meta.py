"""Run metadata: versions, git revision of ractd's own checkout, parameter counts."""

import re

import numpy as np
import torch
from torch import nn

import ractd
from ractd.nn import count_parameters
from ractd.train import meta


def test_run_metadata_records_versions_platform_and_merges_extra():
    m = meta.run_metadata(42, {"dataset": {"fingerprint": "f00"}, "seed": 7})
    assert m["versions"] == {"python": m["versions"]["python"], "torch": torch.__version__,
                             "numpy": np.__version__, "ractd": ractd.__version__}
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", m["versions"]["python"])
    assert m["dataset"] == {"fingerprint": "f00"} and m["seed"] == 7  # extra overrides
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", m["start_time"])
    assert m["platform"]["torch_threads"] == torch.get_num_threads()


def test_git_revision_of_the_checkout_and_of_an_installed_copy(monkeypatch, tmp_path):
    root = meta.ractd_source_root()
    rev = meta.git_revision()
    if root is not None and rev["commit"] is not None:  # running from a git checkout (as in CI)
        assert re.fullmatch(r"[0-9a-f]{40}", rev["commit"]) and isinstance(rev["dirty"], bool)
    monkeypatch.setattr(meta, "ractd_source_root", lambda: None)
    assert meta.git_revision() == {"commit": None, "dirty": None}
    monkeypatch.setattr(meta, "ractd_source_root", lambda: tmp_path)  # a folder that is no git repo
    assert meta.git_revision() == {"commit": None, "dirty": None}


def test_parameter_counts_by_hand():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))  # (3·4 + 4) + (4·2 + 2) = 26
    net[0].requires_grad_(False)
    assert count_parameters(net) == 26
    assert count_parameters(net, trainable_only=True) == 10
    assert meta.parameter_counts(net) == {"total": 26, "trainable": 10}
