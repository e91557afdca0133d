"""The run-folder contract: paths, state, metrics readers, and the one-writer lock."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsod_depth.engine import run_dir as rd
from dsod_depth.engine.run_dir import RunBusy, RunDir, read_eval_metrics, resolve_checkpoint, run_lock
from dsod_depth.errors import KitError

REPO = Path(__file__).resolve().parents[2]

# Holds the lock of argv[1] until its stdin closes; prints "held" once it has it.
_HOLDER = """
import sys
from dsod_depth.engine.run_dir import run_lock
with run_lock(sys.argv[1], create=True, command="holder-test"):
    print("held", flush=True)
    sys.stdin.read()
"""


def _hold(path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"  # waits for the lock, not for a timer
    return proc


def test_paths_follow_the_design_layout(tmp_path):
    run = RunDir(tmp_path / "r")
    rel = {name: getattr(run, name).relative_to(run.path).as_posix() for name in
           ("config", "metrics_log", "last", "best", "tensorboard", "figures", "train_log")}  # fmt: skip
    assert rel == {"config": "config.yaml", "metrics_log": "metrics.jsonl", "last": "checkpoints/last.pt",
                   "best": "checkpoints/best.pt", "tensorboard": "tensorboard", "figures": "figures",
                   "train_log": "train.log"}  # fmt: skip
    assert run.eval_metrics("val").relative_to(run.path).as_posix() == "eval/val/metrics.json"
    assert not run.path.exists()  # naming paths creates nothing


def test_resolve_checkpoint_from_folder_or_file(tmp_path):
    run = RunDir(tmp_path / "r")
    with pytest.raises(KitError, match="has no checkpoints/last.pt"):
        resolve_checkpoint(tmp_path)
    run.last.parent.mkdir(parents=True)
    run.last.write_bytes(b"x")
    run.best.write_bytes(b"x")
    assert resolve_checkpoint(run.path) == (run.last, run)
    assert resolve_checkpoint(run.best) == (run.best, run)
    loose = tmp_path / "weights.pt"
    loose.write_bytes(b"x")
    assert resolve_checkpoint(loose) == (loose, RunDir(tmp_path))
    with pytest.raises(KitError, match="not found"):
        resolve_checkpoint(tmp_path / "nope.pt")


def test_eval_metrics_are_checked(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(KitError, match=r"no test metrics; finish it with `dsod-depth train --resume"):
        read_eval_metrics(run, "test")
    run.eval_dir("test").mkdir(parents=True)
    run.eval_metrics("test").write_text(json.dumps({"map": 0.5}))
    with pytest.raises(KitError, match="needs metric, map, ap_per_class"):
        read_eval_metrics(run, "test")
    assert rd.read_map(run, "test") == 0.5  # the lenient reader of summaries
    good = {"metric": "voc07", "map": 0.5, "ap_per_class": {"chair": 0.5, "bed": None}}
    run.eval_metrics("test").write_text(json.dumps(good))
    assert read_eval_metrics(run, "test") == good


def test_lock_is_reentrant_and_leaves_only_lock_files(tmp_path):
    run = RunDir(tmp_path / "new" / "run")
    with pytest.raises(KitError, match="not found"):
        with run_lock(run):
            pass
    seen = []
    with run_lock(run, create=True, on_acquired=seen.append):
        holder = json.loads(run.holder_file.read_text())
        assert holder["pid"] == os.getpid() and {"host", "command", "started"} <= set(holder)
        with run_lock(run, on_acquired=seen.append):  # the trainer inside a sweep's hold
            pass
        assert run.holder_file.is_file()
    assert seen == [run]  # called once, by the outer hold
    assert not run.holder_file.exists()
    assert run.content() == {}  # lock files are not run content


def test_a_second_process_is_refused_until_the_holder_dies(tmp_path):
    run = RunDir(tmp_path / "run")
    proc = _hold(run.path)
    try:
        with pytest.raises(RunBusy) as err:
            with run_lock(run):
                pytest.fail("entered a locked run")
        message = str(err.value)
        assert f"pid {proc.pid}" in message and "holder-test" in message and "\n" not in message
        proc.kill()  # SIGKILL: the kernel releases the lock with the process
        proc.wait(timeout=30)
        assert run.holder_file.is_file()  # a stale record stays ...
        with run_lock(run):  # ... but the lock is free
            assert json.loads(run.holder_file.read_text())["pid"] == os.getpid()
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_only_rank_zero_locks_under_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    run = RunDir(tmp_path)
    with run_lock(run):
        assert not run.lock_file.exists() and not run.holder_file.exists()


def test_a_file_system_without_locks_is_one_clear_error(tmp_path, monkeypatch):
    import filelock

    def no_flock(self, *args, **kwargs):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(filelock.FileLock, "acquire", no_flock)
    with pytest.raises(KitError, match="does not support file locks"):
        with run_lock(tmp_path):
            pass


def test_a_busy_folder_changes_nothing(tmp_path):
    run = RunDir(tmp_path / "run")
    proc = _hold(run.path)
    try:
        (run.path / "config.yaml").write_text("name: x\n")
        before = (run.content(), run.lock_file.stat().st_mtime_ns, run.holder_file.read_text())
        time.sleep(0.01)
        with pytest.raises(RunBusy):
            with run_lock(run, create=True):
                pass
        assert (run.content(), run.lock_file.stat().st_mtime_ns, run.holder_file.read_text()) == before
    finally:
        proc.kill()
        proc.wait(timeout=30)
