"""The demo end to end on a miniature budget: every stage runs, results.json has the contract rows."""

import dataclasses
import json

import pytest

from dsod_depth.cli import main
from dsod_depth.config import dump_config
from dsod_depth.demo import (
    DemoSettings,
    check_run_folders,
    demo_matrix,
    demo_settings,
    detector_config,
    run_demo,
)
from dsod_depth.errors import KitError


def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    settings = DemoSettings(
        num_train=8, num_test=4, frame_size=(128, 96), input_size=96, pretrain_iters=2, pretrain_crop=32,
        pretrain_batch=4, pretrain_frames=8, iters=2, batch_size=2, workers=1, jobs=1,
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

    # The appearance ablation adds rgb, hha, rgb+hha from scratch on class-independent appearance.
    assert "materials appearance, randomness 0" in report
    assert "Frames: appearance materials, randomness 0." in (out / "comparison.md").read_text()
    ablated = run_demo(out, dataclasses.replace(settings, ablations=("appearance",)), progress=False)
    assert checkpoint.stat().st_mtime_ns == before  # the main runs are kept
    table = ablated["ablation"]["table"]
    assert "randomness 1" in table and all(f"| {m} |" in table for m in ("rgb", "hha", "rgb_hha"))
    saved = json.loads((out / "ablation_appearance.json").read_text())
    assert saved["randomness"] == 1.0 and len(saved["rows"]) == 3
    assert "Ablation: the same rooms" in (out / "report.md").read_text()
    free = (out / "ablation_appearance" / "comparison.md").read_text()
    assert "Frames: appearance materials, randomness 1." in free

    # The pretraining corpus is its own SynthRooms seed: no frame of the detection store.
    from dsod_depth.data.store import load_prepared

    corpus, _ = load_prepared(out / "data" / "pretrain_corpus", "train")
    detection, _ = load_prepared(out / "data" / "synthrooms", "train")
    assert (corpus.prep_args["seed"], detection.prep_args["seed"]) == (2000, 0)
    pictures = [detection.read(i, ("rgb",))["rgb"] for i in range(len(detection))]
    for i in range(len(corpus)):
        assert not any((corpus.read(i, ("rgb",))["rgb"] == p).all() for p in pictures)
    assert "none of the detection frames" in (out / "report.md").read_text()

    # The transfer column: a student per depth modality distilled from the RGB-pretrained RGB detector.
    transferred = run_demo(out, dataclasses.replace(settings, with_transfer=True), progress=False)
    assert checkpoint.stat().st_mtime_ns == before  # the other cells are kept
    modalities = {(r["modality"], r["init"]) for r in transferred["rows"]}
    assert {(m, "transfer") for m in ("depth", "hha", "rgb_hha")} <= modalities
    assert ("rgb", "transfer") not in modalities
    assert "transfer mAP@0.5 [%]" in transferred["table"] and "| rgb |" in transferred["table"]
    students = json.loads((out / "transfer.json").read_text())
    assert [(t["modality"], t["seed"]) for t in students] == [("depth", 0), ("hha", 0), ("rgb_hha", 0)]
    assert all(t["teacher"].endswith("rgb_pretrained-pretrain_rgb_corpus_s0") for t in students)
    assert "Transfer = supervision transfer" in (out / "report.md").read_text()
    rerun = run_demo(out, settings, progress=False)  # without the flag the transfer runs are accepted
    assert rerun["table"] == result["table"]

    # Other settings in the same folder are refused, never mixed into the old runs.
    with pytest.raises(KitError, match="another config"):
        run_demo(out, dataclasses.replace(settings, iters=3), progress=False)


def test_demo_refuses_run_folders_of_another_naming_before_writing(tmp_path):
    out = tmp_path / "demo"
    old = out / "runs" / "synthrooms" / "synthrooms_rgb_scratch_s0"  # a run name this demo does not make
    old.mkdir(parents=True)
    (old / "config.yaml").write_text("name: synthrooms_rgb_scratch_s0\n")
    with pytest.raises(KitError, match="use another --out or delete") as err:
        run_demo(out, DemoSettings(), progress=False)
    assert str(old) in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["runs"]  # nothing generated, no config written


def test_demo_keeps_runs_of_other_seeds(tmp_path):
    # An earlier `--seeds 2` left seed-1 runs: the same naming rule, so a one-seed demo accepts them.
    out = tmp_path / "demo"
    matrix, base_config = demo_matrix(out, DemoSettings(seeds=1))
    store = out / "data" / "synthrooms"
    seed1 = out / "runs" / "synthrooms" / "hha_scratch_s1"
    seed1.mkdir(parents=True)
    (seed1 / "config.yaml").write_text(
        dump_config(detector_config(DemoSettings(), store, "hha", "scratch", 1))
    )
    check_run_folders(matrix, base_config)
    assert not (out / "configs").exists()
    # The same folder name with a config of seed 0 is not a name the sweep gives: refused.
    (seed1 / "config.yaml").write_text(
        dump_config(detector_config(DemoSettings(), store, "hha", "scratch", 0))
    )
    with pytest.raises(KitError, match="hha_scratch_s1 is not a run folder this demo makes"):
        check_run_folders(matrix, base_config)


def test_demo_rejects_bad_seeds(capsys):
    assert main(["demo", "--seeds", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --seeds must be at least 1")


def test_demo_rejects_unknown_ablation_and_randomness(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--ablation", "lighting"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "invalid choice: 'lighting'" in err and err.count("\n") == 1
    with pytest.raises(KitError, match="unknown demo ablation 'lighting'"):
        demo_settings(full=False, seeds=None, ablations=("lighting",))
