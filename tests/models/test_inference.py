"""prepare_for_inference: BN folding, channels-last, buffer concatenation and oneDNN prepacking change
nothing numerically."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dsod_depth.models import build_detector
from dsod_depth.models.inference import (
    ChannelAffine,
    ChannelClamp,
    FusedMultiBoxHead,
    PackedConv2d,
    fold_batchnorm,
    fold_preactivation,
    mkldnn_prepack_available,
    pack_convolutions,
    prepare_for_inference,
)
from dsod_depth.models.layers import NormReLUConv
from tests.models.randomised import with_random_statistics


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("concat", ["cat", "buffer"])
@pytest.mark.parametrize(("name", "size"), [("dsod_tiny", 160), ("densenet121_dsod", 64)])
def test_prepared_model_gives_the_same_outputs(name, size, channels_last, concat):
    model = with_random_statistics(build_detector(name, num_classes=4, in_channels=2, input_size=size))
    fast = prepare_for_inference(model, channels_last=channels_last, concat=concat)
    x = torch.randn(2, 2, size, size)
    with torch.no_grad():
        loc, conf = model(x)
        fast_loc, fast_conf = fast(x)
    torch.testing.assert_close(fast_loc, loc, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast_conf, conf, rtol=1e-4, atol=1e-4)
    assert torch.equal(fast.priors, model.priors)
    assert fast.info["inference"] == {
        "channels_last": channels_last,
        "fold_bn": True,
        "concat": concat,
        "prepack": False,
    }
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert isinstance(fast.head, FusedMultiBoxHead)
    assert model.training is False and any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_prepared_ssd_and_group_norm_models_give_the_same_outputs():
    torch.manual_seed(0)
    ssd = build_detector("ssd300_vgg16", num_classes=2, in_channels=1).eval()
    gn = build_detector("dsod_tiny", num_classes=2, in_channels=1, norm="gn").eval()
    for model, size in ((ssd, 300), (gn, 160)):
        fast = prepare_for_inference(model)
        x = torch.randn(1, 1, size, size)
        with torch.no_grad():
            for got, want in zip(fast(x), model(x)):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert isinstance(prepare_for_inference(ssd).head, FusedMultiBoxHead)
    assert not isinstance(prepare_for_inference(gn).head, FusedMultiBoxHead)  # GroupNorm stays in the head


def test_folds_every_conv_followed_by_batchnorm():
    model = build_detector("dsod_tiny", num_classes=4, in_channels=3).eval()
    layers = sum(len(b.layers) for b in model.modules() if hasattr(b, "layers") and hasattr(b, "growth_rate"))
    heads = 2 * len(model.head.loc)
    learned = len(model.features.prediction.extras)
    stem = 3
    assert fold_batchnorm(model) == layers + heads + learned + stem
    assert all(isinstance(m.bias, torch.Tensor) for m in model.head.loc.modules() if isinstance(m, nn.Conv2d))
    with pytest.raises(ValueError, match="eval-mode"):
        fold_batchnorm(build_detector("dsod_tiny", num_classes=4, in_channels=3))


def test_channel_affine_reads_strided_slices():
    norm = with_random_statistics(nn.BatchNorm2d(6))
    affine = ChannelAffine(norm)
    buffer = torch.randn(2, 10, 4, 4).contiguous(memory_format=torch.channels_last)
    view = buffer[:, :6]  # not contiguous in any format
    with torch.no_grad():
        torch.testing.assert_close(affine(view), norm(view.contiguous()))


@pytest.mark.parametrize("stride", [1, 2])
def test_preactivation_fold_handles_positive_negative_and_zero_scales(stride):
    torch.manual_seed(0)
    unit = NormReLUConv(6, 5, 1, stride=stride).eval()
    with torch.no_grad():
        unit.norm.weight.copy_(torch.tensor([1.5, -0.7, 0.0, 0.3, -2.0, 0.0]))
        unit.norm.bias.copy_(torch.tensor([0.2, 0.4, -0.3, -0.1, 0.0, 0.5]))  # zero scale: ReLU(bias)
        unit.norm.running_mean.uniform_(-1, 1)
        unit.norm.running_var.uniform_(0.5, 2)
    folded = NormReLUConv(6, 5, 1, stride=stride).eval()
    folded.load_state_dict(unit.state_dict())
    assert fold_preactivation(folded) == 1
    assert isinstance(folded.norm, ChannelClamp) and folded.conv.bias is not None
    x = torch.randn(3, 6, 7, 7) * 3
    with torch.no_grad():
        torch.testing.assert_close(folded(x), unit(x), rtol=1e-5, atol=1e-5)
    three_by_three = NormReLUConv(6, 5, 3, padding=1).eval()
    assert fold_preactivation(three_by_three) == 0  # zero padding would see the folded shift


needs_prepack = pytest.mark.skipif(not mkldnn_prepack_available(), reason="oneDNN prepacking unavailable")


@needs_prepack
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("name", "size"), [("dsod_tiny", 160), ("densenet121_dsod", 64), ("ssd300_vgg16", 300)]
)
def test_prepacked_model_gives_the_same_outputs(name, size, channels_last):
    model = with_random_statistics(build_detector(name, num_classes=4, in_channels=2, input_size=size))
    fast = prepare_for_inference(model, channels_last=channels_last, prepack=True)
    assert fast.info["inference"]["prepack"] is True
    assert not any(isinstance(m, nn.Conv2d) for m in fast.modules())
    x = torch.randn(2, 2, size, size)  # packed for batch 1; other batch sizes give the same values
    with torch.no_grad():
        for got, want in zip(fast(x), model(x)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@needs_prepack
def test_pack_convolutions_fuses_each_relu_that_follows_a_folded_convolution():
    model = with_random_statistics(build_detector("dsod_tiny", num_classes=4, in_channels=3))
    fold_batchnorm(model)
    layers = sum(len(b.layers) for b in model.modules() if hasattr(b, "layers") and hasattr(b, "growth_rate"))
    learned = len(model.features.prediction.extras)
    stem = 3
    example = torch.randn(1, 3, *model.input_size)
    relus = sum(isinstance(m, nn.ReLU) for m in model.modules())
    assert pack_convolutions(model, example) == layers + learned + stem
    # The pre-activation ReLUs after a concatenation (not after a conv) stay.
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == relus - (layers + learned + stem)
    fused = [m for m in model.modules() if isinstance(m, PackedConv2d) and m.attr == "relu"]
    assert len(fused) == layers + learned + stem
    with pytest.raises(ValueError, match="eval-mode"):
        pack_convolutions(build_detector("dsod_tiny", num_classes=4, in_channels=3), example)


@needs_prepack
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "relu"), [(1, 1, 0, False), (3, 2, 1, True), (3, 1, 0, True)]
)
def test_packed_conv_matches_conv(kernel, stride, padding, relu):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 5, kernel, stride=stride, padding=padding).eval()
    x = torch.randn(2, 8, 9, 9)
    packed = PackedConv2d(conv, x.shape, relu=relu)
    with torch.no_grad():
        want = conv(x).relu() if relu else conv(x)
        torch.testing.assert_close(packed(x), want, rtol=1e-5, atol=1e-5)
        view = torch.randn(2, 12, 9, 9).contiguous(memory_format=torch.channels_last)[:, :8]  # strided slice
        want = conv(view.contiguous())
        torch.testing.assert_close(packed(view), want.relu() if relu else want, rtol=1e-5, atol=1e-5)
