import torch

from dsod_depth.detection.boxes import xyxy_to_cxcywh
from dsod_depth.detection.postprocess import postprocess


def setup(prior_boxes, class_scores):
    """Priors at the given xyxy boxes, zero regression, logits giving the wanted probabilities."""
    priors = xyxy_to_cxcywh(torch.tensor(prior_boxes, dtype=torch.float32))
    probs = torch.tensor(class_scores, dtype=torch.float32)  # [P, C+1], rows sum to 1
    conf = probs.clamp(min=1e-12).log().unsqueeze(0)
    loc = torch.zeros(1, len(prior_boxes), 4)
    return loc, conf, priors


def test_nms_suppresses_overlap_within_a_class_only():
    loc, conf, priors = setup(
        [[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.12, 0.1, 0.52, 0.5]],
        [[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.0, 0.7]],
    )
    (det,) = postprocess(loc, conf, priors)
    assert det["labels"].tolist() == [0, 1]
    torch.testing.assert_close(det["scores"], torch.tensor([0.9, 0.7]))
    torch.testing.assert_close(det["boxes"][0], torch.tensor([0.1, 0.1, 0.5, 0.5]))


def test_non_overlapping_boxes_of_one_class_are_kept_and_sorted():
    loc, conf, priors = setup(
        [[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9]],
        [[0.4, 0.6], [0.2, 0.8]],
    )
    (det,) = postprocess(loc, conf, priors)
    torch.testing.assert_close(det["scores"], torch.tensor([0.8, 0.6]))


def test_score_threshold_and_keep_top_k():
    loc, conf, priors = setup(
        [[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9], [0.3, 0.0, 0.45, 0.2]],
        [[0.4, 0.6], [0.2, 0.8], [0.995, 0.005]],
    )
    (det,) = postprocess(loc, conf, priors, score_threshold=0.01)
    assert len(det["scores"]) == 2
    (det,) = postprocess(loc, conf, priors, keep_top_k=1)
    torch.testing.assert_close(det["scores"], torch.tensor([0.8]))


def test_top_k_per_class_limits_candidates_before_nms():
    loc, conf, priors = setup(
        [[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9], [0.3, 0.0, 0.45, 0.2]],
        [[0.3, 0.7], [0.2, 0.8], [0.1, 0.9]],
    )
    (det,) = postprocess(loc, conf, priors, top_k=2)
    torch.testing.assert_close(det["scores"], torch.tensor([0.9, 0.8]))


def test_batch_invariance_and_empty_output():
    gen = torch.Generator().manual_seed(0)
    priors = xyxy_to_cxcywh(torch.rand(50, 2, generator=gen).repeat(1, 2) + torch.tensor([0, 0, 0.2, 0.2]))
    loc = torch.randn(3, 50, 4, generator=gen) * 0.1
    conf = torch.randn(3, 50, 6, generator=gen)
    batched = postprocess(loc, conf, priors)
    for i in range(3):
        (single,) = postprocess(loc[i : i + 1], conf[i : i + 1], priors)
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(batched[i][key], single[key])
    (none,) = postprocess(loc[:1], conf[:1], priors, score_threshold=1.1)
    assert none["boxes"].shape == (0, 4) and none["labels"].dtype == torch.int64
