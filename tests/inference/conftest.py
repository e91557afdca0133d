"""Tiny trained runs and a store's test frames written out as plain files, for the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def detect_store(tmp_path_factory) -> Path:
    """SynthRooms with RGB, depth and HHA: 4 train and 3 test frames of 128 × 96 pixels."""
    from dsod_depth.data.prepare import prepare_synthrooms

    out = tmp_path_factory.mktemp("detect_store") / "synthrooms"
    prepare_synthrooms(out, num_train=4, num_test=3, size=(128, 96), seed=11, progress=False)
    return out


def _train(store: Path, root: Path, modality: str, **model) -> Path:
    from dsod_depth.config import load_config
    from dsod_depth.engine.trainer import train
    from tests.engine.conftest import write_config

    cfg = write_config(root / f"{modality}.yaml", store, data={"input_size": 64, "modality": modality},
                       model={"name": "dsod_tiny", **model},
                       train={"iters": 2, "checkpoint_every": 2, "eval_every": 0})  # fmt: skip
    run = root / modality.replace("+", "_")
    train(load_config(cfg), run, progress=False)
    return run


@pytest.fixture(scope="session")
def detect_runs(detect_store, tmp_path_factory) -> dict[str, Path]:
    """Two-step dsod_tiny runs (64 × 64 input) for depth, HHA and RGB+HHA (late fusion), by modality."""
    root = tmp_path_factory.mktemp("detect_runs")
    return {
        "depth": _train(detect_store, root, "depth"),
        "hha": _train(detect_store, root, "hha"),
        "rgb+hha": _train(detect_store, root, "rgb+hha", options={"fusion": "late", "late_split": [3, 3]}),
    }


@pytest.fixture(scope="session")
def frame_files(detect_store, tmp_path_factory) -> dict:
    """The store's test frames as plain files (:func:`~dsod_depth.data.frame_files.write_frame_files`):
    ``{"folder", "rgb", "depth", "raw", "cameras", "image_ids"}``, lists in frame order."""
    from dsod_depth.data.frame_files import write_frame_files
    from dsod_depth.data.store import load_prepared

    folder = tmp_path_factory.mktemp("frames")
    stems = write_frame_files(detect_store, "test", folder)
    samples, _ = load_prepared(detect_store, "test")
    out = {kind: [folder / kind / f"{s}.png" for s in stems] for kind in ("rgb", "depth", "raw")}
    out["cameras"] = [samples.camera(i) for i in range(len(samples))]
    out["image_ids"] = list(samples.image_ids)
    return {"folder": folder, **out}
