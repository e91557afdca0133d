"""`dsod-depth export`: a trained run to ONNX with its metadata, checked in onnxruntime; one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsod_depth.cli import main
from dsod_depth.inference.detector import Detector

pytest.importorskip("onnxruntime")


def _main(argv: list[str]) -> int:
    """The command's exit code, also for argument errors (argparse exits)."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code)


def test_export_a_run_and_reproduce_predict(detect_runs, frame_files, tmp_path, capsys):
    from dsod_depth.inference.export import load_onnx_metadata, run_onnx

    run = detect_runs["rgb+hha"]
    out = tmp_path / "model.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(out), "--postprocess"]) == 0
    stdout = capsys.readouterr().out
    assert "onnxruntime agrees with PyTorch" in stdout and out.is_file()
    meta = load_onnx_metadata(out)
    det = Detector.from_checkpoint(run, device="cpu")
    assert meta["classes"] == det.classes and meta["input_size"] == [64, 64]
    assert [g["name"] for g in meta["groups"]] == ["rgb", "hha"] and meta["postprocess"]["score_threshold"]

    # The README's recipe: encode with the Detector, run the graph, scale to the frame's pixels.
    args = {"rgb": frame_files["rgb"][0], "depth": frame_files["depth"][0],
            "raw_depth": frame_files["raw"][0], "intrinsics": frame_files["cameras"][0]}  # fmt: skip
    expected = det.predict(**args)
    frame = det.read_frame(args["rgb"], args["depth"], args["raw_depth"])
    images = det.encode(*frame, args["intrinsics"])[None].numpy()
    got = run_onnx(out, images)
    height, width = expected.size
    boxes = np.clip(got["boxes"] * [width, height, width, height], 0, [width, height, width, height])
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    np.testing.assert_array_equal(got["labels"][keep], expected.labels)
    np.testing.assert_allclose(got["scores"][keep], expected.scores, atol=1e-4)
    np.testing.assert_allclose(boxes[keep], expected.boxes, atol=1e-3)


def test_network_export_with_fixed_batch(detect_runs, tmp_path, capsys):
    from dsod_depth.inference.export import run_onnx

    out = tmp_path / "net.onnx"
    assert main(["export", str(detect_runs["depth"]), "--out", str(out), "--batch", "3"]) == 0
    capsys.readouterr()
    det = Detector.from_checkpoint(detect_runs["depth"], device="cpu")
    images = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        loc, conf = det.model(images)
    got = run_onnx(out, images.numpy())
    np.testing.assert_allclose(got["loc"], loc.numpy(), atol=1e-4)
    np.testing.assert_allclose(got["conf"], conf.numpy(), atol=1e-4)


@pytest.mark.parametrize("args, needle", [
    (["--format", "torchscript"], "invalid choice"),
    (["--batch", "many"], "--batch"),
    (["--opset", "3"], "opset"),
])  # fmt: skip
def test_export_errors_are_one_line_and_write_nothing(args, needle, detect_runs, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    code = _main(["export", str(detect_runs["hha"]), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_export_into_a_folder_or_a_missing_folder(detect_runs, tmp_path, capsys):
    for out, needle in ((tmp_path, "is a directory"), (tmp_path / "no" / "m.onnx", "does not exist")):
        code = main(["export", str(detect_runs["hha"]), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and needle in err, err
