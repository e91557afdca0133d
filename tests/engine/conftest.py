"""A tiny SynthRooms store and config shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    from dsod_depth.data.prepare import prepare_synthrooms

    out = tmp_path_factory.mktemp("store") / "synthrooms"
    prepare_synthrooms(out, num_train=8, num_test=4, size=(128, 96), seed=3, progress=False)
    return out


def write_config(path: Path, store: Path, **sections) -> Path:
    """A small dsod_tiny config (96×96 input) with section overrides, written to ``path``."""
    cfg = {
        "name": "tiny",
        "data": {"store": str(store), "modality": "rgb+hha", "input_size": 96, "num_workers": 0},
        "model": {"name": "dsod_tiny"},
        "optim": {"lr": 0.02, "schedule": "multistep", "milestones": [1000], "warmup_iters": 0},
        "train": {"iters": 4, "batch_size": 2, "log_every": 1, "checkpoint_every": 2, "eval_every": 0},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    path.write_text(yaml.safe_dump(cfg))
    return path
