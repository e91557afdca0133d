"""VOC07 evaluation speed: the kit's vectorised evaluator vs a per-class Python loop.

The loop is written here in the style of the classic py-faster-rcnn ``voc_eval`` (per class: build the
per-image GT records, sort the class's detections, then one Python iteration per detection with a numpy
IoU against that image's GT). Three lines differ from the original so that both evaluators follow the
same devkit rules and must give identical AP: the threshold test is ``>=`` (devkit) instead of ``>``, the
score sort is stable, and the 11-point thresholds are the exact k/10 instead of ``np.arange(0, 1.1, 0.1)``.
None of them changes the loop's cost. The loop keeps the classic running sum ``ap += p / 11`` while the kit
sums the 11 precisions exactly before dividing, so per-class AP may differ in the last bit (~1e-16):
"identical" below means a per-class difference of at most 1e-12.

Also timed: ``evaluate_files`` on the same data written as COCO JSON (JSON parsing and input checks
included), i.e. what ``dsod-depth evaluate`` costs.

Usage::

    python benchmarks/bench_eval.py            # 5,000 images × 20 classes × 100 detections per image
    python benchmarks/bench_eval.py --quick    # 500 images

Prints a table and writes ``benchmarks/results/bench_eval.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from dsod_depth.evaluation import evaluate_files, evaluate_voc, write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "bench_eval.json"
AP_TOLERANCE = 1e-12  # "identical AP": equal up to float summation order


def make_data(num_images: int, num_classes: int, dets_per_image: int, seed: int = 0):
    """Random VOC-like set: per image 1-6 GT (15 % difficult) in a 500×375 frame; detections are
    jittered GT copies (TPs, duplicates, near misses) and random boxes, continuous uniform scores."""
    rng = np.random.default_rng(seed)
    gt, det = [], []
    for _ in range(num_images):
        n = int(rng.integers(1, 7))
        xy = rng.uniform(0, 400, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 200, (n, 2))], 1)  # [n, 4] xyxy
        labels = rng.integers(0, num_classes, n)
        gt.append((boxes, labels, rng.random(n) < 0.15))
        num_near = dets_per_image * 3 // 10
        src = rng.integers(0, n, num_near)
        wh = (boxes[src, 2:] - boxes[src, :2]).repeat(2, axis=0).reshape(num_near, 4)  # [w, h, w, h]
        near = boxes[src] + rng.normal(0, 0.12, (num_near, 4)) * wh
        near = np.concatenate([np.minimum(near[:, :2], near[:, 2:]), np.maximum(near[:, :2], near[:, 2:])], 1)
        wrong = rng.integers(0, num_classes, num_near)
        near_labels = np.where(rng.random(num_near) < 0.8, labels[src], wrong)
        num_far = dets_per_image - num_near
        xy = rng.uniform(0, 450, (num_far, 2))
        far = np.concatenate([xy, xy + rng.uniform(5, 150, (num_far, 2))], 1)
        det.append(
            (
                np.concatenate([near, far]),
                rng.random(dets_per_image),
                np.concatenate([near_labels, rng.integers(0, num_classes, num_far)]),
            )
        )
    return gt, det


def loop_voc_eval(gt, det, num_classes: int, ovthresh: float = 0.5) -> list[float | None]:
    """Per-class Python loop in the style of py-faster-rcnn's voc_eval; VOC07 11-point AP per class."""
    aps: list[float | None] = []
    for c in range(num_classes):
        class_recs = {}
        npos = 0
        for i, (boxes, labels, difficult) in enumerate(gt):
            keep = labels == c
            det_flags = [False] * int(keep.sum())
            class_recs[i] = {"bbox": boxes[keep], "difficult": difficult[keep], "det": det_flags}
            npos += int((~difficult[keep]).sum())
        image_ids, confidence, bbs = [], [], []
        for i, (boxes, scores, labels) in enumerate(det):
            keep = labels == c
            image_ids += [i] * int(keep.sum())
            confidence.append(scores[keep])
            bbs.append(boxes[keep])
        confidence, bb_all = np.concatenate(confidence), np.concatenate(bbs)
        sorted_ind = np.argsort(-confidence, kind="stable")  # original: default quicksort
        bb_all = bb_all[sorted_ind]
        image_ids = [image_ids[x] for x in sorted_ind]
        nd = len(image_ids)
        tp, fp = np.zeros(nd), np.zeros(nd)
        for d in range(nd):
            rec = class_recs[image_ids[d]]
            bb = bb_all[d]
            ovmax = -np.inf
            bbgt = rec["bbox"]
            if bbgt.size > 0:
                iw = np.maximum(np.minimum(bbgt[:, 2], bb[2]) - np.maximum(bbgt[:, 0], bb[0]), 0.0)
                ih = np.maximum(np.minimum(bbgt[:, 3], bb[3]) - np.maximum(bbgt[:, 1], bb[1]), 0.0)
                inters = iw * ih
                area_gt = (bbgt[:, 2] - bbgt[:, 0]) * (bbgt[:, 3] - bbgt[:, 1])
                uni = (bb[2] - bb[0]) * (bb[3] - bb[1]) + area_gt - inters
                overlaps = inters / uni
                ovmax = np.max(overlaps)
                jmax = np.argmax(overlaps)
            if ovmax >= ovthresh:  # original: >
                if not rec["difficult"][jmax]:
                    if not rec["det"][jmax]:
                        tp[d] = 1.0
                        rec["det"][jmax] = True
                    else:
                        fp[d] = 1.0
            else:
                fp[d] = 1.0
        if npos == 0:
            aps.append(None)
            continue
        fp, tp = np.cumsum(fp), np.cumsum(tp)
        rec_curve = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap = 0.0
        for t in np.arange(11) / 10:  # original: np.arange(0.0, 1.1, 0.1)
            p = np.max(prec[rec_curve >= t]) if np.sum(rec_curve >= t) > 0 else 0.0
            ap += p / 11.0
        aps.append(float(ap))
    return aps


def to_coco_files(gt, det, folder: Path) -> tuple[Path, Path]:
    """The same data as COCO JSON (xyxy → [x, y, w, h]); category ids 1..K."""
    images, anns, results = [], [], []
    num_classes = 1 + max(int(labels.max()) for _, labels, _ in gt)
    for i, ((boxes, labels, difficult), (dboxes, scores, dlabels)) in enumerate(zip(gt, det)):
        images.append({"id": i})
        for b, lab, d in zip(boxes.tolist(), labels.tolist(), difficult.tolist()):
            xywh = [b[0], b[1], b[2] - b[0], b[3] - b[1]]
            anns.append({"image_id": i, "category_id": lab + 1, "bbox": xywh, "difficult": int(d)})
        for b, s, lab in zip(dboxes.tolist(), scores.tolist(), dlabels.tolist()):
            results.append({"image_id": i, "category_id": lab + 1,
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s})  # fmt: skip
    cats = [{"id": c + 1, "name": f"class{c + 1}"} for c in range(max(num_classes, 20))]
    gt_path, det_path = folder / "gt.json", folder / "det.json"
    gt_path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    det_path.write_text(json.dumps(results))
    return gt_path, det_path


def timed(fn, repeat: int):
    """(best wall time in s over ``repeat`` runs, last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 images instead of 5,000")
    parser.add_argument("--images", type=int, default=None, help="number of images (overrides --quick)")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--dets-per-image", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the fast evaluator (best is kept)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    num_images = args.images or (500 if args.quick else 5000)

    gt, det = make_data(num_images, args.classes, args.dets_per_image)
    fast_s, fast = timed(lambda: evaluate_voc(gt, det, num_classes=args.classes), args.repeat)
    loop_s, loop_aps = timed(lambda: loop_voc_eval(gt, det, args.classes), 1)
    fast_aps = list(fast["ap_per_class"].values())
    assert [a is None for a in fast_aps] == [a is None for a in loop_aps]
    ap_diff = max(abs(a - b) for a, b in zip(fast_aps, loop_aps) if a is not None)
    loop_map = float(np.mean([a for a in loop_aps if a is not None]))

    with tempfile.TemporaryDirectory() as tmp:
        gt_path, det_path = to_coco_files(gt, det, Path(tmp))
        files_s, from_files = timed(lambda: evaluate_files(gt_path, det_path, metric="voc07"), 1)
    files_aps = list(from_files["ap_per_class"].values())[: args.classes]
    files_diff = max(abs(a - b) for a, b in zip(files_aps, fast_aps) if a is not None)

    report = {
        "benchmark": "bench_eval",
        "task": "VOC07 11-point AP",
        "num_images": num_images,
        "num_classes": args.classes,
        "dets_per_image": args.dets_per_image,
        "num_detections": fast["num_detections"],
        "num_gt_non_difficult": int(sum(fast["num_gt_per_class"].values())),
        "vectorised_s": fast_s,
        "python_loop_s": loop_s,
        "speedup": loop_s / fast_s,
        "target_speedup": 10.0,
        "target_met": loop_s / fast_s >= 10.0 and ap_diff <= AP_TOLERANCE,
        "map_vectorised": fast["map"],
        "map_python_loop": loop_map,
        "max_abs_ap_diff": ap_diff,
        "evaluate_files_s": files_s,
        "evaluate_files_max_abs_ap_diff": files_diff,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
        },  # fmt: skip
    }
    write_json_atomic(args.out, report)

    rows = [
        ("vectorised evaluate_voc", f"{fast_s:.3f}", f"{fast['map']:.6f}", "1.0×"),
        ("per-class Python loop", f"{loop_s:.3f}", f"{loop_map:.6f}", f"{loop_s / fast_s:.1f}×"),
        ("evaluate_files (JSON)", f"{files_s:.3f}", f"{from_files['map']:.6f}", f"{files_s / fast_s:.1f}×"),
    ]
    print(f"VOC07 AP: {num_images} images × {args.classes} classes × {args.dets_per_image} detections "
          f"per image ({fast['num_detections']} detections)")  # fmt: skip
    print(f"{'evaluator':<26}{'time [s]':>10}{'mAP':>11}{'rel. time':>12}")
    for name, t, m, rel in rows:
        print(f"{name:<26}{t:>10}{m:>11}{rel:>12}")
    print(f"speedup {loop_s / fast_s:.1f}× (target ≥ 10×), max |ΔAP| per class {ap_diff:.1e}, "
          f"target {'met' if report['target_met'] else 'NOT met'}; written to {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
