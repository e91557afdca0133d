"""Joint augmentation: boxes, every channel group and the intrinsics stay aligned."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from scipy import ndimage
from torchvision.transforms.v2 import functional as F

from dsod_depth.data.transforms import Resize, SSDAugment, TensorSample, _scale_saturation, rotate_hue
from dsod_depth.geometry.camera import Intrinsics

H, W = 96, 128
OUT = (60, 80)


def painted_sample(seed: int, num_boxes: int = 4) -> TensorSample:
    """Boxes on an integer grid; group 'paint' holds label + 1 inside box k, 0 elsewhere;
    'depth' random distinct values; 'coords' the source pixel (u + 1, v + 1); rgb = 40·(label+1)."""
    rng = np.random.default_rng(seed)
    paint = np.zeros((H, W), np.float32)
    boxes = []
    for k in range(num_boxes):
        for _ in range(100):
            w, h = rng.integers(6, 50), rng.integers(6, 40)
            x, y = rng.integers(0, W - w + 1), rng.integers(0, H - h + 1)
            if not paint[y : y + h, x : x + w].any():
                paint[y : y + h, x : x + w] = k + 1
                boxes.append([x, y, x + w, y + h])
                break
    v, u = np.mgrid[:H, :W].astype(np.float32)
    rgb = np.repeat((paint * 40)[None], 3, axis=0).astype(np.uint8)
    return TensorSample(
        images={
            "rgb": torch.from_numpy(rgb),
            "paint": torch.from_numpy(paint[None]),
            "depth": torch.from_numpy(rng.uniform(0.5, 6.0, (1, H, W)).astype(np.float32)),
            "coords": torch.from_numpy(np.stack([u + 1, v + 1])),
        },
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.arange(len(boxes)),
        difficult=torch.zeros(len(boxes), dtype=torch.bool),
        intrinsics=Intrinsics(100.0, 110.0, 63.2, 47.9),
        image_id="painted",
    )


def augment(seed: int, **kwargs) -> tuple[TensorSample, TensorSample]:
    sample = painted_sample(seed)
    aug = SSDAugment(OUT, rgb_mean=(0.0, 0.0, 0.0), **kwargs)
    return sample, aug(sample, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("seed", range(40))
def test_boxes_still_cover_their_painted_pixels(seed):
    _, out = augment(seed, photometric=False)
    paint = out.images["paint"][0].numpy()
    h, w = out.size
    sx = sy = 1.0  # tolerance in output pixels for nearest resampling at the box border
    for box, label in zip(out.boxes.tolist(), out.labels.tolist()):
        rows, cols = np.nonzero(paint == label + 1)
        assert rows.size, "a kept box must keep some of its pixels"
        x1, y1, x2, y2 = box
        # Every painted pixel centre lies in the box: the box still covers its object...
        assert np.all((cols + 0.5 >= x1 - 1e-4) & (cols + 0.5 <= x2 + 1e-4))
        assert np.all((rows + 0.5 >= y1 - 1e-4) & (rows + 0.5 <= y2 + 1e-4))
        # ... and the box is tight around them (within a pixel of nearest resampling).
        assert cols.min() <= x1 + sx and cols.max() + 1 >= x2 - sx
        assert rows.min() <= y1 + sy and rows.max() + 1 >= y2 - sy
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


@pytest.mark.parametrize("seed", range(20))
def test_rgb_moves_with_the_depth_like_groups(seed):
    sample, out = augment(seed, photometric=False)
    # Source pixels whose 3×3 neighbourhood has one paint value (the canvas outside is paint 0):
    # there every bilinear tap sees the same colour, so RGB must equal 40·paint exactly.
    src = np.pad(sample.images["paint"][0].numpy(), 1)
    uniform = np.ones((H, W), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            uniform &= src[dy : dy + H, dx : dx + W] == src[1:-1, 1:-1]
    coords = out.images["coords"].numpy().astype(int)  # source (u + 1, v + 1); 0 outside the image
    inside = coords[0] > 0
    safe = inside.copy()
    safe[inside] = uniform[coords[1][inside] - 1, coords[0][inside] - 1]
    paint, rgb = out.images["paint"][0].numpy(), out.images["rgb"].numpy()
    assert safe.sum() > 50
    assert np.all(rgb[:, safe] == (40 * paint[safe]).astype(np.uint8))


@pytest.mark.parametrize("seed", range(20))
def test_depth_values_change_only_by_resampling(seed):
    sample, out = augment(seed)
    before = set(np.unique(sample.images["depth"].numpy()).tolist())
    after = set(np.unique(out.images["depth"].numpy()).tolist())
    assert after <= before | {0.0}  # every value is a source value or the invalid fill


@pytest.mark.parametrize(("seed", "flip"), [(s, f) for s in range(12) for f in (0.0, 1.0)])
def test_intrinsics_follow_crop_resize_and_flip(seed, flip):
    sample, out = augment(seed, flip_prob=flip)
    k0, k1 = sample.intrinsics, out.intrinsics
    coords = out.images["coords"].numpy()  # source (u + 1, v + 1), 0 where filled by expansion
    v1, u1 = np.nonzero(coords[0] > 0)
    u0, v0 = coords[0, v1, u1] - 1, coords[1, v1, u1] - 1
    sign = -1.0 if flip else 1.0  # a flip mirrors the scene: x → -x
    ray_x_out, ray_x_src = (u1 - k1.cx) / k1.fx, sign * (u0 - k0.cx) / k0.fx
    ray_y_out, ray_y_src = (v1 - k1.cy) / k1.fy, (v0 - k0.cy) / k0.fy
    # Nearest resampling picks a source pixel within half a source pixel of the exact preimage.
    assert np.abs(ray_x_out - ray_x_src).max() <= 0.5 / k0.fx + 1e-6
    assert np.abs(ray_y_out - ray_y_src).max() <= 0.5 / k0.fy + 1e-6


def test_never_degenerate_boxes_even_from_tiny_ones():
    rng = np.random.default_rng(0)
    aug = SSDAugment(OUT, min_box_size=1.0)
    for seed in range(150):
        xy = rng.uniform(0, [W - 2, H - 2], (6, 2))
        wh = rng.uniform(0.2, 30, (6, 2))
        boxes = np.concatenate([xy, np.minimum(xy + wh, [W, H])], 1).astype(np.float32)
        sample = TensorSample(
            {"rgb": torch.zeros(3, H, W, dtype=torch.uint8), "depth": torch.ones(1, H, W)},
            torch.from_numpy(boxes),
            torch.arange(6),
            torch.zeros(6, dtype=torch.bool),
            Intrinsics(100, 100, 64, 48),
        )
        out = aug(sample, torch.Generator().manual_seed(seed))
        wh_out = out.boxes[:, 2:] - out.boxes[:, :2]
        assert bool((wh_out >= 1.0).all())
        assert bool((out.boxes[:, :2] >= 0).all() and (out.boxes[:, 2] <= OUT[1]).all())
        assert bool((out.boxes[:, 3] <= OUT[0]).all())
        assert out.labels.shape[0] == out.boxes.shape[0] == out.difficult.shape[0]


def test_sample_without_boxes_and_reproducibility():
    sample = painted_sample(0, num_boxes=0)
    aug = SSDAugment(OUT)
    a = aug(sample, torch.Generator().manual_seed(5))
    b = aug(sample, torch.Generator().manual_seed(5))
    assert a.boxes.shape == (0, 4) and a.size == OUT
    for name in a.images:
        assert torch.equal(a.images[name], b.images[name])
    c = aug(painted_sample(1), torch.Generator().manual_seed(5))
    d = aug(painted_sample(1), torch.Generator().manual_seed(6))
    assert not torch.equal(c.images["depth"], d.images["depth"]) or not torch.equal(c.boxes, d.boxes)


def test_expansion_fills_rgb_with_the_mean_and_depth_with_zero():
    sample = painted_sample(3)
    sample.images["rgb"] = torch.full((3, H, W), 200, dtype=torch.uint8)
    aug = SSDAugment(
        (H * 4, W * 4), rgb_mean=(10.0, 20.0, 30.0), expand_prob=1.0, photometric=False, flip_prob=0
    )
    aug._sample_window = lambda boxes, size, g: None  # keep the whole expanded canvas
    out = aug(sample, torch.Generator().manual_seed(0))
    outside = out.images["coords"][0] == 0
    assert outside.float().mean() > 0.05
    assert torch.all(out.images["depth"][0][outside] == 0)
    # RGB is bilinear: look two pixels away from the image, where no tap reaches it.
    far = torch.from_numpy(ndimage.binary_erosion(outside.numpy(), iterations=2))
    rgb = out.images["rgb"].permute(1, 2, 0)[far]  # [K, 3]
    assert torch.all(rgb == torch.tensor([10, 20, 30], dtype=torch.uint8))


def test_eval_resize_scales_boxes_and_intrinsics():
    sample = painted_sample(2)
    out = Resize((48, 32))(sample)
    np.testing.assert_allclose(
        out.boxes.numpy(), sample.boxes.numpy() * [32 / W, 48 / H, 32 / W, 48 / H], rtol=1e-6
    )
    assert out.intrinsics == sample.intrinsics.resize(32 / W, 48 / H)
    assert set(np.unique(out.images["depth"].numpy()).tolist()) <= set(
        np.unique(sample.images["depth"]).tolist()
    )


def test_rotate_hue_equals_torchvision_adjust_hue():
    x = torch.rand(3, 20, 30) * 255
    x[:, :4, :4] = 90.0  # grey pixels keep their colour
    for degrees in (-18.0, 5.0, 18.0, 170.0):
        expected = F.adjust_hue(x / 255.0, degrees / 360.0) * 255.0
        torch.testing.assert_close(rotate_hue(x, degrees), expected, atol=2e-3, rtol=0)


def test_saturation_scales_hsv_saturation():
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (50, 3))
    x = torch.from_numpy(pixels.T.reshape(3, 5, 10).copy())
    for factor in (0.5, 1.4):
        out = _scale_saturation(x.clone(), factor).numpy().reshape(3, -1).T
        for before, after in zip(pixels / 255, out / 255):
            h, s, v = colorsys.rgb_to_hsv(*before)
            expected = colorsys.hsv_to_rgb(h, min(1.0, s * factor), v)
            np.testing.assert_allclose(after, expected, atol=1e-6)


@pytest.mark.parametrize("min_iou", [0.3, 0.7])
def test_crop_windows_meet_the_iou_bound(monkeypatch, min_iou):
    # One constrained sampler only: every window drawn must overlap some box by >= min_iou
    # (measured with torchvision's box_iou), keep some box centre, lie inside the image and
    # cover at least 0.3² of it.
    from torchvision.ops import box_iou

    import dsod_depth.data.transforms as transforms

    monkeypatch.setattr(transforms, "_MIN_IOUS", (min_iou,))
    aug = SSDAugment(OUT)
    rng = np.random.default_rng(0)
    found = 0
    for seed in range(60):
        size = rng.uniform(0.3, 0.9, (3, 2)) * [W, H]
        corner = rng.uniform(0, 1, (3, 2)) * ([W, H] - size)
        boxes = torch.tensor(np.concatenate([corner, corner + size], 1), dtype=torch.float32)
        window = aug._sample_window(boxes, (H, W), torch.Generator().manual_seed(seed))
        if window is None:
            continue
        found += 1
        x, y, w, h = window
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H and w >= 1 and h >= 1
        assert (w + 1) * (h + 1) >= 0.09 * W * H
        rect = torch.tensor([[x, y, x + w, y + h]], dtype=torch.float32)
        assert float(box_iou(boxes, rect).max()) >= min_iou - 1e-6
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        assert bool(((centres >= rect[0, :2]) & (centres <= rect[0, 2:])).all(1).any())
    assert found >= 15  # the whole image (None) is one of the two candidates
