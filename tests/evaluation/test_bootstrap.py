"""Bootstrap of VOC mAP: counts of all ones give the evaluator's numbers bit for bit; any counts give
the AP of the explicitly duplicated image set; absent classes, draws and refusals."""

import numpy as np
import pytest

from dsod_depth.errors import KitError
from dsod_depth.evaluation import (
    coco_ground_truth,
    coco_results,
    evaluate_files,
    voc_ap_from_arrays,
    write_json_atomic,
)
from dsod_depth.evaluation.bootstrap import (
    image_positions,
    match_files,
    mean_over_present,
    resample_counts,
    resampled_ap,
    resampled_map,
)

NUM_CLASSES = 4  # class 3 has difficult GT only: absent from every set, as the evaluator reports it


def synthetic_set(num_images: int, seed: int = 0):
    """Per image 1-5 GT boxes (20 % difficult; class 3 always difficult) and detections: jittered GT
    copies (TPs, duplicates, misses, wrong classes) and random boxes. Scores are rounded to 0.05 so that
    many tie, across and within images."""
    rng = np.random.default_rng(seed)
    gt, det = [], []
    for _ in range(num_images):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(0, 200, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (n, 2))], 1)  # [n, 4] xyxy
        labels = rng.integers(0, NUM_CLASSES, n)
        gt.append((boxes, labels, (rng.random(n) < 0.2) | (labels == 3)))
        src = rng.integers(0, n, 2 * n)
        near = boxes[src] + rng.normal(0, 4.0, (2 * n, 4))
        near = np.concatenate([np.minimum(near[:, :2], near[:, 2:]), np.maximum(near[:, :2], near[:, 2:])], 1)
        near_labels = np.where(rng.random(2 * n) < 0.85, labels[src], rng.integers(0, NUM_CLASSES, 2 * n))
        xy = rng.uniform(0, 250, (3, 2))
        far = np.concatenate([xy, xy + rng.uniform(5, 60, (3, 2))], 1)
        det_boxes = np.concatenate([near, far])
        det_labels = np.concatenate([near_labels, rng.integers(0, NUM_CLASSES, 3)])
        det.append((det_boxes, np.round(rng.random(len(det_boxes)) * 20) / 20, det_labels))
    return gt, det


def write_files(folder, gt, det):
    """gt.json and detections.json as ``eval`` writes them (image ids 1..N, in image order)."""
    names = [f"c{c}" for c in range(NUM_CLASSES)]
    frames = [(i + 1, 300, 300, b, lab, d) for i, (b, lab, d) in enumerate(gt)]
    write_json_atomic(folder / "gt.json", coco_ground_truth(frames, names))
    results = [r for i, (b, s, lab) in enumerate(det) for r in coco_results(i + 1, b, s, lab)]
    write_json_atomic(folder / "detections.json", results)
    return folder / "gt.json", folder / "detections.json"


def copied_rows(image: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (GT boxes or detections) of the resampled set: int [R] image of each row, int [N] copies
    of each image → (rows int [R'] into the original, each repeated once per copy of its image with the
    copies next to each other; new image index int [R'], the copies of image i numbered consecutively)."""
    rows = np.repeat(np.arange(len(image)), count[image])
    copy = np.arange(len(rows)) - np.searchsorted(rows, rows)  # 0, 1, ... among each row's copies
    first_copy = np.cumsum(count) - count  # [N], new index of each image's first copy
    return rows, first_copy[image[rows]] + copy


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    gt, det = synthetic_set(120)
    return (*write_files(tmp_path_factory.mktemp("bootstrap"), gt, det), gt, det)


@pytest.mark.parametrize("metric", ["voc07", "voc12"])
@pytest.mark.parametrize("iou", [0.5, 0.7])
def test_counts_of_all_ones_give_the_evaluators_ap_and_map_exactly(files, metric, iou):
    gt_path, det_path, *_ = files
    expected = evaluate_files(gt_path, det_path, metric=metric, iou_threshold=iou)
    run = match_files(gt_path, det_path, metric=metric, iou_threshold=iou)
    ones = np.ones((1, len(run.image_ids)), np.int64)
    ap = resampled_ap(run, ones)[0]
    assert [None if np.isnan(a) else float(a) for a in ap] == list(expected["ap_per_class"].values())
    assert expected["absent_classes"] == ["c3"]
    assert resampled_map(run, ones)[0] == expected["map"]  # the same bits, not approximately


@pytest.mark.parametrize("metric", ["voc07", "voc12"])
def test_a_resample_scores_as_the_set_with_its_images_copied(files, metric):
    """Parity with the evaluator on the resampled set written out: image i appears counts[i] times
    (new image indices), each detection's copies next to each other in the results order."""
    gt_path, det_path, gt, det = files
    run = match_files(gt_path, det_path, metric=metric, iou_threshold=0.5)
    counts = resample_counts(len(gt), 12, seed=3)  # [12, N]
    fast = resampled_ap(run, counts)  # [12, K]
    g_img = np.concatenate([np.full(len(lab), i) for i, (_, lab, _) in enumerate(gt)])
    g_box, g_lab, g_diff = (np.concatenate([g[k] for g in gt]) for k in range(3))
    d_img = np.concatenate([np.full(len(lab), i) for i, (_, _, lab) in enumerate(det)])
    d_box, d_score, d_lab = (np.concatenate([d[k] for d in det]) for k in range(3))
    for row, count in zip(fast, counts):
        copy_of = np.repeat(np.arange(len(gt)), count)  # new image j is a copy of image copy_of[j]
        g, g_new = copied_rows(g_img, count)
        d, d_new = copied_rows(d_img, count)
        assert (copy_of[g_new] == g_img[g]).all() and (copy_of[d_new] == d_img[d]).all()
        reference = voc_ap_from_arrays(
            g_new, g_box[g], g_lab[g], g_diff[g], d_new, d_box[d], d_score[d], d_lab[d],
            num_classes=NUM_CLASSES, use_07_metric=metric == "voc07",
        ).ap  # fmt: skip
        assert np.array_equal(np.isnan(reference), np.isnan(row))
        np.testing.assert_allclose(row, reference, rtol=0, atol=1e-15)  # voc12: float summation order


def test_a_class_missing_from_a_resample_leaves_its_mean(tmp_path):
    # Image 0 holds the only GT of class 1 (detected, AP 1); class 0 is in every image (missed, AP 0).
    box = np.array([[10.0, 10.0, 50.0, 50.0]])
    gt = [(np.concatenate([box, box + 100]), np.array([0, 1]), np.array([False, False]))]
    gt += [(box, np.array([0]), np.array([False]))] * 3
    det = [(box + 100, np.array([0.9]), np.array([1]))] + [(np.zeros((0, 4)), np.zeros(0), np.zeros(0))] * 3
    run = match_files(*write_files(tmp_path, gt, det), metric="voc07", iou_threshold=0.5)
    counts = np.array([[1, 1, 1, 1], [0, 2, 1, 1], [2, 0, 0, 2]])
    ap = resampled_ap(run, counts)
    assert ap[[0, 2], :2].tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert ap[1, 0] == 0.0 and np.isnan(ap[1, 1])  # image 0 not drawn: class 1 has no GT, not AP 0
    assert np.isnan(ap[:, 2:]).all()
    assert resampled_map(run, counts).tolist() == [0.5, 0.0, 0.5]
    assert np.isnan(mean_over_present(np.full((2, 3), np.nan))).all()


def test_draws_are_counts_of_n_images_and_repeat_with_their_seed():
    counts = resample_counts(50, 200, seed=7)
    assert counts.shape == (200, 50) and counts.dtype == np.int64 and (counts.sum(axis=1) == 50).all()
    assert np.array_equal(counts, resample_counts(50, 200, seed=7))
    assert not np.array_equal(counts, resample_counts(50, 200, seed=8))
    assert 0.55 < (counts > 0).mean() < 0.7  # about 1 − 1/e of the images are drawn at least once


def test_image_positions_align_runs_by_id_and_refuse_other_sets():
    assert image_positions((5, 6, 7), (7, 5, 6)).tolist() == [2, 0, 1]
    assert image_positions((5, 6, 7), (5, 6)) is None
    assert image_positions((5, 6, 7), (5, 6, 8)) is None
    assert image_positions((5, 6, 7), (5, 5, 6)) is None


def test_coco_and_bad_counts_are_refused(files):
    gt_path, det_path, *_ = files
    with pytest.raises(KitError, match="VOC metrics only"):
        match_files(gt_path, det_path, metric="coco", iou_threshold=0.5)
    run = match_files(gt_path, det_path, metric="voc07", iou_threshold=0.5)
    with pytest.raises(KitError, match=r"shape \[B, 120\]"):
        resampled_ap(run, np.ones((3, 7), np.int64))
