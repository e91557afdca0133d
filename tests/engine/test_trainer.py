import json
import math

import pytest
import torch

from dsod_depth.cli import main
from dsod_depth.config import load_config
from dsod_depth.engine.checkpoint import load_checkpoint
from dsod_depth.engine.logging import read_metrics
from dsod_depth.engine.trainer import train
from dsod_depth.errors import KitError
from tests.engine.conftest import write_config


def test_training_reduces_loss_and_writes_the_run(tiny_store, tmp_path):
    cfg = write_config(
        tmp_path / "cfg.yaml", tiny_store,
        data={"augment": False}, train={"iters": 16, "batch_size": 4, "checkpoint_every": 8},
        optim={"lr": 0.01},
    )  # fmt: skip
    run = tmp_path / "run"
    state = train(load_config(cfg), run, progress=False)
    assert state.step == 16
    records = [r for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in records] == list(range(1, 17))
    first, last = sum(r["loss"] for r in records[:3]) / 3, sum(r["loss"] for r in records[-3:]) / 3
    assert last < first, (first, last)
    assert all(k in records[0] for k in ("loss_loc", "loss_conf", "lr", "images_per_s"))
    assert {r["processes"] for r in records} == {1}  # compare's effective batch reads it
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["step"] == 16 and ckpt["config"]["train"]["iters"] == 16
    # The final evaluation wrote COCO files and metrics, and the best checkpoint.
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert 0.0 <= metrics["map"] <= 1.0
    assert isinstance(json.loads((run / "eval" / "test" / "detections.json").read_text()), list)
    assert (run / "checkpoints" / "best.pt").is_file()
    assert (run / "config.yaml").is_file() and any((run / "tensorboard").iterdir())


def test_eval_command_rescores_a_run(tiny_store, tmp_path, capsys):
    cfg = write_config(tmp_path / "cfg.yaml", tiny_store, train={"iters": 2})
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "--no-progress"]) == 0
    first = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(run), "--metric", "voc12"]) == 0
    out = capsys.readouterr().out
    assert "mAP" in out and "voc12" in out
    again = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert again["metric"] == "voc12" and first["metric"] == "voc07"
    # Same detections → same VOC07 score when asked again.
    assert main(["eval", str(run / "checkpoints" / "last.pt"), "--metric", "voc07"]) == 0
    assert json.loads((run / "eval" / "test" / "metrics.json").read_text())["map"] == pytest.approx(
        first["map"]
    )


def test_non_finite_loss_stops_without_overwriting(tiny_store, tmp_path, monkeypatch):
    cfg = load_config(
        write_config(tmp_path / "cfg.yaml", tiny_store, train={"iters": 6, "checkpoint_every": 2})
    )
    run = tmp_path / "run"
    from dsod_depth.detection.loss import MultiBoxLoss

    original = MultiBoxLoss.forward
    calls = {"n": 0}

    def poisoned(self, loc, conf, priors, targets):
        calls["n"] += 1
        out = original(self, loc, conf, priors, targets)
        if calls["n"] == 3:  # the third step
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(MultiBoxLoss, "forward", poisoned)
    with pytest.raises(KitError, match=r"at step 3.*last\.pt \(step 2\)"):
        train(cfg, run, progress=False)
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_cli_train_errors_are_one_line(tiny_store, tmp_path, capsys):
    cfg = write_config(tmp_path / "cfg.yaml", tiny_store)
    cases = [
        ["train", str(cfg), "--set", "train.itres=3"],
        ["train", str(tmp_path / "missing.yaml")],
        ["train", str(cfg), "--data", str(tmp_path / "nostore")],
        ["train", "--resume", str(tmp_path / "norun")],
        ["train", str(cfg), "--set", "data.modality=rgb+sonar"],
        ["eval", str(tmp_path / "norun")],
    ]
    for argv in cases:
        assert main(argv + ["--no-progress"] if argv[0] == "train" else argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, (argv, err)
    evil = tmp_path / "evil.pt"

    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"model": {}, "x": Payload()}, evil)
    assert main(["eval", str(evil)]) == 2
    captured = capsys.readouterr()
    assert "pickled" in captured.err and "executed" not in captured.out


def test_lr_follows_schedule_in_metrics(tiny_store, tmp_path):
    cfg = write_config(
        tmp_path / "cfg.yaml", tiny_store,
        optim={"lr": 0.01, "milestones": [2], "gamma": 0.5, "warmup_iters": 0}, train={"iters": 3},
    )  # fmt: skip
    train(load_config(cfg), tmp_path / "run", progress=False)
    lrs = [r["lr"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "lr" in r]
    assert [math.isclose(a, b) for a, b in zip(lrs, [0.01, 0.01, 0.005])] == [True] * 3


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="AMP runs on CUDA only (no GPU here)")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_channels_last_training_on_cuda(tiny_store, tmp_path, amp):
    cfg = write_config(
        tmp_path / "cfg.yaml",
        tiny_store,
        train={"iters": 3, "device": "cuda", "amp": amp, "channels_last": True},
    )
    state = train(load_config(cfg), tmp_path / "run", progress=False)
    assert state.step == 3
    records = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert all(math.isfinite(r["loss"]) for r in records)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert all(v.dtype != torch.float16 for v in ckpt["model"].values())  # master weights stay float32
    if amp == "fp16":
        assert ckpt["scaler"]  # the loss scaler state is saved for exact resume


def test_amp_is_off_on_cpu(tiny_store, tmp_path):
    from dsod_depth.engine.device import amp_dtype_for

    config = load_config(write_config(tmp_path / "cfg.yaml", tiny_store, train={"amp": "bf16"}))
    assert amp_dtype_for(config, torch.device("cpu")) is None
    assert amp_dtype_for(config, torch.device("cuda")) is torch.bfloat16


def test_stop_saves_that_step_and_a_resume_at_other_threads_warns(tiny_store, tmp_path):
    cfg = write_config(tmp_path / "cfg.yaml", tiny_store, train={"iters": 5, "checkpoint_every": 100})
    cfg = load_config(cfg)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        train(cfg, straight, progress=False)
        polls = []
        with pytest.raises(KitError, match=r"stopped at step 3/5 with a checkpoint of that step"):
            train(cfg, stopped, progress=False, stop=lambda: polls.append(1) or len(polls) == 3)
        checkpoint = load_checkpoint(stopped / "checkpoints" / "last.pt")
        assert checkpoint["step"] == 3 and checkpoint["cpu_threads"] == 1
        train(cfg, stopped, resume=True, progress=False)  # same thread count: silent and exact
        a = load_checkpoint(straight / "checkpoints" / "last.pt")["model"]
        b = load_checkpoint(stopped / "checkpoints" / "last.pt")["model"]
        assert all(torch.equal(v, b[k]) for k, v in a.items())

        with pytest.raises(KitError, match="no checkpoints/last.pt to resume from"):
            train(cfg, tmp_path / "nothing", resume=True, progress=False)
        assert not (tmp_path / "nothing").exists()
        again = tmp_path / "again"
        with pytest.raises(KitError, match="stopped at step 1/5"):
            train(cfg, again, progress=False, stop=lambda: True)
        torch.set_num_threads(2)
        with pytest.warns(UserWarning, match="trained with 1 CPU threads and resumes with 2"):
            train(cfg, again, resume=True, progress=False)
    finally:
        torch.set_num_threads(threads)
