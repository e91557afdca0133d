import torch

from dsod_depth.detection.boxes import xyxy_to_cxcywh
from dsod_depth.detection.matching import match


def priors_from_xyxy(rows):
    return xyxy_to_cxcywh(torch.tensor(rows, dtype=torch.float32))


def test_no_ground_truth_is_all_background():
    priors = priors_from_xyxy([[0, 0, 1, 1], [0, 0, 0.5, 0.5]])
    assert match(torch.zeros(0, 4), priors).tolist() == [-1, -1]


def test_threshold_and_forced_best_match():
    priors = priors_from_xyxy(
        [
            [0.0, 0.0, 0.5, 0.5],  # IoU with gt = 1.0
            [0.0, 0.0, 0.5, 0.25],  # IoU 0.5 → matched (≥ threshold)
            [0.0, 0.0, 0.5, 0.2],  # IoU 0.4 → background
            [0.6, 0.6, 1.0, 1.0],  # no overlap
        ]
    )
    gt = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    assert match(gt, priors, 0.5).tolist() == [0, 0, -1, -1]


def test_low_iou_ground_truth_still_gets_its_best_prior():
    priors = priors_from_xyxy([[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 1.0, 1.0]])
    gt = torch.tensor([[0.0, 0.0, 0.6, 0.6]])  # IoU with prior 0 = 0.111, below threshold
    assert match(gt, priors, 0.5).tolist() == [0, -1]


def test_bipartite_gives_each_ground_truth_its_own_prior():
    # Both GT prefer prior 0; GT 0 has the higher IoU (1.0) and takes it, GT 1 is
    # forced onto its next best prior 1 even though that IoU (1/3) is below 0.5.
    priors = priors_from_xyxy([[0.0, 0.0, 0.4, 0.4], [0.1, 0.0, 0.3, 0.4], [0.8, 0.8, 1.0, 1.0]])
    gt = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.4, 0.2]])
    assigned = match(gt, priors, 0.5)
    assert assigned.tolist() == [0, 1, -1]


def test_ties_go_to_the_lowest_index():
    # Two identical GT boxes: the bipartite stage gives GT 0 the first prior, GT 1 the second;
    # the per-prediction stage then resolves the remaining tie towards GT 0.
    priors = priors_from_xyxy([[0.0, 0.0, 0.5, 0.5]] * 3)
    gt = torch.tensor([[0.0, 0.0, 0.5, 0.5]] * 2)
    assert match(gt, priors, 0.5).tolist() == [0, 1, 0]


def test_ground_truth_without_any_overlap_stays_unmatched():
    priors = priors_from_xyxy([[0.0, 0.0, 0.1, 0.1]])
    gt = torch.tensor([[0.5, 0.5, 0.9, 0.9]])
    assert match(gt, priors, 0.5).tolist() == [-1]
