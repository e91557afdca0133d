"""benchmarks/gpu_check.py: its no-CUDA behaviour (a subprocess) and its pure parts (imported by path).

The CUDA steps themselves run only on a GPU machine (``make gpu-check``); the step functions take
a device, so the training-check and process-group steps are also run here on the CPU.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"
NO_CUDA_LINE = "gpu-check: no CUDA device visible; nothing to check (run it on a GPU machine)"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)


def test_without_cuda_prints_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "results" / "gpu_check.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides a GPU too, so this holds on any machine
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [NO_CUDA_LINE]
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not out.parent.exists()
    assert list(tmp_path.iterdir()) == []


def test_quick_flag_is_accepted_without_cuda(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True, text=True, env=env,
        timeout=120,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout.splitlines(), out.exists()) == (0, [NO_CUDA_LINE], False)


def test_script_constant_matches_the_documented_line(gpu_check):
    assert gpu_check.NO_CUDA_LINE == NO_CUDA_LINE
    assert gpu_check.AMP_REL_TOLERANCE == 0.15


@pytest.mark.parametrize(
    ("output", "counts"),
    [
        ("..\n2 passed, 310 deselected in 12.31s\n", {"passed": 2, "deselected": 310}),
        ("F.\n1 failed, 1 passed, 1 warning in 3.0s", {"failed": 1, "passed": 1, "warnings": 1}),
        ("==== 2 skipped, 5 deselected in 0.41s ====", {"skipped": 2, "deselected": 5}),
        ("ERROR tests/x.py\n1 error in 6.90s\n", {"errors": 1}),
        ("no tests ran in 0.01s\n", {}),
        ("crashed before a summary\n", {}),
    ],
)
def test_parse_pytest_summary(gpu_check, output, counts):
    parsed, line = gpu_check.parse_pytest_summary(output)
    assert parsed == counts
    assert (line != "") == ("in " in output)


def test_trend_uses_a_tenth_at_each_end(gpu_check):
    losses = [10.0] * 3 + [5.0] * 24 + [1.0] * 3  # 30 values: 3 at each end
    assert gpu_check.trend(losses) == (10.0, 1.0)
    assert gpu_check.trend([4.0, 2.0]) == (4.0, 2.0)  # at least one value each


def _curve(start: float, end: float, n: int = 100) -> list[float]:
    return [start + (end - start) * i / (n - 1) for i in range(n)]


def test_loss_rows_pass_for_decreasing_curves_within_tolerance(gpu_check):
    curves = {"off": _curve(20, 4), "bf16": _curve(20, 4.3), "fp16": _curve(20, 3.8)}
    rows = gpu_check.loss_rows(curves, notes={"off": "100 img/s"})
    assert [r["problem"] for r in rows] == [None, None, None]
    assert "100 img/s" in rows[0]["value"] and "±15%" in rows[1]["value"]


def test_loss_rows_flag_amp_outside_tolerance(gpu_check):
    fp32_final = gpu_check.trend(_curve(20, 4))[1]
    rows = gpu_check.loss_rows({"off": _curve(20, 4), "bf16": _curve(20, 4 + 0.2 * fp32_final)})
    assert rows[0]["problem"] is None
    assert "off fp32's" in rows[1]["problem"]
    # Just inside the tolerance passes.
    rows = gpu_check.loss_rows({"off": _curve(20, 4), "fp16": _curve(20, 4 + 0.1 * fp32_final)})
    assert rows[1]["problem"] is None


def test_loss_rows_flag_flat_and_non_finite_curves(gpu_check):
    rows = gpu_check.loss_rows({"off": [5.0] * 50, "bf16": _curve(20, 4)[:-1] + [None], "fp16": []})
    assert "did not decrease" in rows[0]["problem"]
    assert "non-finite" in rows[1]["problem"]
    assert rows[2]["problem"] == "no loss logged"
    rows = gpu_check.loss_rows({"bf16": _curve(20, 4)})  # nothing to compare with
    assert rows[0]["problem"] == "no finite fp32 run to compare with"
    rows = gpu_check.loss_rows({"off": [math.nan] + _curve(20, 4), "fp16": _curve(20, 4)})
    assert rows[0]["problem"] and rows[1]["problem"] == "no finite fp32 run to compare with"


def test_run_step_records_a_failure_and_the_next_step_runs(gpu_check):
    def broken():
        raise RuntimeError("CUDA error: an illegal memory access\nsecond line")

    results = [
        gpu_check.run_step("broken", broken),
        gpu_check.run_step("bad row", lambda: ([gpu_check.row("x", "1", "too slow")], {})),
        gpu_check.run_step("fine", lambda: ([gpu_check.row("y", "2")], {"k": 1})),
    ]
    assert [r["ok"] for r in results] == [False, False, True]
    assert results[0]["error"] == "RuntimeError: CUDA error: an illegal memory access"
    assert results[1]["error"] == "x: too slow"
    assert results[2]["details"] == {"k": 1} and results[2]["error"] is None
    machine = {"gpu": "NVIDIA H100", "torch": "2.x", "cuda": "13.0", "cudnn": 9}
    table = gpu_check.render_table(machine, results)
    lines = table.splitlines()
    assert lines[0].startswith("## GPU check: NVIDIA H100, torch 2.x, CUDA 13.0")
    assert sum(line.endswith("| FAILED |") for line in lines) == 2
    assert sum(line.endswith("| ok |") for line in lines) == 1


def test_process_group_step_on_cpu_with_gloo(gpu_check):
    before = {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT")}
    rows, details = gpu_check.process_group_check(backend="gloo", device="cpu")
    assert rows[0]["problem"] is None and details["backend"] == "gloo"
    assert {k: os.environ.get(k) for k in before} == before  # the environment is put back


def test_training_step_on_cpu(gpu_check, tmp_path):
    """Step 3 end to end with dsod_tiny on the CPU (AMP is off on the CPU, so the runs agree)."""
    from dsod_depth.data.prepare import prepare_synthrooms

    store = tmp_path / "store"
    prepare_synthrooms(store, num_train=8, num_test=2, size=(128, 96), seed=0, progress=False)
    budget = gpu_check.Budget(num_train=8, num_test=2, train_steps=4, train_batch=4)
    rows, details = gpu_check.train_precisions(
        store, tmp_path / "runs", budget, model="dsod_tiny", input_size=96, device="cpu"
    )
    assert [r["measure"] for r in rows] == ["train loss fp32", "train loss bf16 AMP", "train loss fp16 AMP"]
    assert set(details["runs"]) == {"off", "bf16", "fp16"}
    assert all(len(run["losses"]) == 4 for run in details["runs"].values())
    assert all("vs fp32 +0.0%" in r["value"] for r in rows[1:])
