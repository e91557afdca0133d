"""The coco metric equals pycocotools' own result, computed here on the same files."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dsod_depth.errors import KitError
from dsod_depth.evaluation import evaluate_files
from dsod_depth.evaluation.coco import COCO_STATS

CATEGORIES = [{"id": 1, "name": "chair"}, {"id": 3, "name": "table"}, {"id": 7, "name": "lamp"}]


def random_coco(rng, num_images=30, with_crowd=True):
    """A full COCO ground truth (ids, areas, iscrowd) and a results list; 'lamp' (id 7) has no GT."""
    images = [{"id": i + 1, "file_name": f"{i:04d}.png"} for i in range(num_images)]
    anns, dets = [], []
    for img in images:
        for _ in range(int(rng.integers(0, 6))):
            # Sizes from 4 to 150 px so small, medium and large areas all occur.
            w, h = rng.uniform(4, 150, 2)
            x, y = rng.uniform(0, 200), rng.uniform(0, 150)
            cat = int(rng.choice([1, 3]))
            crowd = int(with_crowd and rng.random() < 0.1)
            anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": cat,
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": crowd})  # fmt: skip
            for _ in range(int(rng.integers(0, 3))):  # jittered copies: TPs at various IoUs, duplicates
                jitter = rng.normal(0, 0.15, 4) * [w, h, w, h]
                box = [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]
                dets.append({"image_id": img["id"], "category_id": cat, "bbox": box,
                             "score": float(rng.random())})  # fmt: skip
        for _ in range(int(rng.integers(0, 4))):  # background false positives, some of the absent class
            box = [*rng.uniform(0, 200, 2), *rng.uniform(5, 80, 2)]
            dets.append({"image_id": img["id"], "category_id": int(rng.choice([1, 3, 7])),
                         "bbox": [float(v) for v in box], "score": float(rng.random())})  # fmt: skip
    return {"images": images, "annotations": anns, "categories": CATEGORIES}, dets


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def pycocotools_reference(gt_path, det_path):
    """(stats [12], {category id: AP@[.5:.95] or None}) straight from pycocotools on the files."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(str(det_path))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per_class = {}
    for k, cid in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, k, 0, 2]  # all IoUs and recalls, area "all", maxDets 100
        per_class[cid] = float(np.mean(p[p > -1])) if (p > -1).any() else None
    return ev.stats, per_class


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_metrics_equal_pycocotools_on_the_same_files(tmp_path, seed):
    gt, dets = random_coco(np.random.default_rng(seed))
    gt_path, det_path = write(tmp_path, "gt.json", gt), write(tmp_path, "det.json", dets)
    stats, per_class = pycocotools_reference(gt_path, det_path)

    result = evaluate_files(gt_path, det_path, metric="coco")
    assert result["metric"] == "coco"
    assert result["map"] == stats[0]
    for key, value in zip(COCO_STATS, stats):
        assert result[key] == (value if value >= 0 else None), key
    names = {c["id"]: c["name"] for c in CATEGORIES}
    assert result["ap_per_class"] == {names[c]: ap for c, ap in per_class.items()}
    assert result["ap_per_class"]["lamp"] is None and result["absent_classes"] == ["lamp"]
    # pycocotools' mAP is the mean of the per-class APs of the present classes.
    present = [ap for ap in per_class.values() if ap is not None]
    assert result["map"] == pytest.approx(np.mean(present), abs=1e-12)
    assert 0.05 < result["map"] < 1.0  # the case is not degenerate


def test_lean_ground_truth_gives_the_same_result_as_the_full_file(tmp_path):
    # DESIGN.md's format needs only image_id, category_id, bbox: id, area and iscrowd are filled in.
    gt, dets = random_coco(np.random.default_rng(3), with_crowd=False)
    keep = ("image_id", "category_id", "bbox")
    lean = {**gt, "annotations": [{k: a[k] for k in keep} for a in gt["annotations"]]}
    det_path = write(tmp_path, "det.json", dets)
    full = evaluate_files(write(tmp_path, "full.json", gt), det_path, metric="coco")
    assert evaluate_files(write(tmp_path, "lean.json", lean), det_path, metric="coco") == full


def test_string_image_ids_and_empty_detections(tmp_path):
    gt, _ = random_coco(np.random.default_rng(4), num_images=5, with_crowd=False)
    for img in gt["images"]:
        img["id"] = f"img{img['id']}"
    for ann in gt["annotations"]:
        ann["image_id"] = f"img{ann['image_id']}"
    result = evaluate_files(write(tmp_path, "gt.json", gt), write(tmp_path, "det.json", []), metric="coco")
    assert result["map"] == 0.0 and result["num_detections"] == 0
    assert result["ap_per_class"] == {"chair": 0.0, "table": 0.0, "lamp": None}


def test_coco_refuses_an_iou_threshold(tmp_path):
    gt, dets = random_coco(np.random.default_rng(5), num_images=3)
    with pytest.raises(KitError, match="IoU 0.50:0.95"):
        evaluate_files(write(tmp_path, "gt.json", gt), write(tmp_path, "d.json", dets), metric="coco",
                       iou_threshold=0.5)  # fmt: skip
