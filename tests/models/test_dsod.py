"""DSOD300 against the official network: parameter counts, map shapes, default boxes, blocks, init."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dsod_depth.detection.priors import default_boxes, dsod300_coco, dsod300_voc
from dsod_depth.errors import KitError
from dsod_depth.models import build_detector, count_parameters
from dsod_depth.models.dsod import DenseBlock, DSODBackbone, DSODConfig
from dsod_depth.models.heads import L2Norm
from dsod_depth.models.layers import CAFFE_BN_MOMENTUM

DSOD300_MAPS = [(800, 38, 38), (512, 19, 19), (512, 10, 10), (256, 5, 5), (256, 3, 3), (256, 2, 2)]


@pytest.fixture(scope="module")
def dsod300() -> nn.Module:
    return build_detector("dsod300", num_classes=20, in_channels=3)


def test_dsod300_parameter_counts_match_the_official_network(dsod300):
    assert count_parameters(dsod300) == 14_715_804
    assert count_parameters(build_detector("dsod300", num_classes=80, in_channels=3)) == 21_700_524


def test_dsod300_maps_priors_and_outputs_at_300(dsod300):
    hooked = []
    handle = dsod300.features.register_forward_hook(lambda _m, _i, out: hooked.extend(out))
    with torch.no_grad():
        loc, conf = dsod300.eval()(torch.randn(1, 3, 300, 300))
    handle.remove()
    assert [tuple(m.shape[1:]) for m in hooked] == DSOD300_MAPS
    assert dsod300.info["feature_shapes"] == [list(s) for s in DSOD300_MAPS]
    assert loc.shape == (1, 8744, 4) and conf.shape == (1, 8744, 21)
    assert torch.isfinite(loc).all() and torch.isfinite(conf).all()
    # Priors are the detection core's DSOD300 VOC boxes; first prior: centre (4, 4), 30×30 pixels.
    assert torch.equal(dsod300.priors, default_boxes(dsod300_voc()))
    assert torch.allclose(dsod300.priors[0] * 300, torch.tensor([4.0, 4.0, 30.0, 30.0]))


def test_last_scale_1x1_gives_the_papers_8732_boxes_and_coco_sizes():
    model = build_detector("dsod300", num_classes=20, in_channels=3, last_scale="1x1", box_sizes="coco")
    assert model.info["feature_shapes"][-1] == [256, 1, 1]
    sizes = [tuple(s[1:]) for s in model.info["feature_shapes"]]
    assert torch.equal(model.priors, default_boxes(dsod300_coco(sizes)))
    assert model.priors.shape == (8732, 4)


def test_backbone_channels_follow_the_layer_table():
    backbone = DSODBackbone(3, DSODConfig(), second_channels=256)
    assert [backbone.block1.out_channels, backbone.block2.out_channels] == [416, 800]
    assert [backbone.block3.out_channels, backbone.block4.out_channels] == [1184, 1568]
    assert backbone.first_channels == 800
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    assert all(p.ceil_mode for p in backbone.modules() if isinstance(p, nn.MaxPool2d))


def _reference_dense_block(block: DenseBlock, x: torch.Tensor) -> torch.Tensor:
    """Independent functional re-statement of the official add_bl_layer loop (training-mode BN)."""

    def bn_relu_conv(unit, t, padding):
        t = F.batch_norm(t, None, None, unit.norm.weight, unit.norm.bias, training=True, eps=unit.norm.eps)
        return F.conv2d(F.relu(t), unit.conv.weight, padding=padding)

    for layer in block.layers:
        new = bn_relu_conv(layer.conv, bn_relu_conv(layer.bottleneck, x, 0), 1)
        x = torch.cat([x, new], dim=1)
    return x


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_dense_block_matches_reference_and_checkpointing_is_exact(memory_efficient):
    torch.manual_seed(0)
    block = DenseBlock(16, 3, 8, 12)
    for norm in block.modules():  # non-trivial affine parameters, so that a swapped one would show
        if isinstance(norm, nn.BatchNorm2d):
            nn.init.uniform_(norm.weight, 0.5, 1.5)
            nn.init.uniform_(norm.bias, -0.5, 0.5)
    twin = copy.deepcopy(block)
    twin.memory_efficient = memory_efficient
    x = torch.randn(2, 16, 7, 7, requires_grad=True)
    x_twin = x.detach().clone().requires_grad_()
    out, out_twin = _reference_dense_block(block, x), twin(x_twin)
    assert out_twin.shape == (2, 16 + 3 * 8, 7, 7)
    torch.testing.assert_close(out_twin, out)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (out_twin * weights).sum().backward()
    torch.testing.assert_close(x_twin.grad, x.grad)
    for p, q in zip(block.parameters(), twin.parameters()):
        torch.testing.assert_close(q.grad, p.grad)


def test_checkpointing_updates_running_statistics_once():
    torch.manual_seed(0)
    plain = build_detector("dsod_tiny", num_classes=3, in_channels=1).train()
    efficient = copy.deepcopy(plain)
    for m in efficient.modules():
        if hasattr(m, "memory_efficient"):
            m.memory_efficient = True
    x = torch.randn(2, 1, 160, 160)
    for model in (plain, efficient):
        loc, conf = model(x)
        (loc.square().mean() + conf.logsumexp(-1).mean()).backward()
    for (name, a), b in zip(plain.state_dict().items(), efficient.state_dict().values()):
        torch.testing.assert_close(b, a, msg=name)  # running means, variances and batch counters
    for (name, p), q in zip(plain.named_parameters(), efficient.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name, rtol=1e-4, atol=1e-6)


def test_buffer_concatenation_equals_torch_cat_without_gradients():
    torch.manual_seed(0)
    block = DenseBlock(8, 4, 4, 8).eval()
    buffered = copy.deepcopy(block)
    buffered.concat = "buffer"
    x = torch.randn(3, 8, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(buffered(x), block(x))
        x_nhwc = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(buffered(x_nhwc), block(x))
    # With gradients the buffer would break autograd's saved views: the block falls back to cat.
    y = buffered(x.requires_grad_())
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_initialisation_follows_the_official_fillers(dsod300):
    backbone_conv = dsod300.features.backbone.block2.layers[3].bottleneck.conv
    fan_in = backbone_conv.in_channels
    bound = math.sqrt(3.0 / fan_in)  # Caffe xavier (fan-in)
    assert backbone_conv.weight.abs().max() <= bound
    assert backbone_conv.weight.std().item() == pytest.approx(bound / math.sqrt(3.0), rel=0.05)
    head_conv = dsod300.head.conf[0][0]
    assert head_conv.bias is None and head_conv.weight.std().item() == pytest.approx(0.01, rel=0.05)
    for m in dsod300.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        if isinstance(m, L2Norm):
            assert torch.all(m.weight == 20)
    assert dsod300.head.conf[0][1].eps == 1e-3 and dsod300.features.backbone.stem[0].norm.eps == 1e-5


def test_bn_momentum_and_group_norm_options():
    model = build_detector("dsod_tiny", num_classes=2, in_channels=3, bn_momentum=CAFFE_BN_MOMENTUM)
    momenta = {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert momenta == {CAFFE_BN_MOMENTUM}
    with pytest.raises(KitError, match=r"bn_momentum=0\.001"):
        build_detector("dsod_tiny", num_classes=2, in_channels=3, bn_momentum=0.999 + 1)
    gn = build_detector("dsod_tiny", num_classes=2, in_channels=3, norm="gn")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gn.modules())
    groups = [m for m in gn.modules() if isinstance(m, nn.GroupNorm)]
    assert groups and all(m.num_channels % m.num_groups == 0 for m in groups)
    loc, _ = gn(torch.randn(1, 3, 160, 160))  # GroupNorm trains with a single image
    assert torch.isfinite(loc).all()


def test_dsod_tiny_table():
    model = build_detector("dsod_tiny", num_classes=3, in_channels=1)
    assert model.info["feature_shapes"] == [[96, 20, 20], [128, 10, 10], [128, 5, 5], [64, 3, 3], [64, 2, 2]]
    assert model.priors.shape == (2402, 4)
    assert count_parameters(model) < 1_000_000


def test_plain_and_small_presets():
    plain = build_detector("dsod300_plain", num_classes=20, in_channels=3)
    assert plain.info["prediction"] == "plain"
    assert plain.info["feature_shapes"] == [list(s) for s in DSOD300_MAPS]
    assert count_parameters(plain) == 15_677_788
    small = build_detector("dsod300_small", num_classes=20, in_channels=3)
    assert small.info["feature_shapes"][0] == [352, 38, 38]  # 128 + 6·16 → 224; 224 + 8·16
    assert count_parameters(small) == 5_833_372
