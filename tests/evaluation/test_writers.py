"""The COCO writers of evaluation/io.py: what they write reads back through the checked readers."""

from __future__ import annotations

import json

import numpy as np
import torch

from dsod_depth.evaluation import (
    coco_ground_truth,
    coco_image,
    coco_results,
    load_detections,
    load_ground_truth,
    write_json_atomic,
)


def test_results_are_xywh_with_category_label_plus_one():
    boxes = torch.tensor([[1.5, 2.0, 11.25, 7.0], [0.0, 0.0, 3.0, 4.0]])  # float32 xyxy
    entries = coco_results("img", boxes, torch.tensor([0.9, 0.25]), torch.tensor([0, 2]))
    assert entries == [
        {"image_id": "img", "category_id": 1, "bbox": [1.5, 2.0, 9.75, 5.0], "score": 0.8999999761581421},
        {"image_id": "img", "category_id": 3, "bbox": [0.0, 0.0, 3.0, 4.0], "score": 0.25},
    ]
    assert [list(e) for e in entries] == [["image_id", "category_id", "bbox", "score"]] * 2  # key order
    # numpy arrays give the same entries as tensors; no detections give none
    assert coco_results("img", boxes.numpy(), np.array([0.9, 0.25], np.float32), np.array([0, 2])) == entries
    assert coco_results(7, np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, np.int64)) == []


def test_widths_are_the_float64_differences_of_float32_corners():
    rng = np.random.default_rng(0)
    corners = np.sort(rng.uniform(0, 640, size=(50, 2, 2)).astype(np.float32), axis=1)  # [50, corner, xy]
    boxes = corners.reshape(50, 4)  # [50, 4] x1, y1, x2, y2
    entries = coco_results(1, boxes, np.ones(50, np.float32), np.zeros(50, np.int64))
    for (x1, y1, x2, y2), entry in zip(boxes.tolist(), entries):
        assert entry["bbox"] == [x1, y1, x2 - x1, y2 - y1]


def test_image_entries_keep_the_coco_key_order():
    assert list(coco_image(3, width=128, height=96)) == ["id", "width", "height"]
    entry = coco_image(1, width=np.int64(128), height=96, file_name="a/rgb.png")
    assert entry == {"id": 1, "file_name": "a/rgb.png", "width": 128, "height": 96}
    assert list(entry) == ["id", "file_name", "width", "height"] and type(entry["width"]) is int


def test_ground_truth_and_results_read_back(tmp_path):
    frames = [
        ("f0", 96, 128, np.array([[1, 2, 11, 22], [5, 5, 6, 8]], np.float32), np.array([0, 1]),
         np.array([False, True])),
        ("f1", 96, 128, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)),
        ("f2", 50, 60, torch.tensor([[0.5, 0.5, 10.0, 20.0]]), torch.tensor([1]), torch.tensor([False])),
    ]  # fmt: skip
    gt = coco_ground_truth(frames, ["chair", "table"])
    assert gt["categories"] == [{"id": 1, "name": "chair"}, {"id": 2, "name": "table"}]
    assert gt["images"][2] == {"id": "f2", "width": 60, "height": 50}
    assert [a["id"] for a in gt["annotations"]] == [1, 2, 3]
    assert gt["annotations"][0] == {
        "id": 1, "image_id": "f0", "category_id": 1, "bbox": [1.0, 2.0, 10.0, 20.0], "area": 200.0,
        "iscrowd": 0, "difficult": 0,
    }  # fmt: skip
    write_json_atomic(tmp_path / "gt.json", gt)
    det = coco_results("f0", frames[0][3], np.array([0.5, 0.4]), frames[0][4])
    det += coco_results("f2", frames[2][3], torch.tensor([0.7]), frames[2][4])
    write_json_atomic(tmp_path / "det.json", det)

    read_gt = load_ground_truth(tmp_path / "gt.json")
    assert read_gt.image_ids == ["f0", "f1", "f2"] and read_gt.class_names == ["chair", "table"]
    np.testing.assert_array_equal(read_gt.boxes, [[1, 2, 11, 22], [5, 5, 6, 8], [0.5, 0.5, 10, 20]])
    np.testing.assert_array_equal(read_gt.labels, [0, 1, 1])
    np.testing.assert_array_equal(read_gt.difficult, [False, True, False])
    read_det = load_detections(tmp_path / "det.json", read_gt)
    np.testing.assert_array_equal(read_det.boxes, read_gt.boxes)
    np.testing.assert_array_equal(read_det.image_index, [0, 0, 2])
    assert read_det.coco_results() == json.loads((tmp_path / "det.json").read_text())
