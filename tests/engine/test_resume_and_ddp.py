"""Subprocess tests: bit-identical resume after SIGKILL, and a 2-process Gloo DDP run on CPU."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dsod_depth.engine.checkpoint import load_checkpoint
from dsod_depth.engine.logging import read_metrics
from tests.engine.conftest import write_config

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, **popen):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "dsod_depth", *args], env=env, cwd=REPO, **popen)


def kill_at_first_checkpoint(proc: subprocess.Popen, last: Path) -> None:
    """SIGKILL ``proc`` as soon as the checkpoint ``last`` exists (it must still be running then)."""
    deadline = time.monotonic() + 600
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"


def test_resume_after_sigkill_is_bit_identical(tiny_store, tmp_path):
    cfg = write_config(
        tmp_path / "cfg.yaml", tiny_store, train={"iters": 8, "checkpoint_every": 2, "seed": 5}
    )
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run_cli("train", str(cfg), "--out", str(straight), "--no-progress").wait(timeout=600) == 0

    last = killed / "checkpoints" / "last.pt"
    kill_at_first_checkpoint(run_cli("train", str(cfg), "--out", str(killed), "--no-progress"), last)
    interrupted_at = load_checkpoint(last)["step"]
    assert 2 <= interrupted_at < 8

    assert run_cli("train", "--resume", str(killed), "--no-progress").wait(timeout=600) == 0
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(killed / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 8
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for key, value in a["optimiser"]["state"].items():
        assert torch.equal(value["momentum_buffer"], b["optimiser"]["state"][key]["momentum_buffer"])
    losses = lambda run: [(r["step"], r.get("loss")) for r in read_metrics(run / "metrics.jsonl")]  # noqa: E731
    assert losses(straight) == losses(killed)


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_single_process(tiny_store, tmp_path):
    # GroupNorm: no batch statistics, so 2 ranks × 2 images see what 1 process × 4 images sees,
    # up to the per-rank normalisation of the loss by its own number of positives.
    common = {
        "train": {"iters": 2, "checkpoint_every": 2, "batch_size": 4},
        "model": {"options": {"norm": "gn"}},
    }
    single_cfg = write_config(tmp_path / "single.yaml", tiny_store, data={"augment": False}, **common)
    ddp_cfg = write_config(
        tmp_path / "ddp.yaml", tiny_store, data={"augment": False},
        train={"iters": 2, "checkpoint_every": 2, "batch_size": 2}, model=common["model"],
    )  # fmt: skip
    assert (
        run_cli("train", str(single_cfg), "--out", str(tmp_path / "single"), "--no-progress").wait(600) == 0
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    report = tmp_path / "report.txt"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        str(REPO / "tests" / "engine" / "ddp_worker.py"), str(ddp_cfg), str(tmp_path / "ddp"), str(report),
    ]  # fmt: skip
    subprocess.run(cmd, env=env, cwd=REPO, check=True, timeout=600, capture_output=True)
    assert report.read_text().split() == ["2", "1"]  # two ranks, identical parameters
    logged = {r["processes"] for r in read_metrics(tmp_path / "ddp" / "metrics.jsonl") if "loss" in r}
    assert logged == {2}  # what compare multiplies the effective batch by

    single = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")["model"]
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")["model"]
    torch.manual_seed(0)  # same initialisation as both runs (train.seed = 0)
    from dsod_depth.config import load_config
    from dsod_depth.data.loader import DetectionDataset
    from dsod_depth.engine.model_setup import build_model_for

    config = load_config(single_cfg)
    initial = build_model_for(config, DetectionDataset(tiny_store, "train", "rgb+hha", 96)).state_dict()
    keys = [k for k, v in initial.items() if v.is_floating_point()]
    d_single = torch.cat([(single[k] - initial[k]).flatten() for k in keys])
    d_ddp = torch.cat([(ddp[k] - initial[k]).flatten() for k in keys])
    assert d_single.norm() > 0
    cosine = torch.nn.functional.cosine_similarity(d_single, d_ddp, dim=0)
    assert cosine > 0.95, float(cosine)
    assert 0.8 < float(d_ddp.norm() / d_single.norm()) < 1.25
