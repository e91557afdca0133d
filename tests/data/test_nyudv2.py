"""NYU Depth v2: v7.3 reading through h5py, objects → boxes, crops, splits, the prepare command."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from scipy.io import loadmat
from scipy.io.matlab import matfile_version

from dsod_depth.cli import main
from dsod_depth.data import nyudv2
from dsod_depth.data.store import load_prepared
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics

from .fixtures_nyu import REAL_IDS, build_nyu_source, fixture_names, write_labeled_mat

LABELED = "nyu_depth_v2_labeled.mat"


@pytest.fixture(scope="module")
def nyu_source(tmp_path_factory):
    return build_nyu_source(tmp_path_factory.mktemp("nyu") / "source")


def _expected_boxes(objects, crop):
    """Boxes from the painted rectangles alone: clip each part to the crop, shift, take the union."""
    r0, r1, c0, c1 = nyudv2.CROPS[crop]
    ids = nyudv2.class_ids_from_names(fixture_names()).tolist()
    found = []
    for (label, _instance), rects in sorted(objects.items()):
        if label not in ids:
            continue
        parts = [(max(a, r0) - r0, min(b, r1) - r0, max(c, c0) - c0, min(d, c1) - c0) for a, b, c, d in rects]
        parts = [p for p in parts if p[0] < p[1] and p[2] < p[3]]
        if parts:
            box = [min(p[2] for p in parts), min(p[0] for p in parts), max(p[3] for p in parts),
                   max(p[1] for p in parts)]  # fmt: skip
            found.append((box, ids.index(label)))
    return found


def _slow_boxes(labels, instances, class_ids):
    """Independent reference: one np.nonzero per (label, instance) pair."""
    out = []
    for k, cid in enumerate(class_ids):
        for inst in np.unique(instances[labels == cid]):
            rows, cols = np.nonzero((labels == cid) & (instances == inst))
            out.append(([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], k))
    return out


def test_fixture_is_a_matlab_v73_file(nyu_source):
    source, _ = nyu_source
    path = source / LABELED
    assert matfile_version(str(path)) == (2, 0)  # what scipy reports for MATLAB v7.3
    assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with pytest.raises(NotImplementedError):  # scipy refuses v7.3 like it does the real file
        loadmat(str(path))
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512 and f["images"].shape == (5, 3, 640, 480)
        assert f["names"].dtype == h5py.ref_dtype


def test_header_decodes_names_and_checks_layout(nyu_source):
    source, _ = nyu_source
    num_frames, names = nyudv2.read_labeled_header(source / LABELED)
    assert num_frames == 5 and names == fixture_names()
    assert nyudv2.class_ids_from_names(names).tolist() == list(REAL_IDS.values())


def test_class_ids_from_the_real_894_names(shared_data):
    mapping = loadmat(shared_data / "nyudv2_meta" / "classMapping40.mat")
    names = [str(n[0]) for n in mapping["allClassName"].ravel()]
    assert len(names) == 894
    ids = nyudv2.class_ids_from_names(names)
    assert ids.tolist() == [136, 157, 88, 26, 5, 7, 36, 28, 169, 12, 144, 49, 158, 119, 24, 83, 19, 172, 124]


def test_real_splits_are_795_and_654(shared_data):
    splits = nyudv2.read_splits(shared_data / "nyudv2_meta" / "splits.mat", 1449)
    assert len(splits["train"]) == 795 and len(splits["test"]) == 654
    both = np.concatenate([splits["train"], splits["test"]])
    assert np.array_equal(np.sort(both), np.arange(1449))  # 1-based → 0-based covers every frame once
    assert splits["train"][0] == 2 and splits["test"][0] == 0  # trainNdxs starts at 3, testNdxs at 1


@pytest.mark.parametrize("seed", range(4))
def test_object_boxes_match_a_slow_reference(seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array([0, 5, 19, 21, 136, 894], dtype=np.uint16), size=(40, 50))
    instances = rng.integers(0, 4, size=(40, 50)).astype(np.uint8)
    class_ids = np.array([136, 5, 19], dtype=np.int64)
    boxes, labs = nyudv2.object_boxes(labels, instances, class_ids)
    got = sorted((b.tolist(), int(k)) for b, k in zip(boxes, labs))
    assert got == sorted(_slow_boxes(labels, instances, class_ids))
    assert boxes.dtype == np.float32 and labs.dtype == np.int64


def test_object_boxes_of_an_empty_frame():
    empty = np.zeros((8, 9), np.uint16)
    boxes, labels = nyudv2.object_boxes(empty, empty.astype(np.uint8), np.array([5]))
    assert boxes.shape == (0, 4) and labels.shape == (0,)


@pytest.mark.parametrize("crop", ["gupta", "nyu", "none"])
def test_frames_crop_boxes_and_camera(nyu_source, crop):
    source, frames = nyu_source
    ids = nyudv2.class_ids_from_names(fixture_names())
    reader = nyudv2.NyuFrames(source / LABELED, np.arange(5), ids, crop)
    r0, r1, c0, c1 = nyudv2.CROPS[crop]
    assert reader.size == {"gupta": (425, 560), "nyu": (427, 561), "none": (480, 640)}[crop]
    for i, spec in enumerate(frames):
        sample = reader(i)
        assert sample.image_id == f"nyu{i + 1:04d}"
        np.testing.assert_array_equal(sample.rgb, spec.rgb[r0:r1, c0:c1])
        np.testing.assert_array_equal(sample.depth, spec.depth[r0:r1, c0:c1])
        np.testing.assert_array_equal(sample.raw_depth, spec.raw[r0:r1, c0:c1])
        got = sorted((b.tolist(), int(k)) for b, k in zip(sample.boxes, sample.labels))
        assert got == sorted(_expected_boxes(spec.objects, crop))
        assert not sample.difficult.any()
    # Gupta's crop: 1-based cx - 40, cy - 45 (REFERENCE §3), then - 1 for the 0-based grid.
    cam = reader(0).intrinsics
    expected = {"gupta": (40, 45), "nyu": (40, 44), "none": (0, 0)}[crop]
    assert cam.cx == pytest.approx(325.58244941119034 - expected[0] - 1)
    assert cam.cy == pytest.approx(253.73616633400465 - expected[1] - 1)
    assert (cam.fx, cam.fy) == (Intrinsics.nyu().fx, Intrinsics.nyu().fy)


def test_edge_objects_of_the_fixture_are_exercised(nyu_source):
    """The fixture's corner box is 1×1 pixel in the NYU crop and absent from Gupta's."""
    _, frames = nyu_source
    box_id = nyudv2.DETECTION_CLASSES.index("box")
    nyu = [b for b, k in _expected_boxes(frames[0].objects, "nyu") if k == box_id]
    assert [560, 426, 561, 427] in nyu
    assert [560, 426, 561, 427] not in [b for b, _ in _expected_boxes(frames[0].objects, "gupta")]


def test_reads_one_frame_at_a_time_and_pickles_without_a_handle(nyu_source, monkeypatch):
    source, _ = nyu_source
    ids = nyudv2.class_ids_from_names(fixture_names())
    reader = nyudv2.NyuFrames(source / LABELED, np.array([3, 1]), ids)
    selections = []
    original = h5py.Dataset.__getitem__

    def spy(self, key, *args, **kwargs):
        selections.append((self.name, key))
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    reader(1)
    per_frame = [(n, k) for n, k in selections if n.lstrip("/") in ("images", "depths", "rawDepths", "labels",
                                                                       "instances")]  # fmt: skip
    assert len(per_frame) == 5 and all(k == 1 for _, k in per_frame)  # frame 2 (index 1), nothing else
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._h5 is None and reader._h5 is not None
    assert clone(0).image_id == "nyu0004"


def test_bad_sources_raise_one_clear_error(tmp_path, nyu_source):
    source, frames = nyu_source
    with pytest.raises(KitError, match="not found"):
        nyudv2.read_labeled_header(tmp_path / LABELED)
    with pytest.raises(KitError, match="v5/v7 file"):
        nyudv2.read_labeled_header(source / "splits.mat")
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes((source / LABELED).read_bytes()[:2_000_000])
    with pytest.raises(KitError, match="truncated or damaged"):
        nyudv2.read_labeled_header(truncated)
    other = tmp_path / "other.mat"
    with h5py.File(other, "w", userblock_size=512) as f:
        f["images"] = np.zeros((1, 3, 64, 48), np.uint8)
    with pytest.raises(KitError, match="lacks the variables"):
        nyudv2.read_labeled_header(other)
    with pytest.raises(KitError, match="overlap"):
        from .fixtures_nyu import write_splits

        nyudv2.read_splits(write_splits(tmp_path / "s.mat", [1, 2], [2, 3]), 5)
    with pytest.raises(KitError, match="1..5"):
        nyudv2.read_splits(write_splits(tmp_path / "s2.mat", [1, 6], [2]), 5)
    names = fixture_names()
    names[4] = "stool"
    with pytest.raises(KitError, match="chair"):
        nyudv2.class_ids_from_names(names)
    small = write_labeled_mat(tmp_path / "wrong_shape.mat", frames[:1])
    with h5py.File(small, "a") as f:
        del f["depths"]
        f["depths"] = np.zeros((1, 320, 240), np.float32)
    with pytest.raises(KitError, match="'depths' has shape"):
        nyudv2.read_labeled_header(small)


def test_prepare_writes_the_store_and_resumes(nyu_source, tmp_path, capsys):
    source, frames = nyu_source
    out = tmp_path / "store"
    assert main(["prepare", "nyudv2", "--source", str(source), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "frames" in printed and "chair" in printed
    train, names = load_prepared(out, "train")
    test, _ = load_prepared(out, "test")
    assert names == list(nyudv2.DETECTION_CLASSES)
    assert [s.image_id for s in train] == ["nyu0001", "nyu0003", "nyu0004"]
    assert [s.image_id for s in test] == ["nyu0002", "nyu0005"]
    sample, spec = test[0], frames[1]
    r0, r1, c0, c1 = nyudv2.CROPS["gupta"]
    np.testing.assert_array_equal(sample.rgb, spec.rgb[r0:r1, c0:c1])
    # Depth is stored in whole millimetres: equal to the source rounded to 1 mm.
    np.testing.assert_allclose(sample.depth, spec.depth[r0:r1, c0:c1], atol=5e-4 + 1e-6)
    np.testing.assert_array_equal(sample.raw_depth == 0, spec.raw[r0:r1, c0:c1] == 0)
    assert sample.hha is not None and sample.hha.shape == (425, 560, 3)
    got = sorted((b.tolist(), int(k)) for b, k in zip(sample.boxes, sample.labels))
    assert got == sorted(_expected_boxes(spec.objects, "gupta"))
    assert printed.count("\n") >= 20
    # Rerunning the same command keeps the finished files.
    mtime = (out / "train.h5").stat().st_mtime_ns
    assert main(["prepare", "nyudv2", "--source", str(source), "--out", str(out), "--no-progress"]) == 0
    assert (out / "train.h5").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("damage", ["truncated", "wrong_file", "no_splits"])
def test_prepare_refuses_bad_sources_with_one_line_and_no_store(nyu_source, tmp_path, capsys, damage):
    source, _ = nyu_source
    bad = tmp_path / "bad"
    bad.mkdir()
    data = (source / LABELED).read_bytes()
    (bad / "splits.mat").write_bytes((source / "splits.mat").read_bytes())
    if damage == "truncated":
        (bad / LABELED).write_bytes(data[: len(data) // 2])
    elif damage == "wrong_file":
        (bad / LABELED).write_bytes(b"<html>404 not found</html>\n" * 40)
    else:
        (bad / LABELED).write_bytes(data)
        (bad / "splits.mat").unlink()
    out = tmp_path / "store"
    assert main(["prepare", "nyudv2", "--source", str(bad), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert (LABELED if damage != "no_splits" else "splits.mat") in err
    assert not out.exists()


@pytest.mark.slow
def test_two_workers_write_the_same_store(nyu_source, tmp_path):
    """Spawned workers each open their own handle on the labeled file; the store is identical."""
    source, _ = nyu_source
    one = nyudv2.prepare_nyudv2(source, tmp_path / "one", workers=1, progress=False).files
    two = nyudv2.prepare_nyudv2(source, tmp_path / "two", workers=2, progress=False).files
    for split in one:
        a, _ = load_prepared(one[split], split)
        b, _ = load_prepared(two[split], split)
        for x, y in zip(a, b, strict=True):
            for name in ("rgb", "depth", "raw_depth", "hha", "boxes", "labels"):
                np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)


def test_interrupted_preparation_leaves_no_split_and_resumes(nyu_source, tmp_path, monkeypatch):
    source, _ = nyu_source
    reference = nyudv2.prepare_nyudv2(source, tmp_path / "reference", with_hha=False, progress=False).files
    original = nyudv2.NyuFrames.__call__

    def dies_on_frame_2(self, index):
        if index == 2:
            raise KeyboardInterrupt  # what Ctrl-C or a kill looks like to the writer
        return original(self, index)

    monkeypatch.setattr(nyudv2.NyuFrames, "__call__", dies_on_frame_2)
    out = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        nyudv2.prepare_nyudv2(source, out, with_hha=False, progress=False)
    assert not (out / "train.h5").exists()
    with pytest.raises(KitError, match="interrupted|rerun"):
        load_prepared(out, "train")
    monkeypatch.setattr(nyudv2.NyuFrames, "__call__", original)
    resumed = nyudv2.prepare_nyudv2(source, out, with_hha=False, progress=False).files
    for split in reference:
        a, _ = load_prepared(reference[split], split)
        b, _ = load_prepared(resumed[split], split)
        for x, y in zip(a, b, strict=True):
            assert x.image_id == y.image_id
            for name in ("rgb", "depth", "raw_depth", "boxes", "labels"):
                np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
