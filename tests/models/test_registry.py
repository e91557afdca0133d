"""Every registered detector: forward + backward with 1, 3, 4 and 6 input channels; options; fusion."""

from __future__ import annotations

import pytest
import torch

from dsod_depth.errors import KitError
from dsod_depth.models import DETECTORS, build_detector, detector_options
from dsod_depth.models.fusion import LateFusionFeatures

# Small inputs where the architecture allows; SSD300's unpadded extra layers need about 300 pixels.
INPUT_SIZE = {"dsod_tiny": 160, "ssd300_vgg16": 300}
SMALL = 64
CHANNELS = (1, 3, 4, 6)


def _cases():
    for name in DETECTORS.list():
        for channels in CHANNELS:
            yield pytest.param(name, channels, id=f"{name}-{channels}ch")


def test_registry_lists_the_presets_and_baselines():
    assert set(DETECTORS.list()) >= {
        "dsod300",
        "dsod300_plain",
        "dsod300_small",
        "dsod_tiny",
        "ssd300_vgg16",
        "densenet121_dsod",
    }


def _forward_backward(model, channels, size, batch=2):
    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size)
    loc, conf = model.train()(x)
    num_priors = model.priors.shape[0]
    assert loc.shape == (batch, num_priors, 4) and conf.shape == (batch, num_priors, model.num_classes + 1)
    assert torch.isfinite(loc).all() and torch.isfinite(conf).all()
    # A loss touching every output, as the real one does through matching and hard negatives.
    (loc.square().mean() + torch.logsumexp(conf, dim=-1).mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize(("name", "channels"), list(_cases()))
def test_forward_backward_every_detector(name, channels):
    size = INPUT_SIZE.get(name, SMALL)
    model = build_detector(name, num_classes=3, in_channels=channels, input_size=size)
    assert model.in_channels == channels and model.input_size == (size, size)
    _forward_backward(model, channels, size, batch=1 if name == "ssd300_vgg16" else 2)


@pytest.mark.parametrize("name", ["dsod_tiny", "densenet121_dsod"])
def test_memory_efficient_and_group_norm_train(name):
    size = INPUT_SIZE.get(name, SMALL)
    model = build_detector(
        name, num_classes=2, in_channels=4, input_size=size, memory_efficient=True, norm="gn"
    )
    _forward_backward(model, 4, size)


@pytest.mark.parametrize(("channels", "split"), [(6, (3, 3)), (4, (3, 1))])
def test_late_fusion_concatenates_branch_maps_per_scale(channels, split):
    model = build_detector("dsod_tiny", num_classes=2, in_channels=channels, fusion="late", late_split=split)
    features = model.features
    assert isinstance(features, LateFusionFeatures) and features.splits == list(split)
    assert features.out_channels == [2 * c for c in features.branches[0].out_channels]
    x = torch.randn(2, channels, 160, 160)
    model.eval()
    with torch.no_grad():
        fused = features(x)
        first = features.branches[0](x[:, : split[0]])
        second = features.branches[1](x[:, split[0] :])
    for f, a, b in zip(fused, first, second):
        torch.testing.assert_close(f, torch.cat([a, b], dim=1))
    _forward_backward(model, channels, 160)


def test_late_fusion_needs_a_matching_split():
    with pytest.raises(KitError, match=r"late_split=\(3, 1\)"):
        build_detector("dsod_tiny", num_classes=2, in_channels=4, fusion="late")
    with pytest.raises(KitError, match="unknown fusion"):
        build_detector("dsod_tiny", num_classes=2, in_channels=4, fusion="middle")


def test_unknown_names_and_options_are_kit_errors():
    with pytest.raises(KitError, match="unknown detector 'dsod301'"):
        build_detector("dsod301", num_classes=20, in_channels=3)
    with pytest.raises(KitError, match="unknown option 'growth'.*accepted:.*memory_efficient"):
        build_detector("dsod300", num_classes=20, in_channels=3, growth=32)
    with pytest.raises(KitError, match="num_classes must be a positive integer"):
        build_detector("dsod_tiny", num_classes=0, in_channels=3)
    with pytest.raises(KitError, match="trained from scratch"):
        build_detector("dsod_tiny", num_classes=2, in_channels=3, init="imagenet")
    with pytest.raises(KitError, match="unknown prediction structure"):
        build_detector("dsod_tiny", num_classes=2, in_channels=3, prediction="sparse")
    with pytest.raises(KitError, match="unknown last_scale"):
        build_detector("dsod_tiny", num_classes=2, in_channels=3, last_scale="3x3")
    with pytest.raises(KitError, match="unknown norm"):
        build_detector("dsod_tiny", num_classes=2, in_channels=3, norm="ln")
    with pytest.raises(KitError, match="too small"):
        build_detector("ssd300_vgg16", num_classes=2, in_channels=3, input_size=64)


def test_options_and_info_are_reported():
    assert detector_options("dsod_tiny")["input_size"] == 160
    assert detector_options("dsod300_plain")["prediction"] == "plain"
    assert {"init", "weights_path", "first_conv"} <= set(detector_options("densenet121_dsod"))
    model = build_detector("dsod300_plain", num_classes=5, in_channels=1, input_size=(96, 128))
    info = model.info
    assert info["detector"] == "dsod300_plain" and info["init"] == "scratch" and info["first_conv"] is None
    assert info["input_size"] == [96, 128] and info["num_priors"] == model.priors.shape[0]
    assert info["feature_shapes"][0] == [800, 12, 16]
    loc, _ = model.eval()(torch.randn(1, 1, 96, 128))
    assert loc.shape[1] == model.priors.shape[0]
