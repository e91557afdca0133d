"""A user's own frames: depth formats and unit checks, hole filling, gathering files, loading a frame."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dsod_depth.errors import KitError
from dsod_depth.geometry import Intrinsics
from dsod_depth.inference.frames import (
    FrameFiles,
    frames_from_folder,
    frames_from_list,
    frames_from_paths,
    load_frame,
    read_depth_file,
    read_rgb,
)

from ..encoders.scenes import Room, render


def _png(path, array):
    """Write ``array`` as an image (a .npy array for a .npy path); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        Image.fromarray(array).save(path)
    return path


def _room_mm(height=96, width=128) -> np.ndarray:
    """uint16 [H, W] millimetres of an analytic room (about 580 distinct values)."""
    camera = Intrinsics(300.0, 300.0, (width - 1) / 2, (height - 1) / 2)
    scene = render(Room(), camera, (height, width), 10.0, 2.0)
    return np.round(scene.depth * 1000).astype(np.uint16)


# --------------------------------------------------------------------------- formats and unit checks


def test_nyu_kinect_frame_is_in_the_documented_range(shared_data):
    metres = read_depth_file(shared_data / "rgbd_samples" / "NYU_depth.pgm", depth_format="nyu-kinect")
    valid = metres[metres > 0]
    assert metres.dtype == np.float32 and metres.shape == (480, 640)
    assert valid.min() == pytest.approx(1.39, abs=0.01) and valid.max() == pytest.approx(6.69, abs=0.01)


def test_sun_png_decodes_with_sun_and_is_refused_as_plain(shared_data):
    path = shared_data / "rgbd_samples" / "SUN_depth.png"
    metres = read_depth_file(path, depth_format="sun")
    assert int((metres == 0).sum()) == 56012
    assert np.median(metres[metres > 0]) == pytest.approx(2.72, abs=0.01)
    with pytest.raises(KitError, match="--depth-format sun"):
        read_depth_file(path)


def test_nyu_demo_file_needs_scale_10000(shared_data):
    path = shared_data / "hha_reference" / "0.png"
    with pytest.raises(KitError, match=r"median depth 29\.4 m .* use --depth-scale 10000 "):
        read_depth_file(path, depth_scale=1000)
    metres = read_depth_file(path, depth_scale=10000)
    assert np.median(metres) == pytest.approx(2.94, abs=0.01)


def test_millimetre_depth_is_not_taken_for_sun(shared_data, tmp_path):
    """The multiple-of-8 check discriminates: real and rendered millimetres pass."""
    filled = np.asarray(Image.open(shared_data / "hha_reference" / "0.png"), dtype=np.float64)
    nyu_mm = _png(tmp_path / "nyu_mm.png", np.round(filled / 10).astype(np.uint16))
    room_mm = _png(tmp_path / "room.png", _room_mm())
    for path in (nyu_mm, room_mm):
        metres = read_depth_file(path)
        assert 0.2 < np.median(metres) < 20
    kinect = read_depth_file(shared_data / "rgbd_samples" / "NYU_depth.pgm", depth_format="nyu-kinect")
    np.save(tmp_path / "kinect_mm.npy", np.round(kinect * 1000).astype(np.int32))
    read_depth_file(tmp_path / "kinect_mm.npy")


def test_multiples_of_8_are_refused_but_few_values_prove_nothing(tmp_path):
    room = _room_mm()
    with pytest.raises(KitError, match="multiples of 8.*--depth-format sun"):
        read_depth_file(_png(tmp_path / "times8.png", (room // 8 * 8).astype(np.uint16)))
    read_depth_file(_png(tmp_path / "flat.png", np.full((8, 8), 2000, np.uint16)))  # one value: no signature


@pytest.mark.parametrize(
    ("stored", "scale", "suggested"),
    [
        (np.full((6, 6), 2.5), 1000.0, "use --depth-scale 1 "),  # metres read as millimetres
        (np.full((6, 6), 2500.0), 1.0, "use --depth-scale 1000 "),  # millimetres read as metres
        (np.full((6, 6), 25000.0), 1.0, "use --depth-scale 10000 "),
        (np.full((6, 6), 50.0), 1.0, "no common scale"),  # 50 m, 5 cm or 5 mm: not depth
    ],
)
def test_implausible_median_suggests_a_scale(tmp_path, stored, scale, suggested):
    np.save(tmp_path / "d.npy", stored)
    with pytest.raises(KitError, match="outside 0.2-20.0 m") as info:
        read_depth_file(tmp_path / "d.npy", depth_scale=scale)
    assert suggested in str(info.value) and "\n" not in str(info.value)


def test_plain_reads_like_read_depth_and_keeps_float64_on_request(tmp_path):
    room = _room_mm()
    path = _png(tmp_path / "room.png", room)
    exact = read_depth_file(path, dtype=np.float64)
    np.testing.assert_array_equal(exact, room / 1000.0)
    assert read_depth_file(path).dtype == np.float32
    zeros = read_depth_file(_png(tmp_path / "zeros.png", np.zeros((4, 4), np.uint16)))
    assert not zeros.any()  # returned as is: the caller that needs depth refuses it


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"depth_format": "kinect"}, "unknown depth format"), ({"depth_scale": 0.0}, "positive number")],
)
def test_bad_format_or_scale(tmp_path, kwargs, message):
    with pytest.raises(KitError, match=message):
        read_depth_file(_png(tmp_path / "d.png", _room_mm()), **kwargs)


def test_negative_depth_is_refused(tmp_path):
    np.save(tmp_path / "d.npy", np.array([[2.0, -1.0], [0.0, 2.5]]))
    with pytest.raises(KitError, match=r"d.npy: negative depth values \(minimum -1\)"):
        read_depth_file(tmp_path / "d.npy", depth_scale=1.0)


# --------------------------------------------------------------------------- gathering frames


def _folder(tmp_path, rgb_names, depth_names, raw_names=None):
    for name in rgb_names:
        _png(tmp_path / "rgb" / name, np.zeros((6, 8, 3), np.uint8))
    for name in depth_names:
        _png(tmp_path / "depth" / name, np.full((6, 8), 2000, np.uint16))
    for name in raw_names or ():
        _png(tmp_path / "raw" / name, np.full((6, 8), 2000, np.uint16))
    return tmp_path


def test_folder_pairs_by_name_in_natural_order_with_intrinsics(tmp_path):
    folder = _folder(tmp_path, ["f10.jpg", "f2.jpg", "f1.jpg"], ["f2.png", "f10.png", "f1.png"])
    (folder / "intrinsics.txt").write_text("500 0 320.5\n0 500 240.5\n0 0 1\n")
    (folder / "depth" / ".DS_Store").write_bytes(b"")  # hidden files are ignored
    frames, camera = frames_from_folder(folder)
    assert [f.depth.name for f in frames] == ["f1.png", "f2.png", "f10.png"]
    assert [f.rgb.name for f in frames] == ["f1.jpg", "f2.jpg", "f10.jpg"]
    assert all(f.raw is None for f in frames)
    assert camera == Intrinsics(500.0, 500.0, 319.5, 239.5)  # 1-based principal point made 0-based


def test_folder_with_raw_and_depth_only(tmp_path):
    frames, camera = frames_from_folder(_folder(tmp_path, [], ["a.png"], ["a.npy"]))
    assert frames == [FrameFiles(None, tmp_path / "depth" / "a.png", tmp_path / "raw" / "a.npy")]
    assert camera is None


def test_folder_names_unpaired_files(tmp_path):
    folder = _folder(tmp_path, [f"{i}.jpg" for i in range(9)], ["0.png", "x.png"])
    with pytest.raises(KitError) as info:
        frames_from_folder(folder)
    message = str(info.value)
    assert "9 file(s) without a partner" in message and "depth/x.png" in message and "rgb/1.jpg" in message
    assert message.endswith(", ...") and "rgb/8.jpg" not in message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "has no depth/ folder"),
        (lambda d: _folder(d, [], ["a.png", "a.npy"]), "have the same name"),
        (lambda d: (d / "depth").mkdir() or d, "holds no file"),
    ],
)
def test_folder_errors(tmp_path, make, message):
    with pytest.raises(KitError, match=message):
        frames_from_folder(make(tmp_path))


def test_list_resolves_paths_against_its_folder(tmp_path):
    _folder(tmp_path / "data", ["a.jpg"], ["a.png", "b.png"], ["a.png"])
    (tmp_path / "data" / "my frames").mkdir()
    _png(tmp_path / "data" / "my frames" / "c.png", np.full((6, 8), 2000, np.uint16))
    list_file = tmp_path / "data" / "frames.txt"
    list_file.write_text(
        "# rgb depth [raw]\n\nrgb/a.jpg depth/a.png raw/a.png  # with raw\n"
        f"- {tmp_path}/data/depth/b.png\n- 'my frames/c.png'\n"
    )
    frames, camera = frames_from_list(list_file)
    data = tmp_path / "data"
    assert frames == [
        FrameFiles(data / "rgb" / "a.jpg", data / "depth" / "a.png", data / "raw" / "a.png"),
        FrameFiles(None, data / "depth" / "b.png", None),
        FrameFiles(None, data / "my frames" / "c.png", None),
    ]
    assert camera is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# header\nrgb.jpg\n", r"frames.txt, line 2: expected 'RGB DEPTH \[RAW\]'"),
        ("a b c d\n", "line 1: expected"),
        ("'a.jpg b.png\n", "line 1: No closing quotation"),
        ("- missing.png\n", r"depth file not found: .*missing.png \(.*frames.txt, line 1\)"),
        ("# nothing\n\n", "lists no frame"),
    ],
)
def test_list_errors_name_the_line(tmp_path, text, message):
    (tmp_path / "frames.txt").write_text(text)
    with pytest.raises(KitError, match=message):
        frames_from_list(tmp_path / "frames.txt")


def test_paths_match_by_position_and_counts_must_agree(tmp_path):
    folder = _folder(tmp_path, ["a.jpg", "b.jpg"], ["a.png", "b.png"], ["a.png", "b.png"])
    rgb = [folder / "rgb" / "a.jpg", folder / "rgb" / "b.jpg"]
    depth = [folder / "depth" / "a.png", folder / "depth" / "b.png"]
    raw = [folder / "raw" / "a.png", folder / "raw" / "b.png"]
    frames, camera = frames_from_paths(rgb, depth, raw)
    assert frames[1] == FrameFiles(rgb[1], depth[1], raw[1]) and camera is None
    assert frames_from_paths([], depth)[0][0] == FrameFiles(None, depth[0], None)
    with pytest.raises(KitError, match="got 1 --rgb and 2 --depth"):
        frames_from_paths(rgb[:1], depth)
    with pytest.raises(KitError, match="got 1 --raw and 2 --depth"):
        frames_from_paths(rgb, depth, raw[:1])
    with pytest.raises(KitError, match="no depth image given"):
        frames_from_paths(rgb, [])
    with pytest.raises(KitError, match="rgb file not found: .*c.jpg"):
        frames_from_paths([folder / "c.jpg"], depth[:1])


# --------------------------------------------------------------------------- loading a frame

MM_2000 = np.full((6, 8), 2000, np.uint16)


def test_load_real_nyu_frame_fills_its_holes(shared_data):
    samples = shared_data / "rgbd_samples"
    files = FrameFiles(samples / "NYU_color.ppm", samples / "NYU_depth.pgm")
    rgb, depth, raw = load_frame(files, depth_format="nyu-kinect")
    assert rgb.dtype == np.uint8 and rgb.shape == (480, 640, 3)
    assert depth.dtype == raw.dtype == np.float32
    assert (raw == 0).any() and (depth > 0).all()
    np.testing.assert_array_equal(depth[raw > 0], raw[raw > 0])


def test_load_depth_and_raw_are_taken_as_they_are(tmp_path):
    room = _room_mm()
    holed = room.copy()
    holed[10:20, 30:40] = 0
    _png(tmp_path / "rgb.png", np.zeros((*room.shape, 3), np.uint8))
    both = FrameFiles(tmp_path / "rgb.png", _png(tmp_path / "d.png", holed), _png(tmp_path / "r.png", room))
    _, depth, raw = load_frame(both)
    np.testing.assert_array_equal(depth, holed / np.float32(1000))  # the "filled" file is not filled again
    np.testing.assert_array_equal(raw, room / np.float32(1000))
    _, depth, raw = load_frame(FrameFiles(None, both.depth), fill=False)
    assert depth is raw and (depth == 0).any()
    _, depth, raw = load_frame(FrameFiles(None, both.raw))
    assert depth is raw and (depth > 0).all()


def test_load_greyscale_rgb_becomes_three_channels(tmp_path):
    grey = _png(tmp_path / "grey.png", np.arange(48, dtype=np.uint8).reshape(6, 8))
    rgb, _, _ = load_frame(FrameFiles(grey, _png(tmp_path / "d.png", np.full((6, 8), 2000, np.uint16))))
    assert rgb.shape == (6, 8, 3) and (rgb[..., 2] == np.arange(48).reshape(6, 8)).all()


@pytest.mark.parametrize(
    ("rgb", "depth", "message"),
    [
        (np.zeros((6, 9, 3), np.uint8), MM_2000, r"rgb.png is 9x6 but .*d.png is 8x6"),
        (np.zeros((6, 8, 3), np.uint8), np.full((6, 8), 200, np.uint8), "is an 8-bit image"),
        (np.zeros((6, 8, 3), np.uint8), np.zeros((6, 8, 3), np.uint8), "is a colour image"),
        (np.zeros((6, 8, 3), np.uint8), np.zeros((6, 8), np.uint16), "no valid depth pixel"),
        (np.full((6, 8), 2000, np.uint16), np.full((6, 8), 2000, np.uint16), "not a colour image"),
    ],
)
def test_load_errors(tmp_path, rgb, depth, message):
    files = FrameFiles(_png(tmp_path / "rgb.png", rgb), _png(tmp_path / "d.png", depth))
    with pytest.raises(KitError, match=message):
        load_frame(files)


def test_read_rgb_errors_name_the_file(tmp_path):
    with pytest.raises(KitError, match="rgb file not found: .*none.jpg"):
        read_rgb(tmp_path / "none.jpg")
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(KitError, match="notes.jpg is not a readable image"):
        read_rgb(tmp_path / "notes.jpg")


def test_load_raw_of_another_size_is_refused(tmp_path):
    depth = _png(tmp_path / "d.png", np.full((6, 8), 2000, np.uint16))
    raw = _png(tmp_path / "r.png", np.full((6, 7), 2000, np.uint16))
    with pytest.raises(KitError, match=r"d.png is 8x6 but .*r.png is 7x6"):
        load_frame(FrameFiles(None, depth, raw))
