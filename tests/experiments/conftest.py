"""Helpers for the experiment tests: synthetic finished runs (config.yaml + metrics.json written by
hand, with known numbers) and a tiny prepared store for real sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsod_depth.config import DataConfig, ExperimentConfig, ModelConfig, OptimConfig, TrainConfig, dump_config


def make_run(
    root: Path,
    name: str,
    *,
    modality: str,
    init: str,
    seed: int,
    ap: dict[str, float | None],
    store: str = "/nowhere/synthrooms",
    model: str = "dsod_tiny",
    iters: int = 100,
    batch_size: int = 8,
    accumulate: int = 2,
    metric: str = "voc07",
) -> Path:
    """A finished run folder: its resolved config and eval/test/metrics.json with mAP = mean of ``ap``
    over the classes present (the evaluator's rule)."""
    config = ExperimentConfig(
        name=name,
        data=DataConfig(store=store, modality=modality),
        model=ModelConfig(name=model, init=init),
        optim=OptimConfig(accumulate=accumulate),
        train=TrainConfig(iters=iters, batch_size=batch_size, seed=seed),
    )
    run = root / name
    (run / "eval" / "test").mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(config))
    present = [v for v in ap.values() if v is not None]
    metrics = {
        "metric": metric, "map": sum(present) / len(present), "ap_per_class": ap,
        "absent_classes": [k for k, v in ap.items() if v is None], "iou_threshold": 0.5,
    }  # fmt: skip
    (run / "eval" / "test" / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture(scope="session")
def sweep_store(tmp_path_factory) -> Path:
    """A tiny SynthRooms store in a folder NOT named after the dataset (compare must read the
    store's own ``dataset`` attribute)."""
    from dsod_depth.data.prepare import prepare_synthrooms

    out = tmp_path_factory.mktemp("sweep_store") / "tiny_rooms"
    prepare_synthrooms(out, num_train=4, num_test=2, size=(96, 72), seed=7, progress=False)
    return out
