"""The fault catalogue (docs/reliability.md): a kill at the worst moment, a full disk, damaged files,
non-finite depth, an output folder that cannot be written. Each test proves one row of the table."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dsod_depth.cli import main
from dsod_depth.data import load_prepared
from dsod_depth.data.depth_io import read_depth
from dsod_depth.engine.checkpoint import load_checkpoint, save_checkpoint
from dsod_depth.engine.run_dir import RunDir, read_eval_metrics, read_metrics_log
from dsod_depth.errors import KitError
from dsod_depth.fileio import temporaries
from tests.engine import conftest as engine_fixtures
from tests.evaluation.test_cli_evaluate import files as evaluation_files
from tests.experiments import conftest as experiment_fixtures
from tests.experiments.test_parallel_sweeps import write_matrix
from tests.viz import conftest as viz_fixtures

# Shared fixtures of the other test folders (a tiny store, a tiny evaluated run, a sweep store).
tiny_store = engine_fixtures.tiny_store
viz_store, tiny_run = viz_fixtures.viz_store, viz_fixtures.tiny_run
sweep_store = experiment_fixtures.sweep_store

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
ENOSPC = OSError(errno.ENOSPC, "No space left on device")

# Runs `dsod-depth ARGS...` and SIGKILLs itself at the worst moment for a file named TARGET: its new
# content is complete in a temporary file, not yet renamed into place (what a kill could tear).
_KILL_AT_RENAME = """
import os, signal, sys
target, args = sys.argv[1], sys.argv[2:]
real_replace = os.replace
def replace(src, dst, *a, **k):
    if os.path.basename(os.fspath(dst)) == target:
        assert os.path.isfile(src)
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *a, **k)
os.replace = replace
from dsod_depth.cli import main
sys.exit(main(args))
"""


def kill_at_rename(target: str, *args: str) -> None:
    """Run the command in a subprocess killed (SIGKILL) just before it renames a file onto ``target``."""
    proc = subprocess.run([sys.executable, "-c", _KILL_AT_RENAME, target, *args], env=ENV, cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def copy_run(run: Path, tmp_path: Path) -> RunDir:
    return RunDir(shutil.copytree(run, tmp_path / "run"))


# --------------------------------------------------------------------------- SIGKILL


def test_sigkill_during_prepare_merge_then_rerun_completes(tmp_path):
    out = tmp_path / "store"
    args = ["prepare", "synthrooms", "--out", str(out), "--num-train", "3", "--num-test", "2",
            "--size", "64x48", "--no-progress"]  # fmt: skip
    kill_at_rename("train.h5", *args)
    assert not (out / "train.h5").exists()
    with pytest.raises(KitError, match=r"interrupted preparation \(3/3 frames written\)"):
        load_prepared(out, "train")
    assert main(args) == 0
    assert len(load_prepared(out, "train")[0]) == 3
    assert sorted(p.name for p in out.iterdir()) == ["stats.json", "test.h5", "train.h5"]


def test_sigkill_during_pretrain_checkpoint_then_rerun_redoes(tiny_store, tmp_path):
    cfg = engine_fixtures.write_config(tmp_path / "cfg.yaml", tiny_store, data={"input_size": 32},
                                       train={"batch_size": 4})  # fmt: skip
    out = RunDir(tmp_path / "pre")
    args = ["pretrain", str(cfg), "--data", str(tiny_store), "--out", str(out.path), "--iters", "2",
            "--no-progress"]  # fmt: skip
    kill_at_rename("last.pt", *args)
    assert not out.last.exists() and len(temporaries(out.path)) == 1  # the killed writer's
    assert main(args) == 0
    assert load_checkpoint(out.last)["step"] == 2 and json.loads(out.summary.read_text())["steps"] == 2
    assert temporaries(out.path) == []  # removed by the next holder of the run lock


def test_sigkill_during_eval_keeps_the_old_metrics_and_rerun_redoes(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    old = run.eval_metrics("test").read_bytes()
    kill_at_rename("metrics.json", "eval", str(run.path), "--device", "cpu")
    assert run.eval_metrics("test").read_bytes() == old  # the previous complete file
    json.loads(run.eval_gt("test").read_text()), json.loads(run.eval_detections("test").read_text())
    assert main(["eval", str(run.path), "--device", "cpu"]) == 0
    assert read_eval_metrics(run, "test")["metric"] and temporaries(run.path) == []


def test_sigkill_during_visualize_then_rerun_completes(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    args = ["visualize", str(run.path), "--n", "1", "--no-progress"]
    kill_at_rename("report.md", *args)
    assert not (run.figures / "report.md").exists()
    assert main(args) == 0
    assert (run.figures / "report.md").is_file() and temporaries(run.path) == []


def test_sigkill_during_sweep_checkpoint_then_rerun_finishes_every_run(sweep_store, tmp_path):
    matrix = write_matrix(tmp_path, sweep_store, "sweep", iters=2, seeds=(0,))
    kill_at_rename("last.pt", "sweep", str(matrix), "--no-progress")
    assert main(["sweep", str(matrix), "--no-progress"]) == 0
    runs = [RunDir(p.parent) for p in sorted((tmp_path / "sweep").rglob("config.yaml"))]
    assert len(runs) == 2 and all(load_checkpoint(r.last)["step"] == 2 for r in runs)
    assert all(read_eval_metrics(r, "test") for r in runs) and temporaries(tmp_path / "sweep") == []


def test_sigkill_during_compare_leaves_complete_files_then_rerun_completes(tmp_path):
    ap = {"chair": 0.5, "table": 0.25}
    runs = [experiment_fixtures.make_run(tmp_path / "runs", f"r{seed}", modality="rgb", init="scratch",
                                         seed=seed, ap=ap) for seed in (0, 1)]  # fmt: skip
    out = tmp_path / "cmp" / "comparison.md"
    args = ["compare", *map(str, runs), "--out", str(out), "--no-chart"]
    kill_at_rename("comparison.md", *args)
    assert not out.exists() and json.loads(out.with_suffix(".json").read_text())
    # No run lock here: the killed writer's hidden temporary stays (no reader opens it).
    assert [p.name.startswith(".comparison.md.") for p in temporaries(out.parent)] == [True]
    assert main(args) == 0
    assert out.is_file()


# --------------------------------------------------------------------------- full disk


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.zeros(3)}, "step": 1})

    def half_then_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise ENOSPC

    monkeypatch.setattr(torch, "save", half_then_full)
    with pytest.raises(KitError) as err:
        save_checkpoint(path, {"model": {"w": torch.ones(3)}, "step": 2})
    assert str(err.value) == f"cannot write {path}: No space left on device"
    assert load_checkpoint(path)["step"] == 1 and temporaries(tmp_path) == []


def test_full_disk_during_a_json_output_is_one_line_and_keeps_the_old_file(tmp_path, capsys, monkeypatch):
    gt, det = evaluation_files(tmp_path)
    out = tmp_path / "metrics.json"
    args = ["evaluate", "--gt", str(gt), "--det", str(det), "--metric", "voc07", "--json", str(out)]
    assert main(args) == 0
    old = out.read_bytes()
    capsys.readouterr()

    def full(fd):
        raise ENOSPC

    monkeypatch.setattr(os, "fsync", full)
    assert main([*args[:-3], "voc12", "--json", str(out)]) == 2
    assert one_error_line(capsys) == f"error: cannot write {out}: No space left on device"
    assert out.read_bytes() == old and temporaries(tmp_path) == []


@pytest.mark.parametrize("failing", ["shard-00000000.h5", "train.h5"])
def test_full_disk_during_a_store_shard_or_merge_is_one_line_and_resumable(failing, tmp_path, capsys,
                                                                            monkeypatch):  # fmt: skip
    out = tmp_path / "store"
    args = ["prepare", "synthrooms", "--out", str(out), "--num-train", "3", "--num-test", "2",
            "--size", "64x48", "--no-progress"]  # fmt: skip
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if Path(dst).name == failing:
            raise ENOSPC
        return real_replace(src, dst, *a, **k)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace)
        assert main(args) == 2
    line = one_error_line(capsys)
    assert f"cannot write {out / 'train.h5'}" in line and "No space left on device" in line
    left = sorted(p.name for p in out.rglob("*"))
    assert not [name for name in left if name.endswith((".tmp", ".merging"))], left
    assert main(args) == 0
    assert len(load_prepared(out, "train")[0]) == 3


# --------------------------------------------------------------------------- damaged files


def test_truncated_store_is_one_line_naming_it(tiny_store, tmp_path, capsys):
    damaged = tmp_path / "store"
    shutil.copytree(tiny_store, damaged)
    data = (damaged / "test.h5").read_bytes()
    (damaged / "test.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(KitError, match="test.h5 is not a readable prepared store"):
        load_prepared(damaged, "test")


def test_damaged_metrics_log_is_one_line_and_the_run_still_evaluates(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path)
    lines = len(run.metrics_log.read_text().splitlines())
    with run.metrics_log.open("a") as log:
        log.write('{"step": 3, "loss": 0.')  # a line cut short
    with pytest.raises(KitError) as err:
        read_metrics_log(run)
    assert str(err.value).startswith(f"{run.metrics_log}:{lines + 1}: not a JSON record")
    assert "\n" not in str(err.value)
    assert main(["eval", str(run.path), "--device", "cpu"]) == 0


# --------------------------------------------------------------------------- non-finite depth


def test_non_finite_depth_in_a_user_file_is_read_as_holes_with_a_warning(tmp_path, capsys):
    depth = np.full((48, 64), 2.0, np.float32)
    depth[0, :3], depth[1, 0] = np.nan, np.inf
    path = tmp_path / "depth.npy"
    np.save(path, depth)
    with pytest.warns(UserWarning, match=r"depth.npy: 4 of 3072 depth values are NaN or infinite"):
        metres = read_depth(path, 1.0)
    assert np.isfinite(metres).all() and (metres == 0).sum() == 4
    out = tmp_path / "hha.png"
    assert main(["hha", str(path), "--depth-scale", "1", "--camera", "nyu", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "4 of 3072" in err[0], err
    assert out.is_file()


# --------------------------------------------------------------------------- unwritable output


@pytest.mark.parametrize("command", ["hha", "train", "evaluate", "compare"])
def test_an_output_folder_that_cannot_be_made_is_one_line_and_writes_nothing(command, tiny_store, tmp_path,
                                                                              capsys):  # fmt: skip
    blocker = tmp_path / "blocker"  # a regular file: nothing can be created inside it (ENOTDIR)
    blocker.write_text("")
    if command == "hha":
        np.save(tmp_path / "d.npy", np.full((8, 8), 2.0, np.float32))
        args = ["hha", str(tmp_path / "d.npy"), "--depth-scale", "1", "--camera", "nyu",
                "--out", str(blocker / "hha.png")]  # fmt: skip
    elif command == "train":
        cfg = engine_fixtures.write_config(tmp_path / "cfg.yaml", tiny_store)
        args = ["train", str(cfg), "--out", str(blocker / "run"), "--no-progress"]
    elif command == "evaluate":
        gt, det = evaluation_files(tmp_path)
        args = ["evaluate", "--gt", str(gt), "--det", str(det), "--metric", "voc07",
                "--json", str(blocker / "m.json")]  # fmt: skip
    else:
        run = experiment_fixtures.make_run(tmp_path, "r0", modality="rgb", init="scratch", seed=0,
                                           ap={"chair": 0.5})  # fmt: skip
        args = ["compare", str(run), "--out", str(blocker / "c.md")]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(args) == 2
    assert str(blocker) in one_error_line(capsys)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
