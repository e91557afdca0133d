"""Detection dataset: modalities, normalisation, targets, reproducible workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from dsod_depth.data import load_prepared
from dsod_depth.data.loader import DetectionDataset, collate, make_loader, parse_modality
from dsod_depth.data.prepare import prepare_synthrooms
from dsod_depth.encoders import ENCODERS, encode
from dsod_depth.errors import KitError

SIZE = 48


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("loader_store")
    prepare_synthrooms(out, num_train=6, num_test=2, size=(64, 48), seed=5, progress=False)
    return out


def test_parse_modality():
    assert parse_modality("rgb+hha") == parse_modality("RGB_HHA") == ["rgb", "hha"]
    assert parse_modality("rgb+depth") == ["rgb", "raw"] and parse_modality("depth") == ["raw"]
    for name in ENCODERS.list():
        assert parse_modality(name) == [name]
    for bad, message in (("rgb+sonar", "unknown modality part 'sonar'"), ("hha+hha", "once"), ("", "once")):
        with pytest.raises(KitError, match=message):
            parse_modality(bad)


@pytest.mark.parametrize(("modality", "channels"), [("rgb", 3), ("hha", 3), ("rgb+hha", 6), ("rgb+depth", 4)])
def test_eval_items_are_resized_normalised_groups(store, modality, channels):
    ds = DetectionDataset(store, "test", modality, SIZE)
    samples, _ = load_prepared(store, "test")
    assert ds.in_channels == channels and ds.num_classes == 12
    image, target = ds[1]
    assert image.shape == (channels, SIZE, SIZE) and image.dtype == torch.float32
    raw = samples[1]
    c = 0
    for group in ds.groups:
        mean, std = samples.stats[group]
        n = len(mean)
        restored = (
            image[c : c + n] * torch.tensor(std, dtype=torch.float32)[:, None, None]
            + torch.tensor(mean, dtype=torch.float32)[:, None, None]
        )
        if group == "rgb":
            source = torch.from_numpy(raw.rgb).permute(2, 0, 1)
            expected = F.resize(source, [SIZE, SIZE], antialias=False).float()
        else:
            values = (
                raw.hha.transpose(2, 0, 1)
                if group == "hha"
                else encode(group, raw.depth, raw.raw_depth, raw.intrinsics)
            )
            expected = F.resize(
                torch.from_numpy(np.ascontiguousarray(values)).float(),
                [SIZE, SIZE],
                interpolation=InterpolationMode.NEAREST_EXACT,
            )
        torch.testing.assert_close(
            restored, expected, atol=1e-3 * max(1.0, float(expected.abs().max())), rtol=0
        )
        c += n
    # Normalised boxes are invariant to resizing: stored pixels / stored size.
    h, w = raw.height, raw.width
    torch.testing.assert_close(target["boxes"], torch.from_numpy(raw.boxes / [w, h, w, h]).float())
    assert target["labels"].tolist() == raw.labels.tolist() and target["image_id"] == raw.image_id
    assert target["orig_size"].tolist() == [h, w] and target["index"] == 1


def test_training_items_are_reproducible_per_epoch(store):
    ds = DetectionDataset(store, "train", "rgb+hha", SIZE, train=True, seed=3)
    a, ta = ds[2]
    b, tb = ds[2]
    assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"])
    changed = False
    for epoch in (1, 2, 3):
        ds.set_epoch(epoch)
        changed |= not torch.equal(ds[2][0], a)
    assert changed
    for i in range(len(ds)):
        _, t = ds[i]
        boxes = t["boxes"]
        assert bool(((boxes >= 0) & (boxes <= 1)).all()) and bool((boxes[:, 2:] > boxes[:, :2]).all())
        assert t["labels"].shape[0] == boxes.shape[0] == t["difficult"].shape[0]


def test_workers_give_the_same_batches_as_the_main_process(store):
    ds = DetectionDataset(store, "train", "rgb+depth", SIZE, train=True, seed=1)
    runs = []
    for workers in (0, 2):
        ds.set_epoch(4)
        loader = make_loader(ds, batch_size=3, shuffle=True, num_workers=workers, seed=9)
        runs.append(
            [
                (images, [t["image_id"] for t in targets], [t["boxes"] for t in targets])
                for images, targets in loader
            ]
        )
    for (im0, ids0, boxes0), (im1, ids1, boxes1) in zip(*runs):
        assert ids0 == ids1 and torch.equal(im0, im1)
        assert all(torch.equal(x, y) for x, y in zip(boxes0, boxes1))
    assert len(runs[0]) == 2


def test_collate_stacks_images_and_keeps_targets():
    batch = [(torch.zeros(4, 8, 8), {"boxes": torch.zeros(k, 4)}) for k in (0, 3)]
    images, targets = collate(batch)
    assert images.shape == (2, 4, 8, 8) and [t["boxes"].shape[0] for t in targets] == [0, 3]


def test_missing_statistics_or_rgb_are_clear_errors(store, tmp_path):
    with pytest.raises(KitError, match="unknown modality"):
        DetectionDataset(store, "train", "rgb+thermal")
    with pytest.raises(KitError, match="not found"):
        DetectionDataset(tmp_path / "nowhere", "train")
