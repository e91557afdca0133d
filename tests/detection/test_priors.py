import math

import pytest
import torch

from dsod_depth.detection.priors import (
    DSOD300_FEATURE_SIZES,
    PriorConfig,
    default_boxes,
    dsod300_coco,
    dsod300_voc,
    scaled_config,
)


def slow_priors(cfg: PriorConfig) -> list[list[float]]:
    """Plain loops following the Caffe PriorBox description, independent of the vectorised code."""
    img_w, img_h = cfg.image_size
    out = []
    for k, (fh, fw) in enumerate(cfg.feature_sizes):
        step = cfg.steps[k]
        for i in range(fh):
            for j in range(fw):
                cx, cy = (j + cfg.offset) * step / img_w, (i + cfg.offset) * step / img_h
                s = cfg.min_sizes[k]
                out.append([cx, cy, s / img_w, s / img_h])
                s2 = math.sqrt(cfg.min_sizes[k] * cfg.max_sizes[k])
                out.append([cx, cy, s2 / img_w, s2 / img_h])
                for r in cfg.aspect_ratios[k]:
                    out.append([cx, cy, s * math.sqrt(r) / img_w, s / math.sqrt(r) / img_h])
                    out.append([cx, cy, s / math.sqrt(r) / img_w, s * math.sqrt(r) / img_h])
    return out


def test_dsod300_voc_count_and_first_box():
    priors = default_boxes(dsod300_voc())
    assert priors.shape == (8744, 4)
    assert priors.dtype == torch.float32
    # REFERENCE §1: first prior centred at (4, 4) pixels, 30×30 pixels.
    torch.testing.assert_close(priors[0] * 300, torch.tensor([4.0, 4.0, 30.0, 30.0]))
    torch.testing.assert_close(priors[1] * 300, torch.tensor([4.0, 4.0, math.sqrt(1800), math.sqrt(1800)]))
    torch.testing.assert_close(
        priors[2] * 300, torch.tensor([4.0, 4.0, 30 * math.sqrt(2), 30 / math.sqrt(2)])
    )
    torch.testing.assert_close(
        priors[3] * 300, torch.tensor([4.0, 4.0, 30 / math.sqrt(2), 30 * math.sqrt(2)])
    )
    # The next cell to the right moves by one step (8 px).
    torch.testing.assert_close(priors[4] * 300, torch.tensor([12.0, 4.0, 30.0, 30.0]))


def test_golden_values_across_maps():
    priors = default_boxes(dsod300_voc()) * 300
    # First box of the 19×19 map: after 38·38·4 boxes, centre (8, 8), min size 60.
    torch.testing.assert_close(priors[5776], torch.tensor([8.0, 8.0, 60.0, 60.0]))
    # Last box: 2×2 map, cell (1, 1), step 300 → centre (450, 450) as the official code
    # computes it; transposed ratio-2 box of min size 264.
    torch.testing.assert_close(
        priors[-1], torch.tensor([450.0, 450.0, 264 / math.sqrt(2), 264 * math.sqrt(2)])
    )


@pytest.mark.parametrize("make", [dsod300_voc, dsod300_coco])
def test_matches_slow_reference(make):
    cfg = make()
    expected = torch.tensor(slow_priors(cfg), dtype=torch.float64)
    torch.testing.assert_close(default_boxes(cfg).double(), expected, rtol=0, atol=1e-6)


def test_paper_last_scale_gives_8732():
    sizes = DSOD300_FEATURE_SIZES[:-1] + ((1, 1),)
    assert default_boxes(dsod300_voc(sizes)).shape[0] == 8732


def test_config_validates_lengths():
    with pytest.raises(ValueError, match="min_sizes"):
        PriorConfig((300, 300), ((2, 2),), (30.0, 60.0), (60.0,), ((2.0,),))


def test_scaled_config_counts_and_range():
    cfg = scaled_config((160, 160), [(20, 20), (10, 10), (5, 5), (3, 3)])
    priors = default_boxes(cfg)
    assert priors.shape[0] == cfg.num_priors() == 20 * 20 * 4 + 10 * 10 * 6 + 5 * 5 * 4 + 3 * 3 * 4
    centres = priors[:, :2]
    assert bool(((centres > 0) & (centres < 1)).all())
    assert cfg.min_sizes[0] == pytest.approx(16.0)
    # Steps default to image / feature size: the first 20×20 centre is half a cell in.
    torch.testing.assert_close(priors[0, :2], torch.tensor([0.025, 0.025]))


def test_clip_option():
    cfg = dsod300_voc()
    clipped = default_boxes(PriorConfig(**{**cfg.__dict__, "clip": True}))
    assert float(clipped.min()) >= 0 and float(clipped.max()) <= 1
