"""A tiny trained-and-evaluated run shared by the visualisation tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def viz_store(tmp_path_factory) -> Path:
    """SynthRooms with RGB, depth and HHA: 4 train and 3 test frames of 128 × 96 pixels."""
    from dsod_depth.data.prepare import prepare_synthrooms

    out = tmp_path_factory.mktemp("viz_store") / "synthrooms"
    prepare_synthrooms(out, num_train=4, num_test=3, size=(128, 96), seed=5, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_run(viz_store, tmp_path_factory) -> Path:
    """A run of one training step at 64 × 64 input (the cheapest that runs) with its final evaluation on
    the test split (eval/test/*.json). The figures only need the run's files, not a good detector."""
    from dsod_depth.config import load_config
    from dsod_depth.engine.trainer import train
    from tests.engine.conftest import write_config

    root = tmp_path_factory.mktemp("viz_run")
    cfg = write_config(root / "cfg.yaml", viz_store, data={"input_size": 64, "modality": "rgb"},
                       train={"iters": 1, "checkpoint_every": 1})  # fmt: skip
    run = root / "run"
    train(load_config(cfg), run, progress=False)
    return run
