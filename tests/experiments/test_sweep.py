"""A real sweep of two tiny runs: interrupted by a failure, rerun, resumed exactly where it stopped."""

import json

import yaml

from dsod_depth.cli import main
from dsod_depth.detection.loss import MultiBoxLoss
from dsod_depth.engine.checkpoint import load_checkpoint
from dsod_depth.experiments.compare import compare_runs
from dsod_depth.experiments.sweep import run_sweep
from tests.engine.conftest import write_config


def test_sweep_skips_finished_runs_and_resumes_the_failed_one(sweep_store, tmp_path, monkeypatch, capsys):
    # One base config (4 steps, checkpoint every 2) and two runs: rgb then depth, from scratch.
    base = write_config(
        tmp_path / "base.yaml", sweep_store, data={"modality": "rgb", "input_size": 64},
        train={"iters": 4, "batch_size": 2, "checkpoint_every": 2},
    )  # fmt: skip
    output = tmp_path / "sweep"
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(yaml.safe_dump({
        "output": str(output), "config": str(base), "datasets": {"rooms": str(sweep_store)},
        "modalities": ["rgb", "depth"], "inits": ["scratch"], "seeds": [0],
    }))  # fmt: skip
    first, second = output / "rooms" / "rgb_scratch_s0", output / "rooms" / "depth_scratch_s0"

    # Pass 1: the loss of the 7th training step overall (step 3 of the second run) is NaN, so the
    # second run stops after its step-2 checkpoint; the sweep reports it and exits with 1.
    original, calls = MultiBoxLoss.forward, []

    def counted(self, loc, conf, priors, targets, poison_at=7):
        calls.append(1)
        out = original(self, loc, conf, priors, targets)
        if len(calls) == poison_at:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(MultiBoxLoss, "forward", counted)
    assert main(["sweep", str(matrix), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "failed: rooms/depth_scratch_s0: the loss became nan at step 3" in out
    assert "2 runs: 1 failed, 1 trained" in out
    assert load_checkpoint(first / "checkpoints" / "last.pt")["step"] == 4
    assert load_checkpoint(second / "checkpoints" / "last.pt")["step"] == 2
    assert not (second / "eval" / "test" / "metrics.json").exists()
    finished_files = (first / "checkpoints" / "last.pt", first / "eval" / "test" / "metrics.json")
    finished = {p: p.stat().st_mtime_ns for p in finished_files}

    # Pass 2 (no more NaN): the first run is skipped untouched, the second resumes at step 2 and
    # trains exactly steps 3 and 4.
    calls.clear()
    monkeypatch.setattr(MultiBoxLoss, "forward", lambda *a, **k: counted(*a, poison_at=-1, **k))
    result = run_sweep(matrix, progress=False, log=lambda line: None)
    assert result.ok
    assert [(o.spec.name, o.status, o.state.kind, o.state.step) for o in result.outcomes] == [
        ("rooms/rgb_scratch_s0", "skipped", "done", 4),
        ("rooms/depth_scratch_s0", "resumed", "resume", 2),
    ]
    assert len(calls) == 2
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert load_checkpoint(second / "checkpoints" / "last.pt")["step"] == 4
    metrics = json.loads((second / "eval" / "test" / "metrics.json").read_text())
    assert [o.map for o in result.outcomes] == [
        json.loads((first / "eval" / "test" / "metrics.json").read_text())["map"],
        metrics["map"],
    ]
    summary = json.loads((output / "sweep.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["skipped", "resumed"]

    # A finished run without its metrics (deleted) is only evaluated again, not retrained.
    (first / "eval" / "test" / "metrics.json").unlink()
    result = run_sweep(matrix, progress=False, log=lambda line: None)
    assert [o.status for o in result.outcomes] == ["evaluated", "skipped"] and len(calls) == 2
    assert (first / "eval" / "test" / "metrics.json").is_file()
    assert main(["sweep", str(matrix), "--dry-run"]) == 0
    assert "2 runs: 2 done" in capsys.readouterr().out

    # The sweep's output compares directly; the dataset is named by the store ("synthrooms"), not
    # by the matrix or the store folder ("rooms", "tiny_rooms").
    comparison = compare_runs([output])
    assert [(g["dataset"], g["modality"], g["init"], g["n"]) for g in comparison["groups"]] == [
        ("synthrooms", "rgb", "scratch", 1),
        ("synthrooms", "depth", "scratch", 1),
    ]
    assert {r["dataset_source"] for r in comparison["runs"]} == {"store"}
