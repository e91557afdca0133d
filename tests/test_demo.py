"""The demo end to end on a miniature budget: every stage runs, results.json has the contract rows."""

import dataclasses
import json

import pytest

from dsod_depth.cli import main
from dsod_depth.demo import DemoSettings, run_demo
from dsod_depth.errors import KitError


def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    settings = DemoSettings(
        num_train=8, num_test=4, frame_size=(128, 96), input_size=96, pretrain_iters=2, pretrain_crop=32,
        pretrain_batch=4, iters=2, batch_size=2, workers=1, jobs=1,
    )  # fmt: skip
    out = tmp_path / "demo"
    result = run_demo(out, settings, progress=False)
    rows = json.loads((out / "results.json").read_text())
    assert rows == [{k: r[k] for k in ("dataset", "modality", "init", "seed", "map")} for r in result["rows"]]
    assert {(r["modality"], r["init"]) for r in rows} == {
        (m, i) for m in ("rgb", "depth", "hha", "rgb_hha") for i in ("scratch", "rgb-pretrained")
    }
    assert all(r["dataset"] == "synthrooms" and r["seed"] == 0 and 0.0 <= r["map"] <= 1.0 for r in rows)
    report = (out / "report.md").read_text()
    assert "| hha |" in report and "comparison.md" in report and "Best depth-only run" in report
    for suffix in ("md", "csv", "tex", "json", "png"):
        assert (out / f"comparison.{suffix}").stat().st_size > 0
    capsys.readouterr()

    # A rerun trains nothing and reproduces the same table.
    checkpoint = out / "runs" / "synthrooms" / "rgb_scratch_s0" / "checkpoints" / "last.pt"
    before = checkpoint.stat().st_mtime_ns
    messages = []
    again = run_demo(out, settings, progress=False, log=messages.append)
    assert again["table"] == result["table"]
    assert checkpoint.stat().st_mtime_ns == before
    assert "3/4 all 8 detectors done already" in messages
    assert capsys.readouterr().out == ""  # the library prints nothing; `dsod-depth demo` prints the log

    # A run trained to the end but not scored (interrupted during its evaluation) is evaluated only.
    run_dir = checkpoint.parent.parent
    (run_dir / "eval" / "test" / "metrics.json").unlink()
    third = run_demo(out, settings, progress=False)
    assert third["table"] == result["table"]
    assert checkpoint.stat().st_mtime_ns == before
    assert (run_dir / "eval" / "test" / "metrics.json").is_file()

    # Other settings in the same folder are refused, never mixed into the old runs.
    with pytest.raises(KitError, match="another config"):
        run_demo(out, dataclasses.replace(settings, iters=3), progress=False)


def test_demo_rejects_bad_seeds(capsys):
    assert main(["demo", "--seeds", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --seeds must be at least 1")
