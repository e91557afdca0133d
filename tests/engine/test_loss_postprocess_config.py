"""The config's ``loss`` and ``postprocess`` sections: read by the trainer, eval and the checkpoint's
inference record; a run folder written before the sections existed is still the same run."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from dsod_depth.config import ExperimentConfig, LossConfig, dump_config, load_config
from dsod_depth.engine.checkpoint import load_checkpoint, save_checkpoint
from dsod_depth.engine.evaluator import evaluate_checkpoint
from dsod_depth.engine.logging import read_metrics
from dsod_depth.engine.run_dir import RunDir, folder_state
from dsod_depth.engine.trainer import Trainer, build_loss, train
from tests.engine.conftest import write_config


def _old_run(tmp_path, config: ExperimentConfig) -> RunDir:
    """A trained run folder as the kit wrote it before ``loss``/``postprocess`` existed."""
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    old = yaml.safe_load(dump_config(config))
    del old["loss"], old["postprocess"]
    run.config.write_text(yaml.safe_dump(old, sort_keys=False))
    save_checkpoint(run.last, {"model": {}, "step": config.train.iters})
    return run


def test_a_run_written_before_the_sections_is_the_same_run(tmp_path):
    config = load_config(write_config(tmp_path / "cfg.yaml", tmp_path / "store"))
    run = _old_run(tmp_path, config)
    assert "loss" not in run.config.read_text()
    assert folder_state(run, config).kind == "evaluate"
    run.eval_metrics(config.data.test_split).parent.mkdir(parents=True)
    run.eval_metrics(config.data.test_split).write_text("{}")
    assert folder_state(run, config).kind == "done"
    # Settings other than the defaults are another run, named by their key.
    other = load_config(write_config(tmp_path / "other.yaml", tmp_path / "store", loss={"neg_pos_ratio": 5}))
    state = folder_state(run, other)
    assert state.kind == "conflict" and "loss.neg_pos_ratio: 3.0 → 5.0" in state.detail
    other = load_config(write_config(tmp_path / "pp.yaml", tmp_path / "store", postprocess={"top_k": 100}))
    assert "postprocess.top_k: 400 → 100" in folder_state(run, other).detail


def test_build_loss_reads_the_section():
    loss = build_loss(LossConfig(loc_weight=2.0, neg_pos_ratio=1.5, iou_threshold=0.4))
    assert (loss.neg_pos_ratio, loss.iou_threshold) == (1.5, 0.4)
    assert loss.weights == {"loss_loc": 2.0, "loss_conf": 1.0}
    default = build_loss(LossConfig())
    assert (default.neg_pos_ratio, default.iou_threshold) == (3.0, 0.5)
    assert default.weights == {"loss_loc": 1.0, "loss_conf": 1.0}


def test_training_and_eval_use_the_sections(tiny_store, tmp_path):
    settings = {"score_threshold": 0.05, "nms_threshold": 0.3, "top_k": 50, "keep_top_k": 3}
    cfg = write_config(tmp_path / "cfg.yaml", tiny_store, train={"iters": 2, "checkpoint_every": 2},
                       loss={"loc_weight": 2.0, "neg_pos_ratio": 1.0}, postprocess=settings)  # fmt: skip
    config = load_config(cfg)
    trainer = Trainer(config, tmp_path / "unused", progress=False)
    assert trainer.criterion.neg_pos_ratio == 1.0 and trainer.criterion.weights["loss_loc"] == 2.0
    run = tmp_path / "run"
    train(config, run, progress=False)

    records = [r for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    for r in records:  # the logged total is the weighted sum
        assert r["loss"] == pytest.approx(2.0 * r["loss_loc"] + r["loss_conf"], rel=1e-5)
    record = load_checkpoint(run / "checkpoints" / "last.pt")["inference"]["postprocess"]
    assert record == {**settings, "variances": [0.1, 0.1, 0.2, 0.2]}
    assert yaml.safe_load((run / "config.yaml").read_text())["postprocess"] == settings

    def check(detections):
        assert detections and max(Counter(d["image_id"] for d in detections).values()) <= 3
        assert min(d["score"] for d in detections) >= 0.05

    written = json.loads((run / "eval" / "test" / "detections.json").read_text())
    check(written)
    _, out = evaluate_checkpoint(run, progress=False, device="cpu")
    assert json.loads((out / "detections.json").read_text()) == written
