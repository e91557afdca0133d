import pytest
import torch

from dsod_depth.detection.loss import MultiBoxLoss, build_targets, mine_hard_negatives
from dsod_depth.detection.priors import default_boxes, scaled_config

PRIORS = default_boxes(scaled_config((96, 96), [(12, 12), (6, 6), (3, 3)]))
NUM_CLASSES = 4


def outputs(n, gen, requires_grad=True):
    p = PRIORS.shape[0]
    loc = torch.randn(n, p, 4, generator=gen).requires_grad_(requires_grad)
    conf = torch.randn(n, p, NUM_CLASSES + 1, generator=gen).requires_grad_(requires_grad)
    return loc, conf


def targets_for(boxes_per_image):
    return [
        {"boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4), "labels": torch.arange(len(b)) % 4}
        for b in boxes_per_image
    ]


def test_loss_is_finite_with_gradients_and_counts_positives():
    gen = torch.Generator().manual_seed(0)
    loc, conf = outputs(2, gen)
    targets = targets_for([[[0.1, 0.1, 0.5, 0.6], [0.5, 0.5, 0.9, 0.95]], [[0.2, 0.3, 0.4, 0.5]]])
    losses = MultiBoxLoss()(loc, conf, PRIORS, targets)
    _, cls_t = build_targets(targets, PRIORS)
    assert int(losses["num_pos"]) == int((cls_t > 0).sum()) > 0
    losses["loss"].backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(conf.grad).all()
    # Only positives receive a localisation gradient.
    assert bool((loc.grad.abs().sum(-1) > 0).eq(cls_t > 0).all())


def test_mined_negative_count_is_three_per_positive():
    gen = torch.Generator().manual_seed(1)
    _, conf = outputs(2, gen, requires_grad=False)
    targets = targets_for([[[0.1, 0.1, 0.5, 0.6]], [[0.2, 0.3, 0.4, 0.5], [0.6, 0.6, 0.9, 0.9]]])
    _, cls_t = build_targets(targets, PRIORS)
    positive = cls_t > 0
    bg_loss = -conf.log_softmax(-1)[..., 0]
    negative = mine_hard_negatives(bg_loss, positive, 3.0)
    assert negative.sum(1).tolist() == (positive.sum(1) * 3).tolist()
    assert not (negative & positive).any()
    # The chosen negatives are the hardest ones of their image.
    for i in range(2):
        chosen = bg_loss[i][negative[i]]
        others = bg_loss[i][~negative[i] & ~positive[i]]
        assert float(chosen.min()) >= float(others.max())


def test_image_without_objects_is_finite():
    gen = torch.Generator().manual_seed(2)
    loc, conf = outputs(2, gen)
    losses = MultiBoxLoss()(loc, conf, PRIORS, targets_for([[], []]))
    assert int(losses["num_pos"]) == 0
    assert float(losses["loss"].detach()) == 0.0
    losses["loss"].backward()
    assert torch.isfinite(conf.grad).all()
    # With min_negatives the empty image still teaches background.
    loc2, conf2 = outputs(1, gen)
    losses = MultiBoxLoss(min_negatives=10)(loc2, conf2, PRIORS, targets_for([[]]))
    assert float(losses["loss_conf"].detach()) > 0
    losses["loss"].backward()
    assert int((conf2.grad.abs().sum(-1) > 0).sum()) == 10


def test_mixed_batch_normalises_by_total_positives():
    gen = torch.Generator().manual_seed(3)
    loc, conf = outputs(2, gen)
    targets = targets_for([[[0.1, 0.1, 0.5, 0.6]], []])
    both = MultiBoxLoss()(loc, conf, PRIORS, targets)
    single = MultiBoxLoss()(loc[:1], conf[:1], PRIORS, targets[:1])
    torch.testing.assert_close(both["loss"], single["loss"])


def test_perfect_prediction_has_zero_loc_loss():
    targets = targets_for([[[0.1, 0.1, 0.5, 0.6]]])
    loc_t, cls_t = build_targets(targets, PRIORS)
    conf = torch.full((1, PRIORS.shape[0], NUM_CLASSES + 1), -20.0)
    conf.scatter_(2, cls_t.unsqueeze(-1), 20.0)
    losses = MultiBoxLoss()(loc_t.clone(), conf, PRIORS, targets)
    assert float(losses["loss_loc"]) == 0.0
    assert float(losses["loss_conf"]) == pytest.approx(0.0, abs=1e-6)
