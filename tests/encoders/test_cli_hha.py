"""``dsod-depth hha``: writes the HHA PNG atomically; user errors are one line and exit code 2."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dsod_depth.cli import main
from dsod_depth.data.depth_io import read_nyu_raw_depth, read_sun_depth
from dsod_depth.encoders import hha_image
from dsod_depth.geometry import Intrinsics

from .scenes import Room, render

CAM = Intrinsics(300.0, 300.0, 63.5, 47.5)


@pytest.fixture
def depth_png(tmp_path):
    """A 16-bit PNG in millimetres of an analytic room, and its depth in metres."""
    scene = render(Room(), CAM, (96, 128), 10.0, 2.0)
    mm = np.round(scene.depth * 1000).astype(np.uint16)
    path = tmp_path / "depth.png"
    Image.fromarray(mm).save(path)
    return path, mm / 1000.0


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_writes_the_same_image_as_the_library(tmp_path, depth_png, capsys):
    path, depth = depth_png
    raw = np.where(np.arange(128) % 9 == 0, 0, np.round(depth * 1000)).astype(np.uint16)
    raw_path = tmp_path / "raw.npy"
    np.save(raw_path, raw)
    out = tmp_path / "hha.png"
    argv = [str(path), "--raw", str(raw_path), "--depth-scale", "1000", "--camera", "300,300,63.5,47.5"]
    assert main(["hha", *argv, "--out", str(out)]) == 0
    assert "written to" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.mode == "RGB"
        written = np.asarray(im)
    np.testing.assert_array_equal(written, hha_image(depth, raw / 1000.0, CAM))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.png", "hha.png", "raw.npy"]  # no temp left


def test_reproduces_the_matlab_reference_file(shared_data, tmp_path):
    out = tmp_path / "hha.png"
    ref = shared_data / "hha_reference"
    argv = ["hha", str(ref / "0.png"), "--depth-scale", "10000", "--camera", "nyu", "--out", str(out)]
    assert main(argv) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(ref / "matlab_hha.png")))


def _write(tmp_path, name, array):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize(
    ("make", "camera", "message"),
    [
        (lambda d: d / "missing.png", "nyu", "not found"),
        (lambda d: _write(d, "gray8.png", np.full((8, 8), 100, np.uint8)), "nyu", "8-bit image"),
        (lambda d: _write(d, "rgb.png", np.zeros((8, 8, 3), np.uint8)), "nyu", "colour image"),
        (lambda d: _write(d, "zeros.png", np.zeros((8, 8), np.uint16)), "nyu", "no valid pixel"),
        (lambda d: _write(d, "ok.png", np.full((8, 8), 2000, np.uint16)), "1,2,3", "FX,FY,CX,CY"),
        (lambda d: _write(d, "ok.png", np.full((8, 8), 2000, np.uint16)), "0,1,2,3", "positive"),
    ],
)
def test_user_errors_exit_2_with_one_line_and_no_output(tmp_path, capsys, make, camera, message):
    depth = make(tmp_path)
    out = tmp_path / "out.png"
    code = main(["hha", str(depth), "--depth-scale", "1000", "--camera", camera, "--out", str(out)])
    assert code == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.png")]


def test_missing_output_folder_and_missing_required_option(depth_png, tmp_path, capsys):
    path, _ = depth_png
    out = tmp_path / "no" / "such" / "hha.png"
    assert main(["hha", str(path), "--depth-scale", "1000", "--camera", "nyu", "--out", str(out)]) == 2
    assert "output folder does not exist" in _one_error_line(capsys)
    with pytest.raises(SystemExit) as exit_info:
        main(["hha", str(path), "--out", str(out)])
    assert exit_info.value.code == 2
    assert "--camera" in _one_error_line(capsys)


def test_depth_scale_defaults_to_millimetres(tmp_path, depth_png):
    path, _ = depth_png
    outs = [tmp_path / "default.png", tmp_path / "explicit.png"]
    assert main(["hha", str(path), "--camera", "300,300,63.5,47.5", "--out", str(outs[0])]) == 0
    argv = [str(path), "--depth-format", "plain", "--depth-scale", "1000", "--camera", "300,300,63.5,47.5"]
    assert main(["hha", *argv, "--out", str(outs[1])]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(outs[0])), np.asarray(Image.open(outs[1])))


@pytest.mark.parametrize(
    ("name", "depth_format", "read"),
    [("SUN_depth.png", "sun", read_sun_depth), ("NYU_depth.pgm", "nyu-kinect", read_nyu_raw_depth)],
)
def test_sensor_formats_on_real_frames(shared_data, tmp_path, name, depth_format, read):
    depth = shared_data / "rgbd_samples" / name
    out = tmp_path / "hha.png"
    argv = ["hha", str(depth), "--depth-format", depth_format, "--camera", "nyu", "--out", str(out)]
    assert main(argv) == 0
    expected = hha_image(read(depth), None, Intrinsics.nyu())
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rgbd_samples/SUN_depth.png"], "--depth-format sun"),  # plain is the default
        (["hha_reference/0.png"], "use --depth-scale 10000"),  # 1000 is the default
        (["rgbd_samples/SUN_depth.png", "--depth-format", "sun", "--depth-scale", "1000"], "plain only"),
    ],
)
def test_wrong_units_exit_2_with_one_line(shared_data, tmp_path, capsys, args, message):
    out = tmp_path / "hha.png"
    argv = ["hha", str(shared_data / args[0]), *args[1:], "--camera", "nyu", "--out", str(out)]
    assert main(argv) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()
