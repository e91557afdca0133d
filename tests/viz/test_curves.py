import json
import math

import numpy as np
import pytest
from PIL import Image

from dsod_depth.errors import KitError
from dsod_depth.evaluation import evaluate_files, load_detections, load_ground_truth
from dsod_depth.viz.curves import (
    TRAINING_SIZE,
    pr_curves,
    pr_figure,
    pr_figure_size,
    read_log,
    training_figure,
)
from dsod_depth.viz.style import save_figure

CLASSES = ["chair", "table", "lamp", "sofa"]  # sofa: detections but no GT; lamp: GT but no detections


def _write_files(tmp_path, seed):
    """Random COCO ground truth and detections: jittered copies of GT (TPs, duplicates), random boxes
    (FPs), difficult GT, tied scores. Returns (gt path, det path)."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(5):
        image_id = f"img-{i}"
        images.append({"id": image_id, "width": 200, "height": 150})
        for _ in range(rng.integers(1, 5)):
            x, y = rng.uniform(0, 120, 2)
            w, h = rng.uniform(10, 70, 2)
            cat = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": 0, "difficult": int(rng.random() < 0.2)})  # fmt: skip
            if cat == 3:
                continue  # lamp never detected
            for _ in range(rng.integers(0, 3)):  # 0, 1 or 2 detections: misses, TPs, duplicates
                jitter = rng.normal(0, 0.15 * min(w, h), 4)
                box = [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]
                dets.append({"image_id": image_id, "category_id": cat, "bbox": box,
                             "score": float(np.round(rng.random(), 1))})  # rounded: ties  # fmt: skip
        for _ in range(3):  # false positives of every class
            x, y = rng.uniform(0, 150, 2)
            dets.append({"image_id": image_id, "category_id": int(rng.choice([1, 2, 4])),
                         "bbox": [x, y, 30.0, 30.0], "score": float(np.round(rng.random(), 1))})  # fmt: skip
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)]
    gt_path, det_path = tmp_path / "gt.json", tmp_path / "det.json"
    gt_path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    det_path.write_text(json.dumps(dets))
    return gt_path, det_path


def _reference_pr(gt_path, det_path, iou_threshold):
    """Slow devkit-style PR curves per class name, written from the rules (REFERENCE §5)."""
    gt = json.loads(gt_path.read_text())
    dets = json.loads(det_path.read_text())
    names = {c["id"]: c["name"] for c in gt["categories"]}
    out = {}
    for cid, name in names.items():
        objects = [a for a in gt["annotations"] if a["category_id"] == cid]
        npos = sum(1 for a in objects if not a["difficult"])
        mine = [d for d in dets if d["category_id"] == cid]
        mine = sorted(mine, key=lambda d: -d["score"])  # Python's sort is stable: ties keep file order
        matched = [False] * len(objects)
        outcomes = []
        for d in mine:
            dx, dy, dw, dh = d["bbox"]
            best, best_j = -math.inf, -1
            for j, a in enumerate(objects):
                if a["image_id"] != d["image_id"]:
                    continue
                gx, gy, gw, gh = a["bbox"]
                iw = min(dx + dw, gx + gw) - max(dx, gx)
                ih = min(dy + dh, gy + gh) - max(dy, gy)
                inter = iw * ih if iw > 0 and ih > 0 else 0.0
                iou = inter / (dw * dh + gw * gh - inter) if inter > 0 else 0.0
                if iou > best:
                    best, best_j = iou, j
            if best >= iou_threshold:
                if objects[best_j]["difficult"]:
                    continue  # ignored
                outcomes.append(not matched[best_j])
                matched[best_j] = True
            else:
                outcomes.append(False)
        tp = np.cumsum(outcomes) if outcomes else np.zeros(0)
        precision = tp / np.arange(1, len(outcomes) + 1)
        out[name] = (tp / npos if npos else None, precision, npos, len(mine))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("metric", ["voc07", "voc12"])
def test_pr_curves_agree_with_the_evaluator_exactly(tmp_path, seed, metric):
    gt_path, det_path = _write_files(tmp_path, seed)
    gt = load_ground_truth(gt_path)
    curves = pr_curves(gt, load_detections(det_path, gt), metric=metric, iou_threshold=0.5)
    result = evaluate_files(gt_path, det_path, metric=metric)
    assert [c.name for c in curves] == CLASSES
    for curve in curves:
        expected = result["ap_per_class"][curve.name]
        if expected is None:
            assert math.isnan(curve.ap) and curve.num_gt == 0
        else:
            assert curve.ap == expected  # the same number, not an approximation
        assert curve.num_gt == result["num_gt_per_class"][curve.name]
        assert curve.num_det == result["num_det_per_class"][curve.name]
    reference = _reference_pr(gt_path, det_path, 0.5)
    for curve in curves:
        recall, precision, npos, num_det = reference[curve.name]
        np.testing.assert_allclose(curve.precision, precision, rtol=0, atol=1e-12)
        if npos:
            np.testing.assert_allclose(curve.recall, recall, rtol=0, atol=1e-12)
        assert (curve.num_gt, curve.num_det) == (npos, num_det)
        # Properties: recall never decreases, both lie in [0, 1]; the envelope is a non-increasing upper
        # bound of the precision, and for VOC12 the area under it (as drawn) is the AP.
        assert np.all(np.diff(curve.recall) >= 0)
        assert np.all((curve.precision >= 0) & (curve.precision <= 1))
        envelope = curve.interpolated_precision
        assert np.all(envelope >= curve.precision) and np.all(np.diff(envelope) <= 0)
        if metric == "voc12" and npos:
            area = float(np.sum(np.diff(np.concatenate(([0.0], curve.recall))) * envelope))
            assert area == pytest.approx(curve.ap, abs=1e-12)


def test_a_perfect_detector_has_recall_and_precision_one(tmp_path):
    gt = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "box"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
                          {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 5, 5]}]}  # fmt: skip
    dets = [{"image_id": 1, "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in gt["annotations"]]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "det.json").write_text(json.dumps(dets))
    gt_file = load_ground_truth(tmp_path / "gt.json")
    (curve,) = pr_curves(gt_file, load_detections(tmp_path / "det.json", gt_file))
    assert curve.recall.tolist() == [0.5, 1.0] and curve.precision.tolist() == [1.0, 1.0] and curve.ap == 1.0


def test_pr_curves_refuse_coco(tmp_path):
    gt_path, det_path = _write_files(tmp_path, 0)
    gt = load_ground_truth(gt_path)
    with pytest.raises(KitError, match="voc07 or voc12"):
        pr_curves(gt, load_detections(det_path, gt), metric="coco")


def test_pr_figure_size_legend_and_title(tmp_path):
    gt_path, det_path = _write_files(tmp_path, 1)
    gt = load_ground_truth(gt_path)
    curves = pr_curves(gt, load_detections(det_path, gt))
    fig = pr_figure(curves, title="Precision–recall · test")
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    scored = [c for c in curves if c.num_gt]
    assert labels == [f"{c.name}: AP {100 * c.ap:.1f} ({c.num_gt} GT, {c.num_det} det)" for c in scored]
    assert fig._suptitle.get_text() == "Precision–recall · test"
    assert any("sofa" in t.get_text() for t in fig.texts)  # the class without GT is named, not plotted
    with Image.open(save_figure(fig, tmp_path / "pr.png")) as image:
        assert image.size == pr_figure_size(len(scored)) == (70 + 640 + 30 + 300, 80 + 520 + 50)


def test_pr_figure_adds_legend_columns_for_many_classes():
    assert pr_figure_size(28)[0] + 300 == pr_figure_size(29)[0] == pr_figure_size(56)[0]
    assert pr_figure_size(0) == pr_figure_size(1)


def test_read_log_names_a_damaged_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "loss": 2.0}\n\n{"step": 2, "loss": \n')
    with pytest.raises(KitError, match=r"metrics\.jsonl:3: not a JSON record"):
        read_log(log)
    log.write_text('{"loss": 2.0}\n')
    with pytest.raises(KitError, match="integer 'step'"):
        read_log(log)


def test_training_figure_plots_losses_lr_and_map(tmp_path):
    records = [{"step": s, "loss": 10.0 / s, "loss_loc": 3.0 / s, "loss_conf": 7.0 / s, "lr": 0.1,
                "images_per_s": 5.0} for s in range(1, 11)]  # fmt: skip
    records[4]["loss"] = None  # a non-finite loss is logged as null: skipped, not plotted as 0
    records += [{"step": 5, "eval/voc07_map": 0.25}, {"step": 10, "eval/voc07_map": 0.5}]
    fig = training_figure(records, title="Training curves · run x")
    ax_loss, ax_lr, ax_map = fig.axes
    loss_line = next(line for line in ax_loss.get_lines() if line.get_label() == "loss")
    assert loss_line.get_xdata().tolist() == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert {line.get_label() for line in ax_loss.get_lines()} == {"loss", "loss_loc", "loss_conf"}
    assert ax_lr.get_lines()[0].get_ydata().tolist() == [0.1] * 10
    (map_line,) = ax_map.get_lines()
    assert map_line.get_ydata().tolist() == [25.0, 50.0] and map_line.get_label() == "voc07_map"
    with Image.open(save_figure(fig, tmp_path / "train.png")) as image:
        assert image.size == TRAINING_SIZE


def test_training_figure_without_records_says_so():
    fig = training_figure([], title="empty")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ["no losses logged", "no learning rate logged", "no evaluation logged"]
