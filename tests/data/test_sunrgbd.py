"""SUN RGB-D: names → classes, polygons → boxes (malformed polygons dropped, not their frame), tree
walk, split matching, depth, the prepare command and its summary."""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat

from dsod_depth.cli import main
from dsod_depth.data import sunrgbd
from dsod_depth.data.store import load_prepared
from dsod_depth.data.sunrgbd_annotations import (
    CLASSES,
    MIXED_REASONS,
    POLYGON_REASONS,
    MalformedFrame,
    detection_class,
    normalise_name,
    polygon_boxes,
)
from dsod_depth.errors import KitError

from .fixtures_sun import build_sun_source, write_depth_png


@pytest.fixture(scope="module")
def sun_source(tmp_path_factory):
    return build_sun_source(tmp_path_factory.mktemp("sun"))


def _named(boxes, labels):
    return sorted((b.tolist(), CLASSES[k]) for b, k in zip(boxes, labels))


def _scan(root):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = sunrgbd.scan_sunrgbd(root, root / "allsplit.mat")
    return scan, [str(w.message) for w in caught]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Chair", "chair"), ("office_chair", "chair"), ("chairs", "chair"), ("chair:2", "chair"),
        ("chair2", "chair"), ("chair cushion", None), ("night_stand", "night_stand"),
        ("Nightstand", "night_stand"), ("bedside table", "night_stand"), ("coffee-table", "table"),
        ("tables", "table"), ("table lamp", "lamp"), ("Garbage_Bin", "garbage_bin"),
        ("trash can", "garbage_bin"), ("recycle bin", "garbage_bin"), ("TV", "tv"), ("television", "tv"),
        ("tv stand", None), ("couch", "sofa"), ("sofa chair", "chair"), ("bookshelves", "bookshelf"),
        ("book shelf", "bookshelf"), ("shelves", None), ("boxes", "box"), ("tissue box", "box"),
        ("cabinet door", None), ("glass door", "door"), ("computer monitor", "monitor"),
        ("toilet paper", None), ("kitchen sink", "sink"), ("bath tub", "bathtub"), ("wall", None),
        ("", None), ("  123 ", None),
    ],
)  # fmt: skip
def test_free_text_names_map_onto_the_19_classes(name, expected):
    got = detection_class(name)
    assert (None if got is None else CLASSES[got]) == expected


def test_class_list_matches_the_toolbox(shared_data):
    mat = loadmat(shared_data / "sunrgbd_meta" / "dection19list.mat")  # (sic): the toolbox's file name
    listed = [str(n[0]) for n in mat["dection19list"].ravel()]
    assert list(CLASSES) == listed


def test_normalise_name():
    assert normalise_name("  Office_Chair-2 ") == "office chair"
    assert normalise_name("night.stand (left)") == "night stand left"


def test_split_key_ignores_prefix_and_trailing_slash():
    assert sunrgbd.split_key("/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001/") == "kv1/NYUdata/NYU0001"
    assert sunrgbd.split_key("/data1/SUNRGBD/kv1/NYUdata/NYU0001") == "kv1/NYUdata/NYU0001"


def test_real_split_file_gives_5285_and_5050(shared_data):
    keys = sunrgbd.read_split_file(shared_data / "sunrgbd_meta" / "allsplit.mat")
    assert Counter(keys.values()) == {"train": 5285, "test": 5050}
    assert keys["kv2/kinect2data/000065_2014-05-16_20-14-38_260595134347_rgbf000121-resize"] == "train"
    with_val = sunrgbd.read_split_file(shared_data / "sunrgbd_meta" / "allsplit.mat", with_val=True)
    assert Counter(with_val.values()) == {"train": 2666, "val": 2619, "test": 5050}
    # The NYU frames of SUN RGB-D keep NYU's official split (cross-check with splits.mat).
    nyu = loadmat(shared_data / "nyudv2_meta" / "splits.mat")
    train = sorted(int(k[-4:]) for k, s in keys.items() if k.startswith("kv1/NYUdata/") and s == "train")
    assert train == sorted(nyu["trainNdxs"].ravel().tolist())


def test_polygon_boxes_union_and_clamp(tmp_path):
    f = tmp_path / "index.json"
    doc = {
        "objects": [{"name": "bed"}, {"name": "pillow"}, None],
        "frames": [{"polygon": [
            {"x": [1, 4], "y": [2, 3], "object": 0}, {"x": [10, 12], "y": [0.5, 1.5], "object": 0},
            {"x": [-3, 50], "y": [8, 9], "object": 1}, {"x": [0, 1], "y": [0, 1], "object": 2},
        ]}],
    }  # fmt: skip
    found = polygon_boxes(doc, 20, 10, f)
    assert found.boxes.tolist() == [[1.0, 0.5, 12.0, 3.0], [0.0, 8.0, 20.0, 9.0]]
    assert [CLASSES[k] for k in found.labels] == ["bed", "pillow"]
    assert found.dropped_polygons == [] and found.dropped_objects == []
    empty = polygon_boxes({"objects": [], "frames": [{}]}, 20, 10, f)
    assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,)


GOOD = {"x": [2, 6, 4], "y": [1, 1, 5], "object": 0}  # box [2, 1, 6, 5] in a 20×10 image
BAD_POLYGONS = [
    ("not a JSON object", [1, 2]),
    ("object index not in objects", {"x": [1, 2], "y": [1, 2], "object": 7}),
    ("object index not in objects", {"x": [1, 2], "y": [1, 2], "object": "0"}),
    ("object index not in objects", {"x": [1, 2], "y": [1, 2], "object": True}),
    ("object index not in objects", {"x": [1, 2], "y": [1, 2]}),
    ("x/y not lists", {"x": 3, "y": [1, 2], "object": 0}),
    ("x/y not lists", {"x": [1, 2], "y": 4.5, "object": 0}),
    ("x/y not lists", {"y": [1, 2], "object": 0}),
    ("x/y lengths differ", {"x": [1, 2], "y": [1], "object": 0}),
    ("non-numeric coordinates", {"x": [1, "a"], "y": [1, 2], "object": 0}),
    ("non-numeric coordinates", {"x": [1, None], "y": [1, 2], "object": 0}),
    ("non-numeric coordinates", {"x": [1, 2], "y": [True, 2], "object": 0}),
    ("non-numeric coordinates", {"x": [[1], [2]], "y": [1, 2], "object": 0}),
    ("non-finite coordinates", {"x": [1, float("nan")], "y": [1, 2], "object": 0}),
    ("non-finite coordinates", {"x": [1, 2], "y": [float("-inf"), 2], "object": 0}),
    ("non-finite coordinates", {"x": [1, 10**400], "y": [1, 2], "object": 0}),
    ("fewer than 2 distinct points", {"x": [], "y": [], "object": 0}),
    ("fewer than 2 distinct points", {"x": [3, 3, 3], "y": [4, 4, 4], "object": 0}),
    ("zero area in the image", {"x": [1, 9], "y": [2, 2], "object": 0}),  # a line
    ("zero area in the image", {"x": [25, 30], "y": [1, 5], "object": 0}),  # right of the image
    ("zero area in the image", {"x": [1, 5], "y": [-8, 0], "object": 0}),  # above it, touching its edge
]


def test_every_reason_is_tested():
    assert {reason for reason, _ in BAD_POLYGONS} == set(POLYGON_REASONS)


@pytest.mark.parametrize(("reason", "polygon"), BAD_POLYGONS)
def test_malformed_polygon_is_dropped_and_its_object_keeps_its_valid_polygons(tmp_path, reason, polygon):
    doc = {"objects": [{"name": "bed"}, {"name": "lamp"}],
           "frames": [{"polygon": [{"x": [10, 15], "y": [2, 8], "object": 1}, polygon, GOOD]}]}  # fmt: skip
    found = polygon_boxes(doc, 20, 10, tmp_path / "index.json")
    bed, lamp = ([2.0, 1.0, 6.0, 5.0], "bed"), ([10.0, 2.0, 15.0, 8.0], "lamp")
    assert _named(found.boxes, found.labels) == [bed, lamp]  # the bed keeps its valid polygon
    assert [(d.index, d.reason) for d in found.dropped_polygons] == [(1, reason)]
    assert found.dropped_objects == []


@pytest.mark.parametrize(("reason", "polygon"), [c for c in BAD_POLYGONS if c[0] not in POLYGON_REASONS[:2]])
def test_object_without_a_valid_polygon_is_dropped_the_others_kept(tmp_path, reason, polygon):
    doc = {"objects": [{"name": "bed"}, {"name": "lamp"}],
           "frames": [{"polygon": [polygon, {"x": [10, 15], "y": [2, 8], "object": 1}]}]}  # fmt: skip
    found = polygon_boxes(doc, 20, 10, tmp_path / "index.json")
    assert _named(found.boxes, found.labels) == [([10.0, 2.0, 15.0, 8.0], "lamp")]
    assert [(d.index, d.reason) for d in found.dropped_polygons] == [(0, reason)]
    assert [(d.index, d.reason) for d in found.dropped_objects] == [(0, reason)]
    assert "'bed'" in found.dropped_objects[0].detail


def test_object_whose_polygons_fail_for_different_reasons(tmp_path):
    polygons = [{"x": 1, "y": [1], "object": 0}, {"x": [1, 1], "y": [2, 2], "object": 0}]
    doc = {"objects": [{"name": "sofa"}], "frames": [{"polygon": polygons}]}
    found = polygon_boxes(doc, 20, 10, tmp_path / "index.json")
    assert found.boxes.shape == (0, 4)
    assert [d.reason for d in found.dropped_polygons] == ["x/y not lists", "fewer than 2 distinct points"]
    assert [(d.index, d.reason) for d in found.dropped_objects] == [(0, MIXED_REASONS)]


def test_polygons_of_deleted_and_unmapped_objects_are_not_checked(tmp_path):
    polygon = [{"x": 1, "y": 2, "object": 0}, {"x": 1, "y": 2, "object": 1}, {"x": 1, "y": 2, "object": 2},
               {"x": [1, 5], "y": [1, 5], "object": 2}]  # fmt: skip
    doc = {"objects": [None, {}, {"name": "Wall"}], "frames": [{"polygon": polygon}]}
    unmapped = Counter()
    found = polygon_boxes(doc, 20, 10, tmp_path / "index.json", unmapped)
    assert found.boxes.shape == (0, 4) and found.dropped_polygons == [] and found.dropped_objects == []
    assert unmapped == {"wall": 1}  # once per object


@pytest.mark.parametrize(
    "doc",
    [{"objects": {}, "frames": []}, {"objects": [], "frames": {}}, {"frames": []},
     {"objects": [], "frames": [[]]}, {"objects": [], "frames": [{"polygon": {}}]}],
)  # fmt: skip
def test_unusable_top_level_structure_is_a_malformed_frame(tmp_path, doc):
    with pytest.raises(MalformedFrame, match="index.json"):
        polygon_boxes(doc, 20, 10, tmp_path / "index.json")


def test_scan_finds_frames_of_every_sensor_and_skips_unreadable_ones(sun_source):
    root, specs = sun_source
    scan, messages = _scan(root)
    good = {s.key: s for s in specs if s.split and not s.broken}
    assert {n: [f.key for f in frames] for n, frames in scan.frames.items()} == {
        "train": sorted(k for k, s in good.items() if s.split == "train"),
        "test": sorted(k for k, s in good.items() if s.split == "test"),
    }
    assert scan.skipped == {
        "frames with a missing or unreadable file (named below)": 3,
        "frame folders not in the split file": 1,
        "split-file frames not found under --source": 1,
    }
    skips = [m for m in messages if m.startswith("skipping SUN RGB-D frame")]
    assert len(skips) == 3
    named = {"bad_json": "index.json: invalid JSON", "no_intrinsics": "intrinsics.txt: missing",
             "objects_not_list": "index.json: missing 'objects'"}  # fmt: skip
    for broken, file in named.items():
        spec = next(s for s in specs if s.broken == broken)
        assert any(spec.key in m and file in m for m in skips), (broken, skips)
        names = [m for m in scan.skipped_frames if m.startswith(f"{spec.key}/") and file in m]
        assert len(names) == 1, scan.skipped_frames
    for frame in (f for frames in scan.frames.values() for f in frames):
        spec = good[frame.key]
        assert (frame.width, frame.height) == (spec.width, spec.height)
        assert frame.intrinsics == (529.5, 529.5, 364.0, 264.0)  # 1-based principal point → 0-based
        assert _named(frame.boxes, frame.labels) == sorted(spec.expected)
        assert [(d.index, d.reason) for d in frame.dropped_polygons] == spec.dropped_polygons
        assert [(d.index, d.reason) for d in frame.dropped_objects] == spec.dropped_objects
        assert (frame.depth_filled is not None) == (spec.bfx_mm is not None)
    assert scan.unmapped_names["wall"] == 2


def test_scan_drops_malformed_polygons_keeps_their_frame_and_counts_by_reason(sun_source):
    root, specs = sun_source
    scan, messages = _scan(root)
    spec = next(s for s in specs if s.key.startswith("kv2/align_kv2/"))
    frame = next(f for f in scan.frames["train"] if f.key == spec.key)  # kept, with exactly its valid boxes
    chair, lamp = ([5.0, 10.0, 25.0, 30.0], "chair"), ([40.0, 5.0, 50.0, 20.0], "lamp")
    assert _named(frame.boxes, frame.labels) == [chair, lamp]  # the desk is dropped, the lamp keeps a polygon
    polygons = {"x/y not lists": 1, "non-finite coordinates": 1, "zero area in the image": 1}
    assert scan.dropped_polygons == polygons
    assert scan.dropped_objects == {"x/y not lists": 1, "zero area in the image": 1}
    # One warning per dropped polygon naming the file, the polygon and the reason; one per dropped object.
    file = f"{spec.key}/annotation2Dfinal/index.json"
    assert sum(file in m and "polygon 0: x/y not lists" in m for m in messages) == 1
    assert sum(file in m and "polygon 2: non-finite coordinates" in m for m in messages) == 1
    assert sum(file in m and "object 0: x/y not lists ('desk'" in m for m in messages) == 1
    assert len([m for m in messages if m.startswith("dropping a SUN RGB-D polygon")]) == 3
    assert len([m for m in messages if m.startswith("dropping a SUN RGB-D object")]) == 2


def test_scan_counts_frames_kept_and_listed_per_split(sun_source):
    root, specs = sun_source
    scan, _ = _scan(root)
    # train: 4 listed, 1 without intrinsics; test: 5 listed, 2 unreadable, 1 not downloaded.
    assert scan.listed == {"train": 4, "test": 5}
    assert {split: len(frames) for split, frames in scan.frames.items()} == {"train": 3, "test": 2}
    for split in ("train", "test"):
        skipped = sum(s.split == split and s.broken is not None for s in specs)
        missing = 1 if split == "test" else 0
        assert len(scan.frames[split]) + skipped + missing == scan.listed[split]


def test_frames_decode_depth_like_the_toolbox(sun_source):
    root, specs = sun_source
    scan, _ = _scan(root)
    reader = sunrgbd.SunFrames(scan.frames["train"] + scan.frames["test"])
    for i, frame in enumerate(reader.frames):
        spec = next(s for s in specs if s.key == frame.key)
        sample = reader(i)
        assert sample.image_id == frame.key and sample.rgb.shape == (spec.height, spec.width, 3)
        expected_raw = np.minimum(spec.raw_mm / 1000.0, 8.0)  # rotate back, /1000, clip at 8 m
        np.testing.assert_allclose(sample.raw_depth, expected_raw, rtol=0, atol=1e-6)
        filled = spec.bfx_mm if spec.bfx_mm is not None else spec.raw_mm
        np.testing.assert_allclose(sample.depth, np.minimum(filled / 1000.0, 8.0), rtol=0, atol=1e-6)
        assert sample.depth.max() == np.float32(8.0)


def test_real_sun_frame_depth(shared_data, tmp_path):
    """The real SUN depth PNG through the frame reader: 56,012 holes, median 2.72 m over valid pixels."""
    folder = tmp_path / "SUNRGBD" / "kv1" / "b3dodata" / "img_0001"
    for sub, name in (("image", "SUN_color.jpg"), ("depth", "SUN_depth.png")):
        (folder / sub).mkdir(parents=True)
        shutil.copy(shared_data / "rgbd_samples" / name, folder / sub / name)
    (folder / "intrinsics.txt").write_text("529.5 0 365\n0 529.5 265\n0 0 1\n")
    (folder / "annotation2Dfinal").mkdir()
    (folder / "annotation2Dfinal" / "index.json").write_text('{"objects": [], "frames": [{"polygon": []}]}')
    frame = sunrgbd.parse_frame(folder, "kv1/b3dodata/img_0001")
    sample = sunrgbd.SunFrames([frame])(0)
    assert (sample.width, sample.height) == (640, 480)
    assert int((sample.raw_depth == 0).sum()) == 56012
    assert float(np.median(sample.raw_depth[sample.raw_depth > 0])) == pytest.approx(2.72, abs=0.01)
    assert sample.raw_depth.max() <= 8.0


def test_prepare_command_summary_warnings_and_store(sun_source, tmp_path, capsys):
    root, specs = sun_source
    out = tmp_path / "store"
    assert main(["prepare", "sunrgbd", "--source", str(root), "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    frame_rows = [line.split() for line in lines if line.startswith("frames")]
    assert frame_rows == [["frames", "3", "2"], ["frames", "listed", "4", "5"]]  # kept vs listed per split
    polygons = "dropped polygons: 3 (1 non-finite coordinates, 1 x/y not lists, 1 zero area in the image)"
    assert polygons in lines
    assert "dropped objects (no valid polygon): 2 (1 x/y not lists, 1 zero area in the image)" in lines
    assert "skipped: 3 frames with a missing or unreadable file (named below)" in lines
    assert "skipped: 1 frame folders not in the split file" in lines
    bad_json = next(s for s in specs if s.broken == "bad_json")
    assert any(line.startswith(f"skipped frame: {bad_json.key}/annotation2Dfinal/index.json: invalid JSON")
               for line in lines)  # fmt: skip
    assert captured.err.count("warning: skipping SUN RGB-D frame") == 3
    assert captured.err.count("warning: dropping a SUN RGB-D polygon") == 3
    train, names = load_prepared(out, "train")
    test, _ = load_prepared(out, "test")
    assert names == list(CLASSES) and len(train) == 3 and len(test) == 2
    by_key = {s.key: s for s in specs}
    for sample in [*train, *test]:
        spec = by_key[sample.image_id]
        assert sample.rgb.shape == (spec.height, spec.width, 3)  # padded in the file, cropped on read
        assert _named(sample.boxes, sample.labels) == sorted(spec.expected)
        np.testing.assert_array_equal(sample.raw_depth == 0, spec.raw_mm == 0)
        assert sample.hha is not None and sample.hha.shape == (spec.height, spec.width, 3)
    # Resumable / idempotent: the same command keeps the finished files.
    mtime = (out / "test.h5").stat().st_mtime_ns
    assert main(["prepare", "sunrgbd", "--source", str(root), "--out", str(out), "--no-progress"]) == 0
    assert (out / "test.h5").stat().st_mtime_ns == mtime


def test_prepare_with_val_split(sun_source, tmp_path, capsys):
    root, _ = sun_source
    out = tmp_path / "store"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = sunrgbd.prepare_sunrgbd(root, out, with_val=True, progress=False, with_hha=False)
    assert sorted(report.files) == ["test", "train", "val"]
    assert report.listed["val"] >= 1 and report.notes[0].startswith("most frequent names outside")
    assert len(load_prepared(out, "train")[0]) == 2 and len(load_prepared(out, "val")[0]) == 1


@pytest.mark.parametrize("damage", ["truncated", "missing", "not_mat"])
def test_bad_split_file_exits_2_with_one_line_and_no_store(sun_source, tmp_path, capsys, damage):
    root, _ = sun_source
    split = tmp_path / "allsplit.mat"
    data = (root / "allsplit.mat").read_bytes()
    if damage == "truncated":
        split.write_bytes(data[: len(data) // 2])
    elif damage == "not_mat":
        split.write_text("alltrain alltest\n")
    out = tmp_path / "store"
    argv = ["prepare", "sunrgbd", "--source", str(root), "--out", str(out), "--split-file", str(split)]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "allsplit.mat" in err
    assert not out.exists()


def test_unreadable_depth_png_names_the_file(tmp_path, sun_source):
    root, _ = sun_source
    scan, _ = _scan(root)
    frame = scan.frames["train"][0]
    copy = tmp_path / "depth.png"
    copy.write_bytes(Path(frame.depth).read_bytes()[:60])
    broken = sunrgbd.SunFrame(**{**frame.__dict__, "depth": str(copy)})
    with pytest.raises(KitError, match="depth.png"):
        sunrgbd.SunFrames([broken])(0)


def test_depth_png_of_8_bits_is_a_malformed_frame(tmp_path, sun_source):
    root, specs = sun_source
    spec = next(s for s in specs if s.key.startswith("realsense/lg"))
    folder = tmp_path / "frame"
    shutil.copytree(root / spec.key, folder)
    depth = next((folder / "depth").glob("*.png"))
    from PIL import Image

    Image.fromarray(np.zeros((spec.height, spec.width), np.uint8)).save(depth)
    with pytest.raises(MalformedFrame, match="16-bit"):
        sunrgbd.parse_frame(folder, spec.key)
    write_depth_png(depth, spec.raw_mm[:10])
    with pytest.raises(MalformedFrame, match="sizes differ"):
        sunrgbd.parse_frame(folder, spec.key)


def test_documented_mapping_table_equals_the_code():
    from dsod_depth.data.sunrgbd_annotations import EXACT, HEADS

    readme = Path(__file__).resolve().parents[2] / "datasets" / "sunrgbd" / "README.md"
    rows = {}
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (cells[0] in CLASSES or cells[0] == "(none of the 19)"):
            split = [set() if c == "–" else {n.strip() for n in c.split(",")} for c in cells[1:]]
            rows[None if cells[0].startswith("(") else cells[0]] = split
    for cls in (*CLASSES, None):
        heads = {h for h, t in HEADS.items() if t == cls}
        exact = {n for n, t in EXACT.items() if t == cls}
        assert rows[cls] == [heads, exact], cls


def test_summary_names_at_most_20_skipped_frames():
    from dsod_depth.data.summary import PrepareReport, format_summary

    counts = {"train": {"frames": 2, "boxes": np.array([1, 0]), "difficult": np.zeros(2, dtype=np.int64),
                        "class_names": ["a", "b"]}}  # fmt: skip
    names = [f"kv1/f{i}/intrinsics.txt: missing" for i in range(25)]
    lines = format_summary(counts, PrepareReport(listed={"train": 27}, skipped_frames=names)).splitlines()
    frame_rows = [line.split() for line in lines if line.startswith("frames")]
    assert frame_rows == [["frames", "2"], ["frames", "listed", "27"]]
    named = [line.removeprefix("skipped frame: ") for line in lines if line.startswith("skipped frame: kv1/")]
    assert named == names[:20]
    assert lines[-1] == "skipped frame: ... and 5 more, each named in a warning"
