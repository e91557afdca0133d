"""COCO ground truth and detections read by ``dsod-depth evaluate`` (``dsod_depth/evaluation/io.py``):
damaged files are one error line, never a traceback, and no ``--json`` file is left by a failure."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import strategies as st

from dsod_depth.errors import KitError
from dsod_depth.evaluation.io import load_detections, load_ground_truth
from tests.fuzz.mutations import (
    assert_clean_outcome,
    check_examples,
    example_counts,
    mutated_bytes,
    mutated_tree,
    run_cli,
)  # fmt: skip

GT = {
    "images": [{"id": 1, "width": 64, "height": 48}, {"id": 2, "width": 64, "height": 48}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 10], "area": 200, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [30.5, 5, 10, 12], "area": 120, "difficult": 1},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 64, 48], "area": 3072, "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "chair"}, {"id": 2, "name": "table"}],
}
DETECTIONS = [
    {"image_id": 1, "category_id": 1, "bbox": [2, 3, 19, 11], "score": 0.9},
    {"image_id": 1, "category_id": 2, "bbox": [30, 5, 10, 12], "score": 0.5},
    {"image_id": 2, "category_id": 1, "bbox": [1, 1, 60, 40], "score": 0.7},
    {"image_id": 2, "category_id": 2, "bbox": [5, 5, 5, 5], "score": 0.1},
]


def _as_text(tree) -> bytes:
    return json.dumps(tree).encode()  # NaN / Infinity are written as Python's JSON reader accepts them


def damaged_json(valid) -> st.SearchStrategy[bytes]:
    """A structurally edited tree, or the valid text with its bytes damaged."""
    return st.one_of(mutated_tree(valid).map(_as_text), mutated_bytes(_as_text(valid)))


# One of the two files damaged (the other valid), as (gt bytes, detections bytes).
FILE_PAIRS = st.one_of(
    st.tuples(damaged_json(GT), st.just(_as_text(DETECTIONS))),
    st.tuples(st.just(_as_text(GT)), damaged_json(DETECTIONS)),
)


def _with(tree, edit):
    tree = json.loads(json.dumps(tree))
    edit(tree)
    return _as_text(tree)


# Found by these tests: an integer beyond float64 (JSON allows it) escaped as OverflowError.
REGRESSIONS = [
    (_with(GT, lambda t: t["annotations"][0].__setitem__("bbox", [10**400, 0, 1, 1])), _as_text(DETECTIONS)),
    (_as_text(GT), _with(DETECTIONS, lambda t: t[1].__setitem__("score", -(10**400)))),
]


def _check_loaders(pair: tuple[bytes, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, det_path = Path(tmp) / "gt.json", Path(tmp) / "det.json"
        gt_path.write_bytes(pair[0])
        det_path.write_bytes(pair[1])
        try:
            load_detections(det_path, load_ground_truth(gt_path))
        except KitError:
            pass


@pytest.mark.parametrize("max_examples", example_counts(200))
def test_coco_loaders_return_or_raise_kit_error(max_examples):
    check_examples(FILE_PAIRS, _check_loaders, max_examples=max_examples, always=REGRESSIONS)


def _check_evaluate_cli(case: tuple[tuple[bytes, bytes], str]) -> None:
    (gt_bytes, det_bytes), metric = case
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, det_path, out = Path(tmp) / "gt.json", Path(tmp) / "det.json", Path(tmp) / "metrics.json"
        gt_path.write_bytes(gt_bytes)
        det_path.write_bytes(det_bytes)
        code, stderr = run_cli(["evaluate", "--gt", gt_path, "--det", det_path, "--metric", metric,
                                "--json", out])  # fmt: skip
        if assert_clean_outcome(code, stderr, [out]):
            assert json.loads(out.read_text())["metric"] == metric


@pytest.mark.parametrize("max_examples", example_counts(60))
def test_evaluate_command_on_damaged_files(max_examples):
    cases = st.tuples(FILE_PAIRS, st.sampled_from(["voc07", "voc12", "coco"]))
    check_examples(
        cases,
        _check_evaluate_cli,
        max_examples=max_examples,
        always=[(pair, "voc07") for pair in REGRESSIONS],
    )
