"""Hand-written VOC cases with AP worked out on paper, one devkit rule each (REFERENCE §5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsod_depth.errors import KitError
from dsod_depth.evaluation import average_precision, evaluate_voc, match_detections
from dsod_depth.evaluation.voc import FP, IGNORED, TP, _descending_order

A = [0.0, 0.0, 10.0, 10.0]
B = [20.0, 20.0, 30.0, 30.0]
FAR = [50.0, 50.0, 60.0, 60.0]


def gt_image(boxes, labels=None, difficult=None):
    n = len(boxes)
    return (
        np.asarray(boxes, dtype=np.float64).reshape(n, 4),
        np.zeros(n, np.int64) if labels is None else np.asarray(labels),
        np.zeros(n, bool) if difficult is None else np.asarray(difficult, dtype=bool),
    )


def det_image(boxes, scores, labels=None):
    n = len(boxes)
    return (
        np.asarray(boxes, dtype=np.float64).reshape(n, 4),
        np.asarray(scores, dtype=np.float64),
        np.zeros(n, np.int64) if labels is None else np.asarray(labels),
    )


def ap_both(gt, det, num_classes=1):
    """(VOC07 mAP, VOC12 mAP)."""
    return tuple(
        evaluate_voc(gt, det, num_classes=num_classes, use_07_metric=m)["map"] for m in (True, False)
    )


def test_perfect_detection_scores_one():
    assert ap_both([gt_image([A])], [det_image([A], [0.9])]) == (1.0, 1.0)


def test_pr_curve_with_a_false_positive_in_the_middle():
    # Sorted: TP (0.9), FP (0.8), TP (0.7): recall .5 .5 1, precision 1 .5 2/3.
    # 11-point: t = 0..0.5 → 1 (6 points), t = 0.6..1 → 2/3 (5 points) → (6 + 10/3) / 11 = 28/33.
    # Area: 0.5 · 1 + 0.5 · 2/3 = 5/6.
    ap07, ap12 = ap_both([gt_image([A, B])], [det_image([A, FAR, B], [0.9, 0.8, 0.7])])
    assert ap07 == pytest.approx(28 / 33, abs=1e-12)
    assert ap12 == pytest.approx(5 / 6, abs=1e-12)


def test_duplicate_detection_is_false_positive():
    gt = [gt_image([A])]
    det = [det_image([A, A], [0.9, 0.8])]
    _, outcome = match_detections(
        np.zeros(1, np.int64), gt[0][0], gt[0][1], gt[0][2],
        np.zeros(2, np.int64), det[0][0], det[0][1], det[0][2],
    )  # fmt: skip
    assert outcome.tolist() == [TP, FP]
    assert ap_both(gt, det) == (1.0, 1.0)  # the duplicate comes after full recall


def test_detection_on_difficult_gt_is_ignored_not_false_positive():
    gt = [gt_image([A, B], difficult=[False, True])]
    det = [det_image([B, A], [0.9, 0.8])]  # the best-scored one sits on the difficult box
    _, outcome = match_detections(
        np.zeros(2, np.int64), gt[0][0], gt[0][1], gt[0][2],
        np.zeros(2, np.int64), det[0][0], det[0][1], det[0][2],
    )  # fmt: skip
    assert outcome.tolist() == [IGNORED, TP]
    assert ap_both(gt, det) == (1.0, 1.0)
    result = evaluate_voc(gt, det, num_classes=1)
    assert result["num_gt_per_class"] == {"0": 1}  # npos counts non-difficult GT only


def test_no_fallback_to_second_best_gt():
    # The second detection overlaps a (IoU 0.8) more than b (IoU 0.64). a is taken, so it is a FP
    # even though b is still free and above the threshold.
    a, b = [0.0, 0.0, 10.0, 10.0], [2.0, 0.0, 12.0, 10.0]
    second = [1.0, 0.0, 9.0, 10.0]  # IoU with a: 80/100 = 0.8; with b: 70/110 ≈ 0.64
    gt = [gt_image([a, b])]
    det = [det_image([a, second], [0.9, 0.8])]
    _, outcome = match_detections(
        np.zeros(2, np.int64), gt[0][0], gt[0][1], gt[0][2],
        np.zeros(2, np.int64), det[0][0], det[0][1], det[0][2],
    )  # fmt: skip
    assert outcome.tolist() == [TP, FP]
    ap07, ap12 = ap_both(gt, det)  # recall .5 .5, precision 1 .5
    assert ap07 == pytest.approx(6 / 11, abs=1e-12)
    assert ap12 == pytest.approx(0.5, abs=1e-12)


def test_iou_exactly_at_threshold_counts_as_match():
    # IoU = 50 / 100 = 0.5 exactly: a TP by the devkit (>=); py-faster-rcnn's ">" would make it a FP.
    half = [0.0, 0.0, 10.0, 5.0]
    assert ap_both([gt_image([A])], [det_image([half], [0.9])]) == (1.0, 1.0)
    assert evaluate_voc([gt_image([A])], [det_image([half], [0.9])], num_classes=1,
                        iou_threshold=0.51)["map"] == 0.0  # fmt: skip


def test_devkit_inclusive_boxes_equal_continuous_boxes():
    # Devkit 1-based inclusive boxes (1,1,10,10) and (6,1,15,10): iw = 10-6+1 = 5, IoU = 50/150 = 1/3.
    # Continuous equivalents (0,0,10,10) and (5,0,15,10) give the same IoU, so 1/3 passes a 0.33 threshold
    # and fails 0.34.
    gt, det = [gt_image([A])], [det_image([[5.0, 0.0, 15.0, 10.0]], [0.9])]
    assert evaluate_voc(gt, det, num_classes=1, iou_threshold=0.33)["map"] == 1.0
    assert evaluate_voc(gt, det, num_classes=1, iou_threshold=0.34)["map"] == 0.0


def test_classes_without_non_difficult_gt_are_absent_and_left_out_of_the_mean():
    gt = [gt_image([A, B], labels=[0, 1], difficult=[False, True])]  # class 1: difficult only
    det = [det_image([A, B, FAR], [0.9, 0.8, 0.7], labels=[0, 1, 2])]  # class 2: no GT at all
    result = evaluate_voc(gt, det, num_classes=3, class_names=["a", "b", "c"])
    assert result["ap_per_class"] == {"a": 1.0, "b": None, "c": None}
    assert result["absent_classes"] == ["b", "c"]
    assert result["map"] == 1.0


def test_images_without_objects_contribute_false_positives():
    gt = [gt_image([A]), gt_image([])]
    det = [det_image([A], [0.5]), det_image([A], [0.9])]  # the best one is in the empty image
    ap07, ap12 = ap_both(gt, det)  # recall 0 1, precision 0 .5
    assert (ap07, ap12) == (0.5, 0.5)


def test_tied_scores_keep_input_order():
    # Same score: stable sort keeps image order. FP first → precision .5 at recall 1; TP first → 1.
    gt = [gt_image([]), gt_image([A])]
    fp_first = [det_image([A], [0.5]), det_image([A], [0.5])]
    assert ap_both(gt, fp_first) == (0.5, 0.5)
    gt_swapped = [gt_image([A]), gt_image([])]
    assert ap_both(gt_swapped, fp_first) == (1.0, 1.0)


def test_first_gt_wins_equal_iou_even_when_already_matched():
    # Two identical GT boxes: both detections go to the first (argmax ties → first), so the second
    # detection is a duplicate FP; recall stays 1/2.
    gt = [gt_image([A, A])]
    det = [det_image([A, A], [0.9, 0.8])]
    ap07, ap12 = ap_both(gt, det)
    assert ap07 == pytest.approx(6 / 11, abs=1e-12)
    assert ap12 == pytest.approx(0.5, abs=1e-12)


def test_equal_iou_goes_to_the_first_gt_in_annotation_order():
    # The same object annotated twice, first as difficult: the detection goes to the first (difficult)
    # one and is ignored, so the class scores 0. Were the last GT taken, it would be a TP (AP 1).
    gt = [gt_image([A, A], difficult=[True, False])]
    assert ap_both(gt, [det_image([A], [0.9])]) == (0.0, 0.0)
    gt = [gt_image([A, A], difficult=[False, True])]
    assert ap_both(gt, [det_image([A], [0.9])]) == (1.0, 1.0)


def test_eleven_point_threshold_is_exact_at_recall_three_tenths():
    # 10 GT, 3 TP: recall reaches exactly 0.3, which counts for t = 0.3 → 4 of 11 points.
    # (np.arange(0, 1.1, 0.1)[3] = 0.30000000000000004 would give 3/11.)
    outcome = np.array([TP, TP, TP], dtype=np.int8)
    assert average_precision(outcome, 10, use_07_metric=True) == pytest.approx(4 / 11, abs=1e-15)
    assert average_precision(outcome, 10, use_07_metric=False) == pytest.approx(0.3, abs=1e-15)


def test_all_detections_ignored_gives_zero():
    assert average_precision(np.array([IGNORED, IGNORED], np.int8), 2, use_07_metric=True) == 0.0
    assert average_precision(np.array([IGNORED], np.int8), 2, use_07_metric=False) == 0.0


def test_no_detections_gives_zero_ap():
    assert ap_both([gt_image([A])], [det_image([], [])]) == (0.0, 0.0)


@pytest.mark.parametrize("decimals", [0, 1, 2, 8])
def test_descending_order_equals_a_stable_argsort(decimals):
    rng = np.random.default_rng(decimals)
    scores = np.round(rng.random(5000), decimals)  # few decimals: many ties
    scores[rng.random(5000) < 0.05] = -0.0  # equal to 0.0 for sorting
    np.testing.assert_array_equal(_descending_order(scores), np.argsort(-scores, kind="stable"))


def test_tensor_inputs_match_numpy_inputs():
    gt = [gt_image([A, B], labels=[0, 1])]
    det = [det_image([A, B, FAR], [0.9, 0.3, 0.5], labels=[0, 1, 1])]
    gt_t = [tuple(torch.as_tensor(x) for x in item) for item in gt]
    det_t = [tuple(torch.as_tensor(x) for x in item) for item in det]
    assert evaluate_voc(gt_t, det_t, num_classes=2) == evaluate_voc(gt, det, num_classes=2)


@pytest.mark.parametrize(
    ("gt", "det", "message"),
    [
        ([gt_image([A])], [], "ground truth for 1 images but detections for 0"),
        ([gt_image([A], labels=[3])], [det_image([], [])], "label 3 is outside"),
        ([gt_image([A])], [det_image([A], [float("nan")])], "NaN"),
        ([gt_image([[10.0, 0.0, 0.0, 10.0]])], [det_image([], [])], "x2 >= x1"),
        ([(np.zeros((2, 3)), np.zeros(2, np.int64), np.zeros(2, bool))], [det_image([], [])], "[2, 4]"),
        ([gt_image([A], difficult=[True])], [det_image([], [])], "nothing to score"),
    ],
)
def test_bad_in_memory_inputs_raise_kit_error(gt, det, message):
    with pytest.raises(KitError) as info:
        evaluate_voc(gt, det, num_classes=1)
    assert message in str(info.value)
