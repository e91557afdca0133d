"""Many writers, one run folder: the lock refuses a second writer, cooperating sweeps share a matrix,
``--jobs`` runs children, and Ctrl-C leaves every run resumable — each checked bit for bit against a
sequential sweep at the same number of CPU threads per run (one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from dsod_depth.engine.checkpoint import load_checkpoint
from dsod_depth.engine.run_dir import RunDir, read_metrics_log
from tests.engine.conftest import write_config

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def cli(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dsod_depth", *args], env=ENV, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = 300) -> None:
    """Poll for a condition on files (never a blind sleep); fails if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc is None or proc.poll() is None, f"process ended first: {finish(proc)}"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def write_matrix(tmp_path: Path, store: Path, output: str, *, iters: int, seeds=(0, 1)) -> Path:
    base = write_config(
        tmp_path / f"base_{iters}.yaml", store, data={"modality": "rgb", "input_size": 64},
        train={"iters": iters, "batch_size": 2, "checkpoint_every": 1000, "log_every": 1},
    )  # fmt: skip
    path = tmp_path / f"{output}.yaml"
    path.write_text(yaml.safe_dump({
        "output": str(tmp_path / output), "config": str(base), "datasets": {"rooms": str(store)},
        "modalities": ["rgb", "depth"], "inits": ["scratch"], "seeds": list(seeds),
    }))  # fmt: skip
    return path


def run_folders(root: Path) -> list[RunDir]:
    return [RunDir(p.parent) for p in sorted(root.rglob("config.yaml"))]


def assert_same_runs(a: Path, b: Path, iters: int) -> None:
    """Every run of sweep ``a`` equals the same run of sweep ``b``: weights, optimiser state, logged
    losses and test metrics, bit for bit; each step logged once."""
    runs_a, runs_b = run_folders(a), run_folders(b)
    assert [r.path.relative_to(a) for r in runs_a] == [r.path.relative_to(b) for r in runs_b]
    assert runs_a
    for ra, rb in zip(runs_a, runs_b):
        ca, cb = load_checkpoint(ra.last), load_checkpoint(rb.last)
        assert ca["step"] == cb["step"] == iters
        for key, value in ca["model"].items():
            assert torch.equal(value, cb["model"][key]), (ra, key)
        steps = [r["step"] for r in read_metrics_log(ra) if "loss" in r]
        assert steps == list(range(1, iters + 1)), ra  # every step trained exactly once
        losses = lambda run: [(r["step"], r.get("loss")) for r in read_metrics_log(run)]  # noqa: E731
        assert losses(ra) == losses(rb)
        metrics = [json.loads(r.eval_metrics("test").read_text()) for r in (ra, rb)]
        assert metrics[0] == metrics[1]


@pytest.fixture(scope="module")
def reference(sweep_store, tmp_path_factory) -> dict:
    """A sequential in-process sweep of the 4-run matrix, one CPU thread: what every other way of
    running it must reproduce."""
    tmp = tmp_path_factory.mktemp("reference")
    matrix = write_matrix(tmp, sweep_store, "seq", iters=6)
    code, out, err = finish(cli("sweep", str(matrix), "--no-progress"))
    assert code == 0, out + err
    return {"tmp": tmp, "output": tmp / "seq", "iters": 6}


def test_train_refused_while_another_process_writes_the_run(sweep_store, tmp_path):
    cfg = write_config(
        tmp_path / "cfg.yaml", sweep_store, data={"modality": "rgb", "input_size": 64},
        train={"iters": 60, "checkpoint_every": 2, "batch_size": 2},
    )  # fmt: skip
    run = RunDir(tmp_path / "run")
    holder = cli("train", str(cfg), "--out", str(run.path), "--no-progress")
    try:
        wait_for(lambda: run.holder_file.is_file() and run.last.is_file(), holder)
        holder.send_signal(signal.SIGSTOP)  # keeps its lock, stops writing: the folder holds still
        before = run.content()
        for args in (("train", "--resume", str(run.path)), ("eval", str(run.path)),
                     ("train", str(cfg), "--out", str(run.path))):  # fmt: skip
            code, out, err = finish(cli(*args, "--no-progress") if args[0] == "train" else cli(*args))
            lines = err.strip().splitlines()
            assert code == 2 and len(lines) == 1, (args, out, err)
            assert f"{run.path} is being written by pid {holder.pid}" in lines[0], lines
            assert run.content() == before, args  # the refused process wrote nothing
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=60) == -signal.SIGKILL
    finally:
        holder.kill()
        holder.communicate()
    step = load_checkpoint(run.last)["step"]
    assert 2 <= step < 60
    code, out, err = finish(cli("train", "--resume", str(run.path), "--no-progress"))  # the lock is free
    assert code == 0, err
    assert load_checkpoint(run.last)["step"] == 60


def test_a_run_that_cannot_start_leaves_no_folder(sweep_store, tmp_path, capsys):
    from dsod_depth.cli import main

    cfg = write_config(tmp_path / "cfg.yaml", sweep_store, train={"iters": 1})
    out = tmp_path / "run"
    for extra in (["--data", str(tmp_path / "missing_store")], ["--set", "data.num_workers=-1"],
                  ["--set", "train.batch_size=0"], ["--set", "data.modality=nothing"],
                  ["--set", f"model.init=pretrained:{tmp_path / 'missing.pt'}"]):  # fmt: skip
        assert main(["train", str(cfg), "--out", str(out), "--no-progress", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), (extra, err)
        assert not out.exists(), extra
    assert main(["pretrain", str(cfg), "--data", str(tmp_path / "missing_store"), "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not out.exists()
    # The same command with the input fixed trains.
    assert main(["train", str(cfg), "--out", str(out), "--no-progress", "--data", str(sweep_store)]) == 0
    assert RunDir(out).last.is_file()


@pytest.mark.slow
def test_two_sweeps_on_one_matrix_share_the_work(sweep_store, reference, tmp_path):
    matrix = write_matrix(tmp_path, sweep_store, "seq", iters=reference["iters"])
    first, second = cli("sweep", str(matrix), "--no-progress"), cli("sweep", str(matrix), "--no-progress")
    (code1, out1, err1), (code2, out2, err2) = finish(first), finish(second)
    assert code1 == code2 == 0, out1 + err1 + out2 + err2
    assert_same_runs(tmp_path / "seq", reference["output"], reference["iters"])
    # Each run was trained by exactly one of them; the other saw it held or done.
    trained = [line for out in (out1, out2) for line in out.splitlines() if " trained " in f" {line} "]
    assert len([t for t in trained if t.startswith("rooms/")]) == 4, out1 + out2
    summary = json.loads((tmp_path / "seq" / "sweep.json").read_text())
    assert len(summary["runs"]) == 4 and {r["status"] for r in summary["runs"]} <= {"trained", "skipped"}


@pytest.mark.slow
def test_jobs_and_ctrl_c_reproduce_the_sequential_sweep(sweep_store, reference, tmp_path):
    iters = reference["iters"]
    # --jobs 2 (one thread per run) equals the sequential sweep.
    matrix = write_matrix(tmp_path, sweep_store, "seq", iters=iters)
    jobs = ("--jobs", "2", "--threads-per-run", "1", "--no-progress")
    code, out, err = finish(cli("sweep", str(matrix), *jobs))
    assert code == 0, out + err
    assert "4/4 done" in out
    assert_same_runs(tmp_path / "seq", reference["output"], iters)
    assert all(r.train_log.read_text().count('"step"') >= iters for r in run_folders(tmp_path / "seq"))

    # Ctrl-C while both children train: they save at the end of their step and stop; a rerun resumes.
    long = write_matrix(tmp_path, sweep_store, "long", iters=300, seeds=(0,))
    sweep = cli("sweep", str(long), *jobs)
    logs = [RunDir(tmp_path / "long" / "rooms" / name) for name in ("rgb_scratch_s0", "depth_scratch_s0")]
    wait_for(lambda: all(len(read_metrics_log(r)) >= 3 for r in logs if r.metrics_log.is_file())
             and all(r.metrics_log.is_file() for r in logs), sweep)  # fmt: skip
    sweep.send_signal(signal.SIGINT)
    code, out, err = finish(sweep)
    assert code == 130, out + err
    stopped = [load_checkpoint(r.last)["step"] for r in logs]
    assert all(3 <= s < 300 for s in stopped), stopped  # saved at the step they were on
    code, out, err = finish(cli("sweep", str(long), *jobs))
    assert code == 0, out + err

    straight = write_matrix(tmp_path, sweep_store, "straight", iters=300, seeds=(0,))
    code, out, err = finish(cli("sweep", str(straight), *jobs))
    assert code == 0, out + err
    assert_same_runs(tmp_path / "long", tmp_path / "straight", 300)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--gpus", "7"], "--gpus names GPU 7, which is not visible"),
        (["--gpus-per-run", "2"], "--gpus-per-run 2 needs 2 GPUs"),
        (["--launcher", "pbs"], "invalid choice: 'pbs'"),
        (["--partition", "gpu"], "--partition is a SLURM option; add --launcher slurm"),
        (["--time", "60"], "--time is a SLURM option"),
        (["--jobs", "2", "--threads-per-run", "0"], "--threads-per-run must be at least 1"),
    ],
)
def test_bad_placement_options_are_one_line_and_start_nothing(sweep_store, tmp_path, args, message):
    from dsod_depth.cli import main

    matrix = write_matrix(tmp_path, sweep_store, "out", iters=2)
    code, _, err = finish(cli("sweep", str(matrix), *args)) if args[0] == "--launcher" else (None, "", "")
    if code is None:
        import contextlib
        import io

        buffer = io.StringIO()
        with contextlib.redirect_stderr(buffer):
            code = main(["sweep", str(matrix), *args])
        err = buffer.getvalue()
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_gpus_per_run_must_divide_accumulate(sweep_store, tmp_path):
    from dsod_depth.errors import KitError
    from dsod_depth.experiments.matrix import load_matrix
    from dsod_depth.experiments.runs import specs_for

    matrix = load_matrix(write_matrix(tmp_path, sweep_store, "out", iters=2))  # accumulate 1
    with pytest.raises(KitError, match=r"--gpus-per-run 2 does not divide optim.accumulate = 1"):
        specs_for(matrix, gpus_per_run=2)
    import dataclasses

    doubled = dataclasses.replace(matrix, overrides=("optim.accumulate=4",))
    specs = specs_for(doubled, gpus_per_run=2)
    assert {s.config.optim.accumulate for s in specs} == {2}  # effective batch kept: 2 GPUs × 2


def test_print_commands_lists_pending_runs_only(sweep_store, reference, tmp_path, capsys):
    from dsod_depth.cli import main

    matrix = write_matrix(reference["tmp"], sweep_store, "seq", iters=reference["iters"])  # all done
    assert main(["sweep", str(matrix), "--print-commands"]) == 0
    assert capsys.readouterr().out == ""
    fresh = write_matrix(tmp_path, sweep_store, "fresh", iters=2, seeds=(0,))
    assert main(["sweep", str(fresh), "--print-commands", "--threads-per-run", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    command = f"python -m dsod_depth sweep {fresh} --run rooms/{{}} --no-progress --threads-per-run 2"
    assert lines == [command.format(name) for name in ("rgb_scratch_s0", "depth_scratch_s0")]
    assert not (tmp_path / "fresh").exists()
