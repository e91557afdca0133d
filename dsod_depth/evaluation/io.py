"""The COCO JSON files of DESIGN.md "File formats": reading and checking them, writing them atomically.

Ground truth is a COCO annotation file: ``images`` (each with an ``id``), ``annotations`` (``image_id``,
``category_id``, ``bbox`` [x, y, w, h] in pixels, optional ``difficult`` and ``iscrowd`` 0/1) and
``categories`` (``id``, ``name``). Detections are a COCO results list of ``image_id``, ``category_id``,
``bbox`` and ``score``. A COCO box [x, y, w, h] is the continuous box [x, x + w] × [y, y + h].

Every problem becomes one :class:`KitError` line naming the file, the entry and the fix; nothing is
evaluated or written from a file that fails a check. The writers (:func:`coco_results`,
:func:`coco_image`, :func:`coco_ground_truth`) build the same entries that ``eval`` and ``detect`` write,
so the format is spelled once, here.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsod_depth.errors import KitError
from dsod_depth.fileio import write_text_atomic

__all__ = [
    "GroundTruthFile",
    "DetectionsFile",
    "load_ground_truth",
    "load_detections",
    "coco_results",
    "coco_image",
    "coco_ground_truth",
    "write_json_atomic",
]


@dataclass(frozen=True)
class GroundTruthFile:
    """A checked COCO annotation file. N = annotations, in file order; K = categories, by ascending id."""

    path: str
    image_ids: list[int | str]  # the images' ``id`` values, file order
    category_ids: list[int]  # [K], ascending
    class_names: list[str]  # [K], name of each category id
    image_index: np.ndarray  # int64 [N], position of the annotation's image in ``image_ids``
    boxes: np.ndarray  # float64 [N, 4], x1, y1, x2, y2 pixels (continuous)
    labels: np.ndarray  # int64 [N], 0-based index into ``category_ids``
    difficult: np.ndarray  # bool [N], the ``difficult`` flag
    iscrowd: np.ndarray  # bool [N], the ``iscrowd`` flag
    coco: dict[str, Any]  # the file's content for pycocotools, annotations normalised (see coco.py)


@dataclass(frozen=True)
class DetectionsFile:
    """A checked COCO results list. D = detections, in file order (the order that breaks score ties)."""

    path: str
    image_ids: list[int | str]  # [D], each detection's ``image_id`` as in the file
    category_ids: list[int]  # [D], each detection's ``category_id``
    image_index: np.ndarray  # int64 [D], position of the detection's image in the GT ``image_ids``
    xywh: np.ndarray  # float64 [D, 4], the file's [x, y, w, h] in pixels
    boxes: np.ndarray  # float64 [D, 4], x1, y1, x2, y2 = x, y, x + w, y + h
    scores: np.ndarray  # float64 [D]
    labels: np.ndarray  # int64 [D], 0-based index into the GT ``category_ids``

    def coco_results(self) -> list[dict[str, Any]]:
        """The detections as a COCO results list (``image_id``, ``category_id``, ``bbox``, ``score``)."""
        return [
            {"image_id": iid, "category_id": cid, "bbox": box, "score": score}
            for iid, cid, box, score in zip(self.image_ids, self.category_ids, self.xywh.tolist(),
                                            self.scores.tolist())
        ]  # fmt: skip


def _read_json(path: str | os.PathLike[str], what: str) -> Any:
    p = Path(path)
    if not p.exists():
        raise KitError(f"{what} file not found: {p}")
    if not p.is_file():
        raise KitError(f"{what} path is not a file: {p}")
    try:
        with p.open("r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise KitError(f"{p}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except UnicodeDecodeError:
        raise KitError(f"{p}: not UTF-8 text; {what} must be a JSON file") from None
    except OSError as err:
        raise KitError(f"cannot read {what} file {p}: {err.strerror}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float64 (JSON integers have no size limit)
        return False


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _bbox(entry: dict[str, Any], where: str) -> list[float]:
    """COCO [x, y, w, h] of an entry, checked: 4 finite numbers, w >= 0, h >= 0."""
    bbox = entry["bbox"]
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        raise KitError(f"{where}: bbox must be 4 finite numbers [x, y, w, h]; got {_short(bbox)}")
    if bbox[2] < 0 or bbox[3] < 0:
        raise KitError(f"{where}: bbox width and height must be >= 0; got {_short(bbox)}")
    return [float(v) for v in bbox]


def _entries(data: Any, key: str | None, path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """The list ``data[key]`` (or ``data`` itself) whose entries are objects with the ``required`` keys."""
    items = data if key is None else data.get(key)
    name = "the file" if key is None else f"'{key}'"
    if not isinstance(items, list):
        raise KitError(f"{path}: {name} must be a JSON list; got {type(items).__name__}")
    for i, item in enumerate(items):
        where = f"entry {i}" if key is None else f"{key}[{i}]"
        if not isinstance(item, dict):
            raise KitError(f"{path}: {where} must be a JSON object; got {_short(item)}")
        missing = [k for k in required if k not in item]
        if missing:
            raise KitError(f"{path}: {where} lacks the key '{missing[0]}' (needs {', '.join(required)})")
    return items


def _flag(entry: dict[str, Any], key: str, where: str) -> bool:
    value = entry.get(key, 0)
    if value not in (0, 1) or isinstance(value, float):
        raise KitError(f"{where}: '{key}' must be 0 or 1; got {_short(value)}")
    return bool(value)


def load_ground_truth(path: str | os.PathLike[str]) -> GroundTruthFile:
    """Read and check a COCO annotation file (format in the module docstring)."""
    p = Path(path)
    data = _read_json(p, "ground-truth")
    if not isinstance(data, dict):
        raise KitError(f"{p}: ground truth must be a COCO annotation object with 'images', "
                       f"'annotations' and 'categories'; got a JSON {type(data).__name__}")  # fmt: skip
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise KitError(f"{p}: ground truth lacks the key '{key}' (COCO annotation format)")

    categories = _entries(data, "categories", p, ("id", "name"))
    names: dict[int, str] = {}
    for i, cat in enumerate(categories):
        cid, name = cat["id"], cat["name"]
        if not isinstance(cid, int) or isinstance(cid, bool) or not isinstance(name, str):
            raise KitError(f"{p}: categories[{i}] needs an int 'id' and a str 'name'; got {_short(cat)}")
        if cid in names or name in names.values():
            raise KitError(f"{p}: categories[{i}] repeats the id {cid} or the name {name!r}")
        names[cid] = name
    if not names:
        raise KitError(f"{p}: 'categories' is empty; list the classes as {{'id': ..., 'name': ...}}")
    category_ids = sorted(names)
    label_of = {cid: k for k, cid in enumerate(category_ids)}

    images = _entries(data, "images", p, ("id",))
    image_ids: list[int | str] = []
    index_of: dict[int | str, int] = {}
    for i, img in enumerate(images):
        iid = img["id"]
        if not _is_id(iid):
            raise KitError(f"{p}: images[{i}].id must be an integer or a string; got {_short(iid)}")
        if iid in index_of:
            raise KitError(f"{p}: images[{i}] repeats the image id {iid!r}")
        index_of[iid] = len(image_ids)
        image_ids.append(iid)
    if len({type(i) for i in image_ids}) > 1:
        raise KitError(f"{p}: image ids mix integers and strings; use one kind")

    anns = _entries(data, "annotations", p, ("image_id", "category_id", "bbox"))
    n = len(anns)
    image_index = np.zeros(n, dtype=np.int64)
    labels = np.zeros(n, dtype=np.int64)
    boxes = np.zeros((n, 4), dtype=np.float64)
    difficult = np.zeros(n, dtype=bool)
    iscrowd = np.zeros(n, dtype=bool)
    for i, ann in enumerate(anns):
        where = f"{p}: annotations[{i}]"
        iid, cid = ann["image_id"], ann["category_id"]
        if not _is_id(iid) or iid not in index_of:
            raise KitError(f"{where}: image_id {iid!r} is not in 'images'")
        if not _is_id(cid) or cid not in label_of:
            raise KitError(f"{where}: category_id {cid!r} is not in 'categories'")
        x, y, w, h = _bbox(ann, where)
        image_index[i], labels[i] = index_of[iid], label_of[cid]
        boxes[i] = (x, y, x + w, y + h)
        difficult[i] = _flag(ann, "difficult", where)
        iscrowd[i] = _flag(ann, "iscrowd", where)
        if "area" in ann and not _is_number(ann["area"]):
            raise KitError(f"{where}: area must be a finite number; got {_short(ann['area'])}")

    return GroundTruthFile(
        path=str(p),
        image_ids=image_ids,
        category_ids=category_ids,
        class_names=[names[c] for c in category_ids],
        image_index=image_index,
        boxes=boxes,
        labels=labels,
        difficult=difficult,
        iscrowd=iscrowd,
        coco={"images": images, "annotations": anns, "categories": categories},
    )


_DET_KEYS = ("image_id", "category_id", "bbox", "score")


def load_detections(path: str | os.PathLike[str], gt: GroundTruthFile) -> DetectionsFile:
    """Read and check a COCO results list against its ground truth (ids must exist there).

    A file of valid entries goes through a vectorised check (C-speed type sets and numpy); otherwise a
    per-entry loop finds the first bad entry and names it.
    """
    p = Path(path)
    data = _read_json(p, "detections")
    if not isinstance(data, list):
        raise KitError(f"{p}: detections must be a COCO results list [{{'image_id', 'category_id', "
                       f"'bbox', 'score'}}, ...]; got a JSON {type(data).__name__}")  # fmt: skip
    index_of = {iid: i for i, iid in enumerate(gt.image_ids)}
    label_of = {cid: k for k, cid in enumerate(gt.category_ids)}
    columns = _detection_columns(data, index_of, label_of)
    if columns is None:
        columns = _detection_columns_explained(data, index_of, label_of, p, gt.path)
    iids, cids, image_index, labels, xywh, scores = columns
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)  # [D, 4] xyxy
    return DetectionsFile(path=str(p), image_ids=iids, category_ids=cids, image_index=image_index, xywh=xywh,
                          boxes=boxes, scores=scores, labels=labels)  # fmt: skip


_Columns = tuple[list, list, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _detection_columns(data: list[Any], index_of: dict, label_of: dict) -> _Columns | None:
    """Fast path: the columns when every entry is valid, else None (then the explained path runs).

    Type checks are sets of ``type`` over whole columns, so bool (a subclass of int) and numeric
    strings are refused as in the per-entry path.
    """
    if not set(map(type, data)) <= {dict}:
        return None
    try:
        iids = [d["image_id"] for d in data]
        cids = [d["category_id"] for d in data]
        bboxes = [d["bbox"] for d in data]
        scores = [d["score"] for d in data]
    except KeyError:
        return None
    if not (set(map(type, iids)) <= {int, str} and set(map(type, cids)) <= {int}):
        return None
    if not (set(map(type, bboxes)) <= {list} and set(map(len, bboxes)) <= {4}):
        return None
    flat = list(itertools.chain.from_iterable(bboxes))
    if not (set(map(type, flat)) <= {int, float} and set(map(type, scores)) <= {int, float}):
        return None
    try:
        image_index = np.fromiter(map(index_of.__getitem__, iids), dtype=np.int64, count=len(iids))
        labels = np.fromiter(map(label_of.__getitem__, cids), dtype=np.int64, count=len(cids))
    except KeyError:
        return None
    try:
        xywh = np.array(flat, dtype=np.float64).reshape(-1, 4)  # [D, 4]
        score_array = np.array(scores, dtype=np.float64)  # [D]
    except OverflowError:  # an integer beyond float64: the explained path names it
        return None
    if not (np.isfinite(xywh).all() and np.isfinite(score_array).all() and (xywh[:, 2:] >= 0).all()):
        return None
    return iids, cids, image_index, labels, xywh, score_array


def _detection_columns_explained(
    data: list[Any], index_of: dict, label_of: dict, path: Path, gt_path: str
) -> _Columns:
    """Slow path: check entry by entry; raise :class:`KitError` naming the first bad entry."""
    entries = _entries(data, None, path, _DET_KEYS)
    n = len(entries)
    image_index = np.zeros(n, dtype=np.int64)
    labels = np.zeros(n, dtype=np.int64)
    xywh = np.zeros((n, 4), dtype=np.float64)
    scores = np.zeros(n, dtype=np.float64)
    for i, det in enumerate(entries):
        where = f"{path}: entry {i}"
        iid, cid, score = det["image_id"], det["category_id"], det["score"]
        if not _is_id(iid) or iid not in index_of:
            raise KitError(f"{where}: image_id {iid!r} is not in the ground truth {gt_path}")
        if not _is_id(cid) or cid not in label_of:
            raise KitError(f"{where}: category_id {cid!r} is not a category of the ground truth {gt_path}")
        if not _is_number(score):
            raise KitError(f"{where}: score must be a finite number; got {_short(score)}")
        xywh[i] = _bbox(det, where)
        image_index[i], labels[i], scores[i] = index_of[iid], label_of[cid], score
    iids, cids = [d["image_id"] for d in entries], [d["category_id"] for d in entries]
    return iids, cids, image_index, labels, xywh, scores


# --------------------------------------------------------------------------- writers


def _xywh_rows(boxes_xyxy: Any) -> list[list[float]]:
    """[K, 4] x1, y1, x2, y2 (tensor or array, any float dtype) → K COCO [x, y, w, h] lists of floats.

    The conversion runs in float64: float32 corners are exact there, so w = x2 - x1 is the difference
    Python floats give (the values the files have always held).
    """
    # torch only when a file is written: reading and scoring files (`dsod-depth evaluate`) stays torch-free.
    import torch

    from dsod_depth.detection.boxes import xyxy_to_xywh

    boxes = torch.as_tensor(boxes_xyxy).to(torch.float64).reshape(-1, 4)  # [K, 4]
    return xyxy_to_xywh(boxes).tolist()


def _values(array: Any) -> list:
    """A 1-D tensor or array (or a list) as a list of Python numbers."""
    return array.tolist() if hasattr(array, "tolist") else list(array)


def coco_results(image_id: int | str, boxes_xyxy: Any, scores: Any, labels: Any) -> list[dict[str, Any]]:
    """One frame's detections as COCO results entries (``image_id``, ``category_id``, ``bbox``, ``score``).

    Args:
        image_id: the frame's id in the ground truth (or ``images.json``).
        boxes_xyxy: float [K, 4] x1, y1, x2, y2 in the frame's pixels (tensor or array).
        scores: float [K]; labels: int [K], 0-based class indices (category id = label + 1).
    """
    return [
        {"image_id": image_id, "category_id": int(label) + 1, "bbox": bbox, "score": float(score)}
        for bbox, score, label in zip(_xywh_rows(boxes_xyxy), _values(scores), _values(labels))
    ]


def coco_image(
    image_id: int | str, *, width: int, height: int, file_name: str | None = None
) -> dict[str, Any]:
    """A COCO ``images`` entry: ``id``, ``file_name`` (only when given), ``width``, ``height`` in pixels."""
    entry: dict[str, Any] = {"id": image_id}
    if file_name is not None:
        entry["file_name"] = file_name
    entry.update(width=int(width), height=int(height))
    return entry


def coco_ground_truth(
    frames: Iterable[tuple[int | str, int, int, Any, Any, Any]], class_names: Sequence[str]
) -> dict[str, Any]:
    """A COCO annotation dict (``images``, ``annotations``, ``categories``) in the format read above.

    Args:
        frames: per frame ``(image_id, height, width, boxes, labels, difficult)``: boxes float [N, 4]
            x1, y1, x2, y2 pixels, labels int [N] 0-based, difficult bool [N] (tensors or arrays).
        class_names: category ``i + 1`` is ``class_names[i]``.

    Annotation ids count from 1 in frame order; ``area`` is w · h of the continuous box; ``iscrowd`` 0.
    """
    images, annotations = [], []
    for image_id, height, width, boxes, labels, difficult in frames:
        images.append(coco_image(image_id, width=width, height=height))
        for (x, y, w, h), label, diff in zip(_xywh_rows(boxes), _values(labels), _values(difficult)):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0, "difficult": int(diff),
            })  # fmt: skip
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON: to a temporary file in the same folder, then ``os.replace``.

    A reader never sees a half-written file and an existing file survives a failed write. Parent
    folders are created. NaN/inf are refused (they are not JSON): absent values must be ``None``.
    """
    p = Path(path)
    if p.is_dir():
        raise KitError(f"cannot write JSON to {p}: it is a folder; give a file name")
    try:
        text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    except ValueError as err:
        raise KitError(f"cannot write {p}: {err}") from None
    write_text_atomic(p, text)
