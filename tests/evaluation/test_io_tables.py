"""Detection-file checks, write_json_atomic, format_table and the percentage formatter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dsod_depth.errors import KitError
from dsod_depth.evaluation import evaluate_voc, format_table, write_json_atomic
from dsod_depth.evaluation.io import _detection_columns, _detection_columns_explained
from dsod_depth.evaluation.tables import pct


def test_write_json_atomic_creates_folders_and_replaces(tmp_path):
    path = tmp_path / "eval" / "test" / "metrics.json"
    write_json_atomic(path, {"map": 0.5})
    write_json_atomic(path, {"map": 0.75, "ap_per_class": {"a": None}})
    assert json.loads(path.read_text()) == {"map": 0.75, "ap_per_class": {"a": None}}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_write_json_atomic_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"map": 0.5})
    with pytest.raises(KitError, match="metrics.json"):
        write_json_atomic(path, {"map": float("nan")})  # NaN is not JSON
    assert json.loads(path.read_text()) == {"map": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    with pytest.raises(KitError, match="is a folder"):
        write_json_atomic(tmp_path, {"map": 0.5})


def test_format_table_lists_every_class_and_the_mean():
    gt = [(np.array([[0.0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0, 1]), np.array([False, False]))]
    det = [(np.array([[0.0, 0, 10, 10]]), np.array([0.9]), np.array([0]))]
    result = evaluate_voc(gt, det, num_classes=3, class_names=["chair", "table", "night stand"])
    lines = format_table(result).splitlines()
    assert lines[0].startswith("voc07: PASCAL VOC2007 11-point AP at IoU >= 0.50")
    rows = {line.split("  ")[0].strip(): line.split() for line in lines[3:6]}
    assert rows["chair"][-3:] == ["100.00", "1", "1"]
    assert rows["table"][-3:] == ["0.00", "1", "0"]
    assert rows["night stand"][-3:] == ["-", "0", "0"]
    assert lines[-1].split()[:2] == ["mAP", "50.00"]
    assert "absent (no ground truth to score): night stand" in lines[-1]


def test_pct_formats_a_fraction_and_marks_what_does_not_exist():
    assert pct(0.5) == "50.00" and pct(1) == "100.00" and pct(np.float32(0.125)) == "12.50"
    assert pct(0.1234, decimals=1) == "12.3" and pct(0.0, decimals=1) == "0.0"
    assert pct(None) == pct(float("nan")) == "-"
    assert pct(None, decimals=1, missing="—") == "—" and pct(float("nan"), missing="") == ""


def test_every_table_formats_percentages_with_the_one_formatter():
    from dsod_depth.experiments import tables as experiment_tables
    from dsod_depth.viz import report

    for module in (experiment_tables, report):
        assert module.pct is pct and not hasattr(module, "_pct")


def test_fast_and_explained_detection_checks_agree_on_valid_files():
    rng = np.random.default_rng(0)
    index_of = {f"img{i}": i for i in range(5)}
    label_of = {1: 0, 4: 1}
    data = [
        {"image_id": f"img{rng.integers(5)}", "category_id": int(rng.choice([1, 4])),
         "bbox": [int(rng.integers(50)), float(rng.random() * 50), float(rng.random() * 9), 3],
         "score": float(rng.random()) if i % 3 else 1}
        for i in range(40)
    ]  # fmt: skip
    fast = _detection_columns(data, index_of, label_of)
    slow = _detection_columns_explained(data, index_of, label_of, Path("det.json"), "gt.json")
    assert fast is not None
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Values the fast path must refuse, leaving the message to the explained path.
    for bad in ({"bbox": [0, 0, True, 1]}, {"score": "0.5"}, {"image_id": 1.0}, {"category_id": 2},
                {"bbox": [0, 0, 1, -1]}, {"bbox": (0, 0, 1, 1)}, {"score": float("inf")}):  # fmt: skip
        assert _detection_columns([*data, {**data[0], **bad}], index_of, label_of) is None, bad
