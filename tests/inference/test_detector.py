"""Detector on plain files gives the detections `eval` gives on the store (same frames, same batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsod_depth.data.loader import DetectionDataset
from dsod_depth.engine.checkpoint import load_checkpoint
from dsod_depth.engine.evaluator import predict as evaluate_predict
from dsod_depth.errors import KitError
from dsod_depth.inference.detector import Detector

SCORE = 0.05
BATCH = 2


def _by_image(results: list[dict], image_ids: list[str]) -> list[np.ndarray]:
    """COCO results → per frame float64 [K, 6] rows (label, score, x1, y1, x2, y2), scores ≥ SCORE."""
    rows: dict[str, list] = {i: [] for i in image_ids}
    for r in results:
        if r["score"] >= SCORE:
            x, y, w, h = r["bbox"]
            rows[r["image_id"]].append([r["category_id"] - 1, r["score"], x, y, x + w, y + h])
    return [np.array(rows[i], dtype=np.float64).reshape(-1, 6) for i in image_ids]


def _rows(prediction) -> np.ndarray:
    keep = prediction.scores >= SCORE
    return np.column_stack([prediction.labels[keep], prediction.scores[keep], prediction.boxes[keep]]).astype(
        np.float64
    )


@pytest.mark.parametrize("modality", ["depth", "hha", "rgb+hha"])
def test_predict_on_files_equals_eval_on_the_store(modality, detect_runs, detect_store, frame_files):
    run = detect_runs[modality]
    det = Detector.from_checkpoint(run, device="cpu")
    assert det.modality == modality.replace("depth", "raw") and det.input_size == (64, 64)
    rgb = frame_files["rgb"] if "rgb" in modality else None
    got = det.predict(rgb=rgb, depth=frame_files["depth"], raw_depth=frame_files["raw"],
                      intrinsics=frame_files["cameras"], score_threshold=0.01, batch_size=BATCH)  # fmt: skip

    dataset = DetectionDataset(detect_store, "test", modality, 64)
    results = evaluate_predict(
        det.model, dataset, device=torch.device("cpu"), batch_size=BATCH, progress=False
    )
    expected = _by_image(results, frame_files["image_ids"])
    assert sum(len(e) for e in expected) > 0  # the comparison is not vacuous
    for prediction, want in zip(got, expected):
        have = _rows(prediction)
        assert have.shape == want.shape
        np.testing.assert_array_equal(have[:, 0], want[:, 0])
        np.testing.assert_allclose(have[:, 1], want[:, 1], atol=1e-4, rtol=0)
        np.testing.assert_allclose(have[:, 2:], want[:, 2:], atol=1e-3, rtol=0)
        assert prediction.class_names == [det.classes[i] for i in prediction.labels]


def test_predict_takes_arrays_and_one_frame(detect_runs, frame_files):
    from PIL import Image

    det = Detector.from_checkpoint(detect_runs["hha"], device="cpu")
    depth_mm = np.array(Image.open(frame_files["depth"][0]))
    raw_mm = np.array(Image.open(frame_files["raw"][0]))
    camera = frame_files["cameras"][0]
    from_files = det.predict(
        depth=frame_files["depth"][0], raw_depth=frame_files["raw"][0], intrinsics=camera
    )
    from_arrays = det.predict(depth=depth_mm, raw_depth=raw_mm, intrinsics=camera.as_tuple())
    metres = det.predict(depth=depth_mm / 1000.0, raw_depth=raw_mm / 1000.0, intrinsics=camera)
    for other in (from_arrays, metres):
        np.testing.assert_array_equal(other.labels, from_files.labels)
        np.testing.assert_allclose(other.boxes, from_files.boxes, atol=1e-4)
    assert from_files.size == depth_mm.shape


def test_checkpoint_records_what_inference_needs(detect_runs, detect_store):
    state = load_checkpoint(detect_runs["rgb+hha"] / "checkpoints" / "last.pt")
    record = state["inference"]
    assert record["build"]["name"] == "dsod_tiny" and record["build"]["options"]["fusion"] == "late"
    assert [g["name"] for g in record["groups"]] == ["rgb", "hha"]
    dataset = DetectionDataset(detect_store, "train", "rgb+hha", 64)
    np.testing.assert_allclose(record["groups"][1]["mean"], dataset.mean["hha"].tolist())
    assert record["groups"][1]["needs_camera"] and not record["groups"][0]["needs_camera"]
    assert record["input_size"] == [64, 64] and record["class_names"] == list(dataset.class_names)


def test_old_checkpoint_needs_the_store(detect_runs, detect_store, tmp_path, frame_files):
    state = load_checkpoint(detect_runs["hha"] / "checkpoints" / "last.pt")
    del state["inference"]
    old = tmp_path / "old.pt"
    torch.save(state, old)
    with pytest.raises(KitError, match="--store"):
        Detector.from_checkpoint(old, device="cpu")
    det = Detector.from_checkpoint(old, device="cpu", store=detect_store)
    new = Detector.from_checkpoint(detect_runs["hha"], device="cpu")
    args = {"depth": frame_files["depth"][0], "raw_depth": frame_files["raw"][0],
            "intrinsics": frame_files["cameras"][0]}  # fmt: skip
    np.testing.assert_allclose(det.predict(**args).scores, new.predict(**args).scores)


def test_hha_detector_without_camera_is_refused(detect_runs, frame_files):
    det = Detector.from_checkpoint(detect_runs["hha"], device="cpu")
    with pytest.raises(KitError, match="camera intrinsics"):
        det.predict(depth=frame_files["depth"][0])
    depth_only = Detector.from_checkpoint(detect_runs["depth"], device="cpu")
    assert len(depth_only.predict(depth=frame_files["depth"][0], raw_depth=frame_files["raw"][0])) >= 0
