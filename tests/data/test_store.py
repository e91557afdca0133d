"""Prepared store: round trip, statistics, atomic + resumable writing, lazy per-process handles."""

from __future__ import annotations

import json
import os
import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from dsod_depth.data import RGBDSample, load_prepared
from dsod_depth.data.prepare import prepare_synthrooms
from dsod_depth.data.store_writer import SplitSource, stat_groups, write_store
from dsod_depth.data.synthrooms import CLASS_NAMES, SynthRooms, SynthRoomsConfig
from dsod_depth.encoders import encode, hha_image
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics

CONFIG = SynthRoomsConfig(width=64, height=48)
LZ4_FILTER = "32004"  # HDF5's registered id of the LZ4 filter (hdf5plugin)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    prepare_synthrooms(out, num_train=5, num_test=3, size=(64, 48), seed=11, progress=False)
    return out


def assert_samples_equal(a: RGBDSample, b: RGBDSample) -> None:
    for name in ("rgb", "depth", "raw_depth", "boxes", "labels", "difficult"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.image_id == b.image_id and a.intrinsics == b.intrinsics
    assert a.meta.keys() == b.meta.keys() and all(np.array_equal(a.meta[k], b.meta[k]) for k in a.meta)


def test_round_trip_equals_the_generated_samples(store):
    for split, count in (("train", 5), ("test", 3)):
        samples, names = load_prepared(store, split)
        assert names == list(CLASS_NAMES) and len(samples) == count
        rooms = SynthRooms(CONFIG, seed=11, split=split)
        for i in range(count):
            stored = samples[i]
            assert_samples_equal(stored, rooms[i])
            np.testing.assert_array_equal(
                stored.hha, hha_image(stored.depth, stored.raw_depth, stored.intrinsics)
            )
        assert [s.image_id for s in samples[-2:]] == [f"{split}-{count - 2:06d}", f"{split}-{count - 1:06d}"]


def test_file_layout_and_attributes(store):
    with h5py.File(store / "train.h5", "r") as f:
        assert f.attrs["complete"] and f.attrs["frames_done"] == 5 and f.attrs["depth_unit"] == "millimetre"
        assert f["depth"].dtype == np.uint16 and f["depth"].chunks == (1, 48, 64)
        assert LZ4_FILTER in f["rgb"]._filters and f["hha"].dtype == np.uint8  # LZ4 by default
        assert f.attrs["compression"] == "lz4"
        assert "raw_depth" not in f and f["raw_hole"].dtype == bool
        assert json.loads(f.attrs["prep_args"])["seed"] == 11
    samples, _ = load_prepared(store / "test.h5", "test")
    assert samples.prep_args["size"] == [64, 48] and samples.attrs["kit_version"]


def test_statistics_are_over_the_training_split(store):
    samples, _ = load_prepared(store, "train")
    frames = [samples[i] for i in range(len(samples))]
    expected = {
        "rgb": np.stack([s.rgb for s in frames]).reshape(-1, 3),
        "hha": np.stack([s.hha for s in frames]).reshape(-1, 3),
    }
    for group in stat_groups(with_rgb=True):
        if group not in expected:
            expected[group] = np.concatenate(
                [
                    encode(group, s.depth, s.raw_depth, s.intrinsics).reshape(-1, s.height * s.width).T
                    for s in frames
                ]
            )
        mean, std = samples.stats[group]
        np.testing.assert_allclose(mean, expected[group].astype(np.float64).mean(0), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(std, expected[group].astype(np.float64).std(0), rtol=1e-7, atol=1e-9)
    test_split, _ = load_prepared(store, "test")
    stats_json = json.loads((store / "stats.json").read_text())
    for group, (mean, std) in samples.stats.items():
        np.testing.assert_array_equal(test_split.stats[group][0], mean)  # copied, not recomputed on test
        np.testing.assert_allclose(stats_json[group]["std"], std)


class Frames:
    """Picklable frame source: deterministic random frames, optionally of two sizes, with raw
    depth that differs from the filled depth; raises KeyboardInterrupt at ``stop``."""

    def __init__(self, stop: int | None = None, raw_differs: bool = False, sizes=((20, 30),)) -> None:
        self.stop, self.raw_differs, self.sizes = stop, raw_differs, sizes

    def __call__(self, i: int) -> RGBDSample:
        if i == self.stop:
            raise KeyboardInterrupt
        rng = np.random.default_rng(i)
        h, w = self.sizes[i % len(self.sizes)]
        # Whole millimetres decoded as the store does, so the round trip is bit-exact.
        depth_mm = rng.integers(500, 6000, (h, w))
        raw_mm = np.where(rng.random((h, w)) < 0.2, 0, depth_mm + (4 if self.raw_differs else 0))
        depth = depth_mm.astype(np.float32) / np.float32(1000)
        raw = raw_mm.astype(np.float32) / np.float32(1000)
        n = int(rng.integers(0, 4))
        xy = rng.uniform(0, [w - 5, h - 5], (n, 2))
        boxes = np.concatenate([xy, xy + 4], 1).astype(np.float32)
        return RGBDSample(
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            depth,
            raw,
            Intrinsics(30, 30, w / 2, h / 2),
            boxes,
            rng.integers(0, 2, n).astype(np.int64),
            rng.random(n) < 0.3,
            f"f{i}",
            meta={"pose": rng.normal(size=(2, 2))},
        )


def write(out, frames: Frames, num_train=7, args=None, **kwargs):
    h = max(s[0] for s in frames.sizes)
    w = max(s[1] for s in frames.sizes)
    return write_store(
        out,
        dataset="toy",
        class_names=["a", "b"],
        prep_args=args or {"v": 1},
        splits=[SplitSource("train", num_train, frames, h, w), SplitSource("test", 2, frames, h, w)],
        meta_shapes={"pose": (2, 2)},
        progress=False,
        shard_size=2,
        **kwargs,
    )


def all_datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.update({name: obj[()]}) if isinstance(obj, h5py.Dataset) else None)
        out.update({f"@{k}": v for k, v in f.attrs.items()})
    return out


def test_interrupted_preparation_is_refused_then_resumed(tmp_path):
    reference = tmp_path / "reference"
    write(reference, Frames())
    out = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        write(out, Frames(stop=5))
    partial = out / "train.h5.partial"
    assert not (out / "train.h5").exists() and partial.is_dir()
    assert sorted(p.name for p in partial.glob("shard-*")) == ["shard-00000000.h5", "shard-00000002.h5"]
    with pytest.raises(KitError, match=r"interrupted preparation \(4/7 frames written\)"):
        load_prepared(out, "train")
    with pytest.raises(KitError, match="interrupted"):
        load_prepared(partial, "train")
    # What a hard kill can leave: a half-written shard and a shard after a gap.
    (partial / "shard-00000004.h5.tmp").write_bytes(b"half written")
    (partial / "shard-00000006.h5").write_bytes(b"not contiguous")
    write(out, Frames())
    assert not partial.exists()
    got, expected = all_datasets(out / "train.h5"), all_datasets(reference / "train.h5")
    assert got.keys() == expected.keys()
    for key in expected:
        assert np.array_equal(got[key], expected[key]), key
    samples, _ = load_prepared(out, "test")
    assert len(samples) == 2


def test_resume_with_other_settings_is_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path, Frames(stop=3))
    with pytest.raises(KitError, match="different settings"):
        write(tmp_path, Frames(), args={"v": 2})
    write(tmp_path, Frames())
    with pytest.raises(KitError, match="different settings"):
        write(tmp_path, Frames(), num_train=8)


def test_resume_with_another_compression_is_refused(tmp_path):
    # Shards are merged as compressed bytes: mixing compressions would corrupt the file.
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path, Frames(stop=3), compression="lzf")
    with pytest.raises(KitError, match="compression: 'lzf' there, 'lz4' now"):
        write(tmp_path, Frames())
    write(tmp_path, Frames(), compression="lzf")
    with h5py.File(tmp_path / "train.h5", "r") as f:
        assert f["rgb"].compression == "lzf" and f.attrs["compression"] == "lzf"


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_other_compressions_round_trip(tmp_path, compression):
    write(tmp_path / "lz4", Frames())
    write(tmp_path / compression, Frames(), compression=compression)
    got = all_datasets(tmp_path / compression / "train.h5")
    expected = all_datasets(tmp_path / "lz4" / "train.h5")
    assert got.pop("@compression") == compression and expected.pop("@compression") == "lz4"
    assert got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in expected)
    with pytest.raises(KitError, match="unknown compression 'zip'; choose one of lz4, lzf, gzip"):
        write(tmp_path / "bad", Frames(), compression="zip")
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_unreadable_shard_is_made_again(tmp_path):
    reference = tmp_path / "reference"
    write(reference, Frames())
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "store", Frames(stop=6))
    (tmp_path / "store" / "train.h5.partial" / "shard-00000002.h5").write_bytes(b"garbage")
    write(tmp_path / "store", Frames())
    got, expected = all_datasets(tmp_path / "store" / "train.h5"), all_datasets(reference / "train.h5")
    assert all(np.array_equal(got[k], expected[k]) for k in expected)


def test_variable_sizes_and_separate_raw_depth(tmp_path):
    frames = Frames(raw_differs=True, sizes=((20, 30), (16, 24)))
    with pytest.raises(KitError, match="raw_separate"):
        write(tmp_path / "a", frames)
    write(tmp_path / "b", frames, raw_separate=True, with_hha=False)
    samples, _ = load_prepared(tmp_path / "b", "train")
    for i in range(len(samples)):
        assert_samples_equal(samples[i], frames(i))
    assert samples[1].depth.shape == (16, 24) and samples[1].hha is None


def test_depth_is_stored_to_the_millimetre(tmp_path):
    frames = Frames()
    sample = frames(0)
    noisy = sample.depth + np.float32(0.00049)  # less than half a millimetre off the grid
    source = SplitSource(
        "train",
        1,
        lambda i: RGBDSample(
            sample.rgb,
            noisy,
            noisy,
            sample.intrinsics,
            sample.boxes,
            sample.labels,
            sample.difficult,
            "x",
            meta=sample.meta,
        ),
        20,
        30,
    )
    write_store(
        tmp_path,
        dataset="toy",
        class_names=["a", "b"],
        splits=[source],
        prep_args={},
        meta_shapes={"pose": (2, 2)},
        progress=False,
    )
    stored = load_prepared(tmp_path, "train")[0][0]
    np.testing.assert_array_equal(stored.depth, sample.depth)
    with pytest.raises(KitError, match="millimetres"):
        too_far = np.full((20, 30), 70.0, np.float32)
        bad = SplitSource(
            "train",
            1,
            lambda i: RGBDSample(
                None, too_far, too_far, sample.intrinsics, sample.boxes, sample.labels, sample.difficult, "y"
            ),
            20,
            30,
        )
        write_store(
            tmp_path / "far",
            dataset="toy",
            class_names=["a", "b"],
            splits=[bad],
            prep_args={},
            with_rgb=False,
            with_hha=False,
            progress=False,
        )


def test_colour_only_store_has_only_rgb_statistics(tmp_path):
    write(tmp_path, Frames(), with_depth=False)
    samples, _ = load_prepared(tmp_path, "train")
    assert set(samples.stats) == {"rgb"} and samples.attrs["has_depth"] is False
    assert "hha" not in samples.fields and samples[0].hha is None
    from dsod_depth.data.loader import DetectionDataset

    assert DetectionDataset(tmp_path, "train", "rgb", 16).in_channels == 3
    with pytest.raises(KitError, match="colour-only"):
        DetectionDataset(tmp_path, "train", "rgb+hha", 16)


def test_load_prepared_errors(tmp_path, store):
    with pytest.raises(KitError, match="not found"):
        load_prepared(tmp_path / "missing", "train")
    with pytest.raises(KitError, match=r"no split 'val' \(found: test, train\)"):
        load_prepared(store, "val")
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(KitError):
        load_prepared(tmp_path, "train")


def test_split_is_lazy_and_picklable(store):
    samples, _ = load_prepared(store, "train")
    assert not samples.open_in_this_process  # constructing reads the tables with a short-lived handle
    samples[0]
    assert samples.open_in_this_process
    clone = pickle.loads(pickle.dumps(samples))
    assert not clone.open_in_this_process
    assert_samples_equal(clone[1], samples[1])
    samples.close()


class HandleProbe(Dataset):
    """Reports, per item, the process and whether it already held its own handle before reading."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        before = self.samples.open_in_this_process
        image_id = self.samples[i].image_id
        return os.getpid(), before, image_id


def test_each_worker_opens_its_own_handle(store):
    samples, _ = load_prepared(store, "train")
    samples[0]  # the parent holds a handle before the workers fork
    loader = DataLoader(HandleProbe(samples), batch_size=None, num_workers=2, shuffle=False)
    rows = list(loader)
    pids = {pid for pid, _, _ in rows}
    assert len(pids) == 2 and os.getpid() not in pids
    for pid in pids:  # the first item each worker reads finds no handle of its own yet
        first = next(before for p, before, _ in rows if p == pid)
        assert first is False
    assert sorted(i for _, _, i in rows) == [f"train-{k:06d}" for k in range(5)]
    assert torch.utils.data.get_worker_info() is None
