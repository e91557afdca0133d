"""`dsod-depth detect`: files written, agreement with `eval`, real sensor frames, one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dsod_depth.cli import main
from dsod_depth.data.loader import DetectionDataset
from dsod_depth.engine.evaluator import predict as evaluate_predict
from dsod_depth.inference.detector import Detector


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["detect", *map(str, argv), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folder_input_writes_coco_files_figures_and_clouds(detect_runs, detect_store, frame_files, tmp_path,
                                                           capsys):  # fmt: skip
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, detect_runs["rgb+hha"], "--input", frame_files["folder"], "--out", out,
                             "--ply", "--batch-size", 2)  # fmt: skip
    assert code == 0, err
    assert "3 frames" in stdout and "detections written" in stdout
    images = json.loads((out / "images.json").read_text())
    assert [i["id"] for i in images] == [1, 2, 3]
    assert images[0]["file_name"] == str(frame_files["rgb"][0]) and images[0]["width"] == 128
    detections = json.loads((out / "detections.json").read_text())
    assert {d["image_id"] for d in detections} <= {1, 2, 3} and detections
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["000.png", "001.png", "002.png"]
    assert len(list((out / "clouds").glob("*.ply"))) == 3
    assert not list(tmp_path.glob(".out.partial-*"))

    # The same detections as `eval` on the store (same frames, batch 2, the camera of intrinsics.txt).
    det = Detector.from_checkpoint(detect_runs["rgb+hha"], device="cpu")
    dataset = DetectionDataset(detect_store, "test", "rgb+hha", 64)
    expected = evaluate_predict(det.model, dataset, device=torch.device("cpu"), batch_size=2, progress=False)
    ids = {image_id: i + 1 for i, image_id in enumerate(frame_files["image_ids"])}
    want = sorted((ids[d["image_id"]], d["category_id"], round(d["score"], 4)) for d in expected)
    have = sorted((d["image_id"], d["category_id"], round(d["score"], 4)) for d in detections)
    assert have == want


def test_paths_and_list_inputs_agree(detect_runs, frame_files, tmp_path, capsys):
    run = detect_runs["hha"]
    camera = ",".join(f"{v:.10g}" for v in frame_files["cameras"][0].as_tuple())
    by_path = tmp_path / "paths"
    code, _, err = _run(capsys, run, "--depth", frame_files["depth"][1], "--raw", frame_files["raw"][1],
                        "--camera", camera, "--out", by_path, "--no-figures")  # fmt: skip
    assert code == 0, err
    listing = tmp_path / "frames.txt"
    folder = frame_files["folder"]
    listing.write_text(f"# rgb depth raw\n- {folder}/depth/001.png {folder}/raw/001.png\n")
    by_list = tmp_path / "list"
    code, _, err = _run(capsys, run, "--list", listing, "--camera", camera, "--out", by_list, "--no-figures")
    assert code == 0, err
    assert json.loads((by_path / "detections.json").read_text()) == json.loads(
        (by_list / "detections.json").read_text()
    )
    assert not (by_path / "figures").exists()


def test_depth_without_raw_is_filled(detect_runs, frame_files, tmp_path, capsys):
    run = detect_runs["depth"]
    code, _, err = _run(
        capsys, run, "--depth", frame_files["raw"][0], "--out", tmp_path / "a", "--no-figures"
    )
    assert code == 0, err
    code, _, err = _run(capsys, run, "--depth", frame_files["raw"][0], "--no-fill", "--out", tmp_path / "b",
                        "--no-figures")  # fmt: skip
    assert code == 0, err
    filled = json.loads((tmp_path / "a" / "detections.json").read_text())
    unfilled = json.loads((tmp_path / "b" / "detections.json").read_text())
    raw = np.array(Image.open(frame_files["raw"][0]))
    if (raw == 0).any():  # SynthRooms raw depth has sensor holes: filling changes the input
        assert filled != unfilled


def test_real_sensor_frames(detect_runs, shared_data, tmp_path, capsys):
    samples = shared_data / "rgbd_samples"
    run = detect_runs["rgb+hha"]
    nyu = ["--rgb", samples / "NYU_color.ppm", "--depth", samples / "NYU_depth.pgm"]
    code, _, err = _run(capsys, run, *nyu, "--depth-format", "nyu-kinect", "--camera", "nyu",
                        "--out", tmp_path / "nyu")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "nyu" / "figures" / "NYU_color.png").is_file()
    sun = ["--rgb", samples / "SUN_color.jpg", "--depth", samples / "SUN_depth.png"]
    code, _, err = _run(capsys, run, *sun, "--depth-format", "sun", "--camera", "529.5,529.5,365,265",
                        "--out", tmp_path / "sun")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "sun" / "figures" / "SUN_color.png").is_file()
    code, _, err = _run(capsys, run, *sun, "--camera", "nyu", "--out", tmp_path / "plain")
    assert code == 2 and "--depth-format sun" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "plain").exists()


def _bad_inputs(frame_files, tmp_path):
    folder = frame_files["folder"]
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(small)
    eight_bit = tmp_path / "eight.png"
    Image.fromarray(np.full((96, 128), 20, np.uint8)).save(eight_bit)
    colour_depth = tmp_path / "colour.png"
    Image.fromarray(np.full((96, 128, 3), 20, np.uint8)).save(colour_depth)
    unpaired = tmp_path / "unpaired"
    shutil.copytree(folder, unpaired)
    (unpaired / "rgb" / "000.png").rename(unpaired / "rgb" / "zzz.png")
    depth, raw = frame_files["depth"][0], frame_files["raw"][0]
    return {
        "sizes differ": (["--rgb", small, "--depth", depth, "--raw", raw, "--camera", "nyu"], "10"),
        "8-bit depth": (["--depth", eight_bit, "--camera", "nyu"], "8-bit"),
        "colour depth": (["--depth", colour_depth, "--camera", "nyu"], "colour"),
        "no camera": (["--depth", depth, "--raw", raw], "camera"),
        "unpaired": (["--input", unpaired], "zzz.png"),
        "two sources": (["--input", folder, "--depth", depth], "one way"),
    }


@pytest.mark.parametrize("case", ["sizes differ", "8-bit depth", "colour depth", "no camera", "unpaired",
                                  "two sources"])  # fmt: skip
def test_bad_inputs_are_one_line_and_write_nothing(case, detect_runs, frame_files, tmp_path, capsys):
    args, needle = _bad_inputs(frame_files, tmp_path)[case]
    out = tmp_path / "out"
    code, _, err = _run(capsys, detect_runs["hha"], *args, "--out", out)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_bad_checkpoints_and_outputs(detect_runs, frame_files, tmp_path, capsys):
    from dsod_depth.engine.checkpoint import load_checkpoint

    depth, raw = frame_files["depth"][0], frame_files["raw"][0]
    frame = ["--depth", depth, "--raw", raw, "--camera", "nyu"]
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((detect_runs["hha"] / "checkpoints" / "last.pt").read_bytes()[:5000])
    state = load_checkpoint(detect_runs["hha"] / "checkpoints" / "last.pt")
    state["inference"]["build"]["name"] = "dsod9000"
    unknown = tmp_path / "unknown.pt"
    torch.save(state, unknown)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for checkpoint, out, needle in ((truncated, tmp_path / "o1", "truncated"),
                                    (unknown, tmp_path / "o2", "dsod9000"),
                                    (detect_runs["hha"], a_file, "is a file")):  # fmt: skip
        code, _, err = _run(capsys, checkpoint, *frame, "--out", out)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
        assert out == a_file or not out.exists()
    assert a_file.read_text() == "x"
