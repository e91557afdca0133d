"""Parity of the vectorised VOC evaluator with a slow reference written here from the devkit text.

The reference follows ``VOCevaldet.m`` literally, one detection at a time, in exact rational arithmetic
(``fractions.Fraction``): boxes are turned into 1-based inclusive devkit boxes and the IoU uses the
devkit's ``+1``; precision is ``tp / (tp + fp)`` with ignored detections kept as curve points
(``0/0`` = NaN, skipped by ``max`` as in MATLAB); the 11-point thresholds are the exact k/10.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsod_depth.evaluation import evaluate_voc

NAN = None  # the reference's NaN (0/0 precision), skipped by max like MATLAB's


def devkit_iou(det, gt):
    """IoU by the devkit formula on 1-based inclusive boxes; None when the boxes do not overlap."""
    # Continuous (x1, y1, x2, y2) covers 1-based pixels x1 + 1 .. x2.
    bb = [Fraction(det[0]) + 1, Fraction(det[1]) + 1, Fraction(det[2]), Fraction(det[3])]
    bbgt = [Fraction(gt[0]) + 1, Fraction(gt[1]) + 1, Fraction(gt[2]), Fraction(gt[3])]
    bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
    iw = bi[2] - bi[0] + 1
    ih = bi[3] - bi[1] + 1
    if iw > 0 and ih > 0:
        ua = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1)
        return iw * ih / (ua - iw * ih)
    return None


def nanmax(a, b):
    if a is NAN:
        return b
    if b is NAN:
        return a
    return max(a, b)


def reference_ap(gt, det, num_classes, iou_threshold, use_07_metric):
    """gt[i] = [(box, label, difficult)], det[i] = [(box, score, label)] → list of AP (None if absent)."""
    threshold = Fraction(iou_threshold)
    aps = []
    for c in range(num_classes):
        class_gt = [[(box, diff) for box, label, diff in objs if label == c] for objs in gt]
        npos = sum(1 for objs in class_gt for _, diff in objs if not diff)
        dets = [(score, i, box) for i, ds in enumerate(det) for box, score, label in ds if label == c]
        dets.sort(key=lambda d: -d[0])  # Python's sort is stable, like MATLAB's
        used = [[False] * len(objs) for objs in class_gt]
        tp, fp = [], []
        for _, i, box in dets:
            ovmax, jmax = None, None
            for j, (g, _) in enumerate(class_gt[i]):
                ov = devkit_iou(box, g)
                if ov is not None and (ovmax is None or ov > ovmax):
                    ovmax, jmax = ov, j
            t = f = 0
            if ovmax is not None and ovmax >= threshold:
                if not class_gt[i][jmax][1]:
                    if not used[i][jmax]:
                        t, used[i][jmax] = 1, True
                    else:
                        f = 1
            else:
                f = 1
            tp.append(t)
            fp.append(f)
        if npos == 0:
            aps.append(None)
            continue
        ctp = np.cumsum(tp, dtype=np.int64).tolist() if tp else []
        cfp = np.cumsum(fp, dtype=np.int64).tolist() if fp else []
        rec = [Fraction(t, npos) for t in ctp]
        prec = [Fraction(t, t + f) if t + f else NAN for t, f in zip(ctp, cfp)]
        if use_07_metric:
            ap = Fraction(0)
            for k in range(11):
                p = NAN
                for r, q in zip(rec, prec):
                    if r >= Fraction(k, 10):
                        p = nanmax(p, q)
                ap += (p if p is not NAN else 0) / 11
        else:
            mrec = [Fraction(0), *rec, Fraction(1)]
            mpre = [Fraction(0), *prec, Fraction(0)]
            for i in range(len(mpre) - 2, -1, -1):
                mpre[i] = nanmax(mpre[i], mpre[i + 1])
            ap = sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])
        aps.append(float(ap))
    return aps


def to_arrays(gt, det):
    """The nested-list case → the per-image arrays of ``evaluate_voc``."""
    gt_arrays = [
        (np.array([b for b, _, _ in objs], np.float64).reshape(-1, 4),
         np.array([lab for _, lab, _ in objs], np.int64), np.array([d for _, _, d in objs], bool))
        for objs in gt
    ]  # fmt: skip
    det_arrays = [
        (np.array([b for b, _, _ in ds], np.float64).reshape(-1, 4),
         np.array([s for _, s, _ in ds], np.float64), np.array([lab for _, _, lab in ds], np.int64))
        for ds in det
    ]  # fmt: skip
    return gt_arrays, det_arrays


def check_parity(gt, det, num_classes, iou_threshold=0.5):
    gt_arrays, det_arrays = to_arrays(gt, det)
    for use_07 in (True, False):
        expected = reference_ap(gt, det, num_classes, iou_threshold, use_07)
        if all(a is None for a in expected):
            continue  # nothing to score; evaluate_voc refuses such input (tested elsewhere)
        result = evaluate_voc(gt_arrays, det_arrays, num_classes=num_classes, iou_threshold=iou_threshold,
                              use_07_metric=use_07)  # fmt: skip
        got = list(result["ap_per_class"].values())
        assert [g is None for g in got] == [e is None for e in expected]
        for g, e in zip(got, expected):
            if e is not None:
                assert abs(g - e) <= 1e-9, (use_07, got, expected)
                assert 0.0 <= g <= 1.0
        present = [e for e in expected if e is not None]
        assert abs(result["map"] - sum(present) / len(present)) <= 1e-9


# --------------------------------------------------------------------------- hypothesis: small, tie-heavy

coord = st.integers(0, 12)
size = st.integers(0, 8)
box = st.tuples(coord, coord, size, size).map(lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))
score = st.sampled_from([0.1, 0.5, 0.5, 0.9])  # few values: many ties
gt_obj = st.tuples(box, st.integers(0, 2), st.booleans())


@st.composite
def cases(draw):
    num_images = draw(st.integers(1, 5))
    gt = []
    for _ in range(num_images):
        objs = draw(st.lists(gt_obj, max_size=4))
        if objs and draw(st.booleans()):  # a repeated GT box (as in real annotations): argmax ties
            b, lab, _ = draw(st.sampled_from(objs))
            objs.insert(draw(st.integers(0, len(objs))), (b, lab, draw(st.booleans())))
        gt.append(objs)
    det = []
    for objs in gt:
        ds = []
        for _ in range(draw(st.integers(0, 7))):
            if objs and draw(st.booleans()):  # a copy or a shifted copy of a GT box: matches and duplicates
                b, lab, _ = draw(st.sampled_from(objs))
                dx = draw(st.integers(-2, 2))
                b = (b[0] + dx, b[1], b[2] + dx, b[3])
                ds.append((b, draw(score), draw(st.sampled_from([lab, lab, 0, 1, 2]))))
            else:
                ds.append((draw(box), draw(score), draw(st.integers(0, 2))))
        det.append(ds)
    return gt, det


@settings(max_examples=150, deadline=None)
@given(cases(), st.sampled_from([0.5, 0.3, 0.7]))
def test_parity_small_cases(case, iou_threshold):
    gt, det = case
    check_parity(gt, det, num_classes=3, iou_threshold=iou_threshold)


# --------------------------------------------------------------------------- seeded numpy: larger sets


def random_case(rng, num_images, num_classes, integer_boxes):
    gt, det = [], []
    for _ in range(num_images):
        n = int(rng.integers(0, 7))  # some images without objects
        xy = rng.uniform(0, 80, (n, 2))
        wh = rng.uniform(2, 40, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        if integer_boxes:
            boxes = np.round(boxes)
        labels = rng.integers(0, num_classes, n)
        difficult = rng.random(n) < 0.2
        gt.append([(tuple(b), int(lab), bool(d)) for b, lab, d in zip(boxes, labels, difficult)])
        ds = []
        for _ in range(int(rng.integers(0, 16))):
            if n and rng.random() < 0.6:
                j = int(rng.integers(n))
                b = boxes[j] + rng.normal(0, 3, 4)  # jittered GT: TPs, duplicates, near-threshold IoUs
                lab = int(labels[j]) if rng.random() < 0.8 else int(rng.integers(num_classes))
            else:
                xy = rng.uniform(0, 80, 2)
                b = np.concatenate([xy, xy + rng.uniform(2, 40, 2)])
                lab = int(rng.integers(num_classes))
            b = np.round(b) if integer_boxes else b
            b = (b[0], b[1], max(b[0], b[2]), max(b[1], b[3]))
            s = float(np.round(rng.random(), 1))  # one decimal: ties across images and classes
            ds.append((tuple(float(v) for v in b), s, lab))
        det.append(ds)
    return gt, det


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("integer_boxes", [True, False])
def test_parity_seeded_sets(seed, integer_boxes):
    rng = np.random.default_rng(seed)
    gt, det = random_case(rng, num_images=40, num_classes=5, integer_boxes=integer_boxes)
    check_parity(gt, det, num_classes=5)


def test_reference_agrees_with_hand_computed_case():
    # The reference itself on the 28/33, 5/6 case of test_voc.py, so a broken reference cannot pass.
    gt = [[((0, 0, 10, 10), 0, False), ((20, 20, 30, 30), 0, False)]]
    det = [[((0, 0, 10, 10), 0.9, 0), ((50, 50, 60, 60), 0.8, 0), ((20, 20, 30, 30), 0.7, 0)]]
    assert reference_ap(gt, det, 1, 0.5, True) == [pytest.approx(28 / 33, abs=1e-15)]
    assert reference_ap(gt, det, 1, 0.5, False) == [pytest.approx(5 / 6, abs=1e-15)]
