"""Multibox head layout, L2 normalisation and the detector's input checks."""

from __future__ import annotations

import pytest
import torch

from dsod_depth.errors import KitError
from dsod_depth.models import L2Norm, MultiBoxHead, build_detector


def test_l2norm_normalises_each_pixel_and_scales_per_channel():
    norm = L2Norm(5, scale=20.0)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 6.0))
    x = torch.randn(2, 5, 3, 4)
    y = norm(x)
    for n in range(2):
        for i in range(3):
            for j in range(4):
                v = x[n, :, i, j]
                torch.testing.assert_close(y[n, :, i, j], v / v.norm() * torch.arange(1.0, 6.0))
    assert torch.isfinite(norm(torch.zeros(1, 5, 2, 2))).all()  # all-zero pixels after a ReLU


@pytest.mark.parametrize("norm", ["bn", None])
def test_head_flattens_nhwc_in_prior_order(norm):
    torch.manual_seed(0)
    num_classes, boxes = 3, [4, 6]
    head = MultiBoxHead([8, 6], boxes, num_classes, norm=norm).eval()
    maps = [torch.randn(2, 8, 3, 5), torch.randn(2, 6, 2, 2)]
    loc, conf = head(maps)
    assert loc.shape == (2, 3 * 5 * 4 + 2 * 2 * 6, 4) and conf.shape == (2, loc.shape[1], num_classes + 1)
    # Slow reference: box k of cell (i, j) of map m reads channels [k·4, k·4 + 4) of the loc conv.
    row = 0
    for m, x in enumerate(maps):
        raw_loc = head.loc[m](head.l2norm[m](x))
        raw_conf = head.conf[m](head.l2norm[m](x))
        for i in range(x.shape[2]):
            for j in range(x.shape[3]):
                for k in range(boxes[m]):
                    torch.testing.assert_close(loc[:, row], raw_loc[:, 4 * k : 4 * k + 4, i, j])
                    c = num_classes + 1
                    torch.testing.assert_close(conf[:, row], raw_conf[:, c * k : c * (k + 1), i, j])
                    row += 1
    assert row == loc.shape[1]


def test_ssd_head_has_biases_and_l2norm_on_the_first_map_only():
    head = MultiBoxHead([8, 6], [4, 6], 2, norm=None, l2norm=[True, False])
    assert isinstance(head.l2norm[0], L2Norm) and not isinstance(head.l2norm[1], L2Norm)
    assert head.loc[0].bias is not None and torch.all(head.loc[0].bias == 0)


def test_detector_rejects_wrong_channel_count_and_size():
    model = build_detector("dsod_tiny", num_classes=2, in_channels=4)
    with pytest.raises(KitError, match=r"in_channels=3"):
        model(torch.randn(1, 3, 160, 160))
    with pytest.raises(KitError, match=r"input_size=\(128, 128\)"):
        model(torch.randn(1, 4, 128, 128))
    with pytest.raises(KitError, match=r"\[N, C, H, W\]"):
        model(torch.randn(4, 160, 160))


def test_priors_are_a_non_persistent_buffer():
    model = build_detector("dsod_tiny", num_classes=2, in_channels=1)
    assert "priors" not in model.state_dict()
    assert model.priors.dtype == torch.float32 and model.priors.shape[1] == 4
    assert ((model.priors[:, :2] > 0) & (model.priors[:, :2] < 1)).all()
