"""`dsod-depth prepare synthrooms`: success, one-line errors, resume after a hard kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from dsod_depth.cli import main
from dsod_depth.data import load_prepared
from dsod_depth.data.synthrooms_defaults import DEFAULT_RANDOMNESS
from dsod_depth.errors import KitError

SMALL = ["--num-train", "3", "--num-test", "2", "--size", "64x48", "--no-progress"]


def test_prepare_synthrooms_writes_a_loadable_store(tmp_path, capsys):
    assert main(["prepare", "synthrooms", "--out", str(tmp_path), *SMALL, "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert f"train: {tmp_path / 'train.h5'}" in out and "prepared store ready" in out
    samples, names = load_prepared(tmp_path, "train")
    assert len(samples) == 3 and samples[0].depth.shape == (48, 64) and "chair" in names
    assert samples.prep_args == {
        "num_train": 3,
        "num_test": 2,
        "size": [64, 48],
        "seed": 4,
        "appearance_randomness": DEFAULT_RANDOMNESS,
        "appearance_model": "materials",
    }
    # Rerunning the finished command keeps the files; other settings are refused in one line.
    assert main(["prepare", "synthrooms", "--out", str(tmp_path), *SMALL, "--seed", "4"]) == 0
    assert main(["prepare", "synthrooms", "--out", str(tmp_path), *SMALL, "--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "different settings" in err and err.count("\n") == 1


def test_prepare_with_gzip_compression(tmp_path):
    assert main(["prepare", "synthrooms", "--out", str(tmp_path), *SMALL, "--compression", "gzip"]) == 0
    with h5py.File(tmp_path / "train.h5", "r") as f:
        assert f["rgb"].compression == "gzip" and f["depth"].compression == "gzip"
    samples, _ = load_prepared(tmp_path, "test")
    assert samples[1].rgb.shape == (48, 64, 3)


@pytest.mark.parametrize(
    "argv",
    [
        ["prepare", "synthrooms", "--out", "x", "--size", "64by48"],
        ["prepare", "synthrooms", "--out", "x", "--num-train", "0"],
        ["prepare", "synthrooms", "--out", "x", "--appearance-randomness", "2"],
        ["prepare", "synthrooms", "--out", "x", "--appearance-model", "pastel"],
        ["prepare", "synthrooms", "--out", "x", "--compression", "zip"],
        ["prepare", "synthrooms"],
        ["prepare", "nyu", "--out", "x"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.slow
def test_killed_preparation_resumes_to_the_same_store(tmp_path):
    args = ["--num-train", "80", "--num-test", "2", "--size", "96x72", "--no-progress"]
    reference = tmp_path / "reference"
    assert main(["prepare", "synthrooms", "--out", str(reference), *args]) == 0
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "dsod_depth", "prepare", "synthrooms", "--out", str(out), *args]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_shard = out / "train.h5.partial" / "shard-00000000.h5"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not first_shard.exists():
        time.sleep(0.02)
    time.sleep(0.3)  # now in the middle of the second shard
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "train.h5").exists()
    with pytest.raises(KitError, match=r"interrupted preparation \((32|64)/80 frames written\)"):
        load_prepared(out, "train")
    assert main(["prepare", "synthrooms", "--out", str(out), *args]) == 0
    with h5py.File(out / "train.h5", "r") as a, h5py.File(reference / "train.h5", "r") as b:
        for name in ("rgb", "depth", "raw_hole", "hha", "boxes", "labels", "box_offsets", "stats/rgb/mean"):
            assert np.array_equal(a[name][()], b[name][()]), name
