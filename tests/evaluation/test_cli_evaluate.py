"""`dsod-depth evaluate` through ``cli.main``: a good run, and one `error:` line + exit 2 per bad input."""

from __future__ import annotations

import json

import pytest

from dsod_depth.cli import main
from dsod_depth.evaluation import evaluate_files, evaluate_voc

GT = {
    "images": [{"id": i, "file_name": f"{i}.png"} for i in (1, 2, 3)],
    "annotations": [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
        {"image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "difficult": 1},
        {"image_id": 2, "category_id": 2, "bbox": [5, 5, 20, 10]},
        {"image_id": 2, "category_id": 1, "bbox": [40, 0, 10, 30]},
    ],
    "categories": [{"id": 1, "name": "chair"}, {"id": 2, "name": "table"}, {"id": 5, "name": "sofa"}],
}
DET = [
    {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
    {"image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.95},  # on the difficult box
    {"image_id": 2, "category_id": 1, "bbox": [41, 1, 10, 30], "score": 0.6},
    {"image_id": 3, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.8},  # image without objects
    {"image_id": 2, "category_id": 2, "bbox": [5, 5, 10, 10], "score": 0.7},  # IoU 0.5 exactly
    {"image_id": 2, "category_id": 5, "bbox": [5, 5, 10, 10], "score": 0.7},
]


def files(tmp_path, gt=GT, det=DET):
    gt_path, det_path = tmp_path / "gt.json", tmp_path / "det.json"
    gt_path.write_text(gt if isinstance(gt, str) else json.dumps(gt, indent=1))
    det_path.write_text(det if isinstance(det, str) else json.dumps(det, indent=1))
    return gt_path, det_path


@pytest.mark.parametrize("metric", ["voc07", "voc12", "coco"])
def test_good_run_prints_a_table_and_writes_json(tmp_path, capsys, metric):
    gt_path, det_path = files(tmp_path)
    out = tmp_path / "out" / "metrics.json"
    assert main(["evaluate", "--gt", str(gt_path), "--det", str(det_path), "--metric", metric,
                 "--json", str(out)]) == 0  # fmt: skip
    stdout = capsys.readouterr().out
    assert "chair" in stdout and "sofa" in stdout and f"metrics written to {out}" in stdout
    written = json.loads(out.read_text())
    assert written == evaluate_files(gt_path, det_path, metric=metric)
    assert written["metric"] == metric and 0.0 <= written["map"] <= 1.0
    assert written["ap_per_class"]["sofa"] is None and written["absent_classes"] == ["sofa"]
    assert list(written["ap_per_class"]) == ["chair", "table", "sofa"]  # category id order
    assert [p.name for p in out.parent.iterdir()] == ["metrics.json"]  # no temporary file left


def test_voc_from_files_equals_the_in_memory_evaluator(tmp_path):
    gt_path, det_path = files(tmp_path)
    result = evaluate_files(gt_path, det_path, metric="voc07")
    # The same data by hand: COCO [x, y, w, h] → xyxy, category ids 1, 2, 5 → labels 0, 1, 2.
    gt = [
        ([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0], [False, True]),
        ([[5, 5, 25, 15], [40, 0, 50, 30]], [1, 0], [False, False]),
        ([], [], []),
    ]
    det = [
        ([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.95], [0, 0]),
        ([[41, 1, 51, 31], [5, 5, 15, 15], [5, 5, 15, 15]], [0.6, 0.7, 0.7], [0, 1, 2]),
        ([[0, 0, 5, 5]], [0.8], [0]),
    ]
    memory = evaluate_voc(gt, det, num_classes=3, class_names=["chair", "table", "sofa"])
    assert result == {**memory, "num_images": 3}
    # chair: TP .9, FP .8 (empty image), TP .6 → 11-point (6 · 1 + 5 · 2/3) / 11; table: IoU 0.5 → TP.
    assert result["ap_per_class"] == {"chair": pytest.approx(28 / 33), "table": 1.0, "sofa": None}


def test_iou_option_changes_the_voc_threshold(tmp_path, capsys):
    gt_path, det_path = files(tmp_path)
    argv = ["evaluate", "--gt", str(gt_path), "--det", str(det_path), "--metric", "voc12"]
    assert main([*argv, "--iou", "0.6", "--json", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["iou_threshold"] == 0.6 and result["ap_per_class"]["table"] == 0.0


def _without(key):
    return {k: v for k, v in GT.items() if k != key}


def _ann(**change):
    return {**GT, "annotations": [{**GT["annotations"][0], **change}]}


def _det(**change):
    return [{**DET[0], **change}]


BAD_JSON = '{"images": [\n  {"id": 1},\n  oops\n]}'
NO_SCORE = [{k: v for k, v in DET[0].items() if k != "score"}]
# name: (ground truth, detections, metric, extra arguments, text the error line must contain)
BAD_INPUTS = {
    "gt missing": ("MISSING", DET, "voc07", [], "ground-truth file not found"),
    "det missing": (GT, "MISSING", "voc07", [], "detections file not found"),
    "gt invalid json": (BAD_JSON, DET, "voc07", [], "gt.json: invalid JSON at line 3"),
    "det invalid json": (GT, "[{]", "coco", [], "det.json: invalid JSON at line 1, column 3"),
    "gt not an object": ([1, 2], DET, "voc07", [], "must be a COCO annotation object"),
    "gt lacks categories": (_without("categories"), DET, "voc07", [], "lacks the key 'categories'"),
    "annotation lacks bbox": (
        GT | {"annotations": [{"image_id": 1, "category_id": 1}]},
        DET,
        "voc07",
        [],
        "annotations[0] lacks the key 'bbox'",
    ),
    "bbox of 3 numbers": (_ann(bbox=[0, 0, 10]), DET, "voc07", [], "bbox must be 4 finite numbers"),
    "bbox with a string": (GT, _det(bbox=[0, 0, "10", 10]), "coco", [], "entry 0: bbox must be 4 finite"),
    "negative width": (_ann(bbox=[0, 0, -3, 10]), DET, "voc12", [], "width and height must be >= 0"),
    "negative height in det": (GT, _det(bbox=[0, 0, 3, -1]), "voc07", [], "width and height must be >= 0"),
    "gt unknown image": (_ann(image_id=99), DET, "voc07", [], "image_id 99 is not in 'images'"),
    "gt unknown category": (_ann(category_id=4), DET, "voc07", [], "category_id 4 is not in 'categories'"),
    "difficult not 0/1": (_ann(difficult="yes"), DET, "voc07", [], "'difficult' must be 0 or 1"),
    "det not a list": (GT, {"annotations": DET}, "voc07", [], "detections must be a COCO results list"),
    "det lacks score": (GT, NO_SCORE, "voc07", [], "entry 0 lacks the key 'score'"),
    "score not finite": (GT, _det(score="NaN"), "voc07", [], "score must be a finite number"),
    "det unknown image": (GT, [*DET, _det(image_id=42)[0]], "voc07", [], "entry 6: image_id 42 is not in"),
    "det image id as text": (GT, _det(image_id="1"), "coco", [], "image_id '1' is not in the ground"),
    "det unknown category": (GT, _det(category_id=9), "coco", [], "category_id 9 is not a category"),
    "iou out of range": (GT, DET, "voc07", ["--iou", "1.5"], "IoU threshold must be in (0, 1]"),
    "iou with coco": (GT, DET, "coco", ["--iou", "0.5"], "applies to voc07/voc12 only"),
    "only difficult gt": (_ann(difficult=1), DET, "voc07", [], "nothing to score"),
    "duplicate image id": (GT | {"images": [*GT["images"], {"id": 2}]}, DET, "voc07", [], "repeats the"),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_exits_2_with_one_error_line_and_writes_nothing(tmp_path, capsys, case):
    gt, det, metric, extra, message = case
    gt_path, det_path = files(tmp_path, gt, det)
    if gt == "MISSING":
        gt_path.unlink()
    if det == "MISSING":
        det_path.unlink()
    out = tmp_path / "metrics.json"
    argv = ["evaluate", "--gt", str(gt_path), "--det", str(det_path), "--metric", metric, "--json", str(out)]
    assert main(argv + extra) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert message in lines[0], lines[0]
    assert captured.out == ""
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p for p, keep in (("gt.json", gt != "MISSING"), ("det.json", det != "MISSING")) if keep
    )


def test_unknown_metric_is_an_argument_error(tmp_path, capsys):
    gt_path, det_path = files(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--gt", str(gt_path), "--det", str(det_path), "--metric", "map50"])
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_crowd_regions_are_ignored_by_the_voc_metrics(tmp_path):
    # A detection on an iscrowd box is neither TP nor FP, and the crowd box is not counted in npos.
    gt = GT | {"annotations": [*GT["annotations"], {"image_id": 3, "category_id": 2, "bbox": [0, 0, 50, 50],
                                                     "iscrowd": 1}]}  # fmt: skip
    det = [*DET, {"image_id": 3, "category_id": 2, "bbox": [0, 0, 50, 50], "score": 0.99}]
    with_crowd = evaluate_files(*files(tmp_path, gt, det), metric="voc12")
    without = evaluate_files(*files(tmp_path), metric="voc12")
    assert with_crowd["ap_per_class"] == without["ap_per_class"]
    assert with_crowd["num_gt_per_class"] == without["num_gt_per_class"]
