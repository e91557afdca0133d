"""The crop classifier of backbone pretraining: shapes, the features' mode, gradients, batch invariance."""

from __future__ import annotations

import pytest
import torch

from dsod_depth.models import build_detector
from dsod_depth.models.classifier import BackboneClassifier

CROP = 48


def _classifier(channels: int, num_classes: int = 5) -> BackboneClassifier:
    torch.manual_seed(0)
    features = build_detector("dsod_tiny", num_classes=2, in_channels=channels, input_size=CROP).features
    return BackboneClassifier(features, channels, num_classes, CROP)


@pytest.mark.parametrize("channels", [1, 3, 6])
def test_logits_per_crop_and_a_gradient_for_every_parameter(channels):
    model = _classifier(channels).train()
    images = torch.randn(3, channels, CROP, CROP)
    logits = model(images)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_the_linear_layer_reads_every_pooled_map():
    model = _classifier(3)
    with torch.no_grad():
        maps = model.features.eval()(torch.zeros(1, 3, CROP, CROP))
    assert model.classifier.in_features == sum(m.shape[1] for m in maps)


@pytest.mark.parametrize("training", [True, False])
def test_building_keeps_the_features_mode(training):
    features = build_detector("dsod_tiny", num_classes=2, in_channels=1, input_size=CROP).features
    features.train(training)
    running = [m.running_mean.clone() for m in features.modules() if hasattr(m, "running_mean")]
    BackboneClassifier(features, 1, 4, CROP)
    assert features.training is training
    after = [m.running_mean for m in features.modules() if hasattr(m, "running_mean")]
    assert all(torch.equal(a, b) for a, b in zip(running, after))  # the probe pass leaves BN statistics


def test_eval_logits_do_not_depend_on_the_batch():
    model = _classifier(4).eval()
    torch.manual_seed(1)
    images = torch.randn(4, 4, CROP, CROP)
    with torch.no_grad():
        together = model(images)
        alone = torch.cat([model(images[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
