"""SUN RGB-D 2D annotations: polygons → boxes, free-text names → the 19 detection classes (REFERENCE §4).

``annotation2Dfinal/index.json`` lists ``objects`` (``{"name": ...}``, ``null`` or ``{}`` for
deleted objects) and ``frames[0].polygon`` (``{"x": [...], "y": [...], "object": k}``);
:func:`polygon_boxes` turns them into boxes, dropping a malformed polygon (not its frame) with the
reason it is counted under (:data:`POLYGON_REASONS`). Names are free text typed by annotators ("Chair",
"office_chair", "chairs", "night stand", "nightstand", "trash can", "chair:2", ...). A name is
mapped in three steps; the full table with the reasons is in ``datasets/sunrgbd/README.md``:

1. **normalise**: lower case; ``_``, ``-``, ``/``, ``:`` and ``.`` become spaces; characters
   other than letters, digits and spaces are dropped; tokens made only of digits are dropped and
   trailing digits are cut from words ("chair2" → "chair"); spaces collapse.
2. **exact names** (:data:`EXACT`): synonyms and compound names whose last word would mislead
   ("bedside table" is a night stand, "cabinet door" is no door).
3. **head noun** (:data:`HEADS`): otherwise the last word, singularised, decides for the classes
   whose head noun is unambiguous ("dining table", "office chairs", "floor lamp").

Anything else is not one of the 19 classes and gives no box. The class order equals
:data:`dsod_depth.data.nyudv2.DETECTION_CLASSES`; names follow the toolbox's ``dection19list``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dsod_depth.data.summary import Dropped

__all__ = [
    "CLASSES", "EXACT", "HEADS", "POLYGON_REASONS", "MIXED_REASONS", "MalformedFrame", "FrameBoxes",
    "normalise_name", "detection_class", "polygon_boxes",
]  # fmt: skip

# The toolbox's 19 detection classes (sunrgbd_meta/dection19list.mat), in label order.
CLASSES = (
    "bathtub", "bed", "bookshelf", "box", "chair", "counter", "desk", "door", "dresser", "garbage_bin",
    "lamp", "monitor", "night_stand", "pillow", "sink", "sofa", "table", "tv", "toilet",
)  # fmt: skip

# Normalised full names → class name, or None for names that look like a class but are not one.
# Checked before the head-noun rule, so entries here win.
EXACT: dict[str, str | None] = {
    # bathtub
    "bath tub": "bathtub", "tub": "bathtub", "bath": "bathtub", "jacuzzi": "bathtub",
    # bookshelf (plain "shelf"/"shelves" are a different class in the 37-class list)
    "book shelf": "bookshelf", "book shelves": "bookshelf", "book case": "bookshelf",
    "book rack": "bookshelf", "bookshelve": "bookshelf",
    # chair: single seats, upholstered or not (stools and benches are not chairs in NYU/SUN)
    "armchair": "chair", "arm chair": "chair", "sofa chair": "chair", "recliner": "chair",
    # counter
    "countertop": "counter", "counter top": "counter", "countertops": "counter",
    # door: doors of rooms and buildings, not those of furniture or appliances
    "cabinet door": None, "cupboard door": None, "oven door": None, "fridge door": None,
    "refrigerator door": None, "microwave door": None, "dishwasher door": None, "drawer door": None,
    "shower door": None, "car door": None,
    # dresser
    "chest of drawers": "dresser", "drawer chest": "dresser",
    # garbage bin ("bin" alone is too vague: storage bins are boxes)
    "garbage bin": "garbage_bin", "garbage can": "garbage_bin", "garbage": "garbage_bin",
    "trash bin": "garbage_bin", "trash can": "garbage_bin", "trashcan": "garbage_bin", "trash": "garbage_bin",
    "waste bin": "garbage_bin", "wastebin": "garbage_bin", "waste basket": "garbage_bin",
    "wastebasket": "garbage_bin", "waste paper basket": "garbage_bin", "wastepaper basket": "garbage_bin",
    "recycle bin": "garbage_bin", "recycling bin": "garbage_bin", "dustbin": "garbage_bin",
    "dust bin": "garbage_bin", "rubbish bin": "garbage_bin",
    # monitor
    "computer monitor": "monitor", "computer screen": "monitor", "baby monitor": None,
    # night stand (the head noun would say "table")
    "night stand": "night_stand", "night stands": "night_stand", "night table": "night_stand",
    "bedside table": "night_stand", "bed side table": "night_stand", "bedside cabinet": "night_stand",
    "nightstand table": "night_stand",
    # sink
    "washbasin": "sink", "wash basin": "sink", "basin": "sink",
    # sofa
    "loveseat": "sofa", "love seat": "sofa", "settee": "sofa", "sofa bed": "sofa",
    # table
    "table top": "table", "tabletop": "table",
    # tv
    "television set": "tv", "tv set": "tv", "tv screen": "tv",
    # toilet (its parts count as the toilet; "toilet paper" and "toilet brush" end in other nouns)
    "toilet bowl": "toilet", "toilet seat": "toilet", "toilet tank": "toilet",
}  # fmt: skip

# Head nouns (last word, singular) that decide the class when the full name is not in EXACT.
HEADS: dict[str, str] = {
    "bathtub": "bathtub", "bed": "bed", "bookshelf": "bookshelf", "bookcase": "bookshelf", "box": "box",
    "chair": "chair", "counter": "counter", "desk": "desk", "door": "door", "dresser": "dresser",
    "lamp": "lamp", "monitor": "monitor", "nightstand": "night_stand", "pillow": "pillow", "sink": "sink",
    "sofa": "sofa", "couch": "sofa", "table": "table", "tv": "tv", "television": "tv", "toilet": "toilet",
}  # fmt: skip

_SEPARATORS = re.compile(r"[_\-/:.,;]+")
_NOT_WORD = re.compile(r"[^a-z0-9 ]+")


def normalise_name(name: str) -> str:
    """Free-text annotation name → normalised lower-case words (step 1 of the module doc)."""
    text = _NOT_WORD.sub("", _SEPARATORS.sub(" ", str(name).lower()))
    words = [w.rstrip("0123456789") for w in text.split()]
    return " ".join(w for w in words if w)


def _singular(word: str) -> str:
    """Plural head nouns of :data:`HEADS` → singular ("boxes" → "box", "couches" → "couch")."""
    for suffix, cut in (("ves", "f"), ("es", ""), ("s", "")):  # "bookshelves" → "bookshelf"
        stem = word[: -len(suffix)] + cut if word.endswith(suffix) else None
        if stem and stem in HEADS:
            return stem
    return word


def detection_class(name: str) -> int | None:
    """0-based index into :data:`CLASSES` of a free-text name, or None when it is none of the 19."""
    text = normalise_name(name)
    if not text:
        return None
    if text in EXACT:
        target = EXACT[text]
    else:
        target = HEADS.get(_singular(text.split()[-1]))
    return None if target is None else CLASSES.index(target)


class MalformedFrame(Exception):
    """A frame folder that cannot be used; ``file`` is the offending file, ``reason`` says why."""

    def __init__(self, file: Path, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


# Why a polygon is left out of its object's box, in the order they are checked; the keys of the
# counts in the preparation summary. The frame and its other polygons are kept.
_NOT_AN_OBJECT = "not a JSON object"  # the polygon entry itself
_BAD_INDEX = "object index not in objects"  # "object" missing, not an integer, or out of range
_NOT_LISTS = "x/y not lists"  # the real data has x or y as a single number
_LENGTHS_DIFFER = "x/y lengths differ"
_NON_NUMERIC = "non-numeric coordinates"  # strings, booleans, null, nested lists
_NON_FINITE = "non-finite coordinates"  # NaN, Infinity (Python's JSON reader accepts them)
_FEW_POINTS = "fewer than 2 distinct points"  # empty lists included
_ZERO_AREA = "zero area in the image"  # a line, or outside the image, after clipping to [0, W] × [0, H]
POLYGON_REASONS = (
    _NOT_AN_OBJECT, _BAD_INDEX, _NOT_LISTS, _LENGTHS_DIFFER, _NON_NUMERIC, _NON_FINITE, _FEW_POINTS,
    _ZERO_AREA,
)  # fmt: skip
# Reason of an object whose dropped polygons have different reasons.
MIXED_REASONS = "mixed reasons"


class FrameBoxes(NamedTuple):
    """What :func:`polygon_boxes` makes of one annotation file.

    boxes: float32 [N, 4] x1, y1, x2, y2 pixels; labels: int64 [N] 0-based into :data:`CLASSES`;
    dropped_polygons: polygons left out (index into ``frames[0].polygon``, reason from
    :data:`POLYGON_REASONS`); dropped_objects: detection-class objects left without a valid polygon
    (index into ``objects``, the reason of their polygons or :data:`MIXED_REASONS`).
    """

    boxes: np.ndarray
    labels: np.ndarray
    dropped_polygons: list[Dropped]
    dropped_objects: list[Dropped]


class _BadPolygon(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason} ({detail})")
        self.reason, self.detail = reason, detail


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object_name(entry: object) -> str | None:
    """The name of an ``objects`` entry, or None for a deleted one (``null``, ``{}``, empty name)."""
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) and name.strip() else None


def _clipped_box(poly: dict, width: int, height: int) -> list[float]:
    """x1, y1, x2, y2 of one polygon's vertices clipped to [0, W] × [0, H]; raises _BadPolygon."""
    xs, ys = poly.get("x"), poly.get("y")
    if not isinstance(xs, list) or not isinstance(ys, list):
        raise _BadPolygon(_NOT_LISTS, f"x = {_short(xs)}, y = {_short(ys)}")
    if len(xs) != len(ys):
        raise _BadPolygon(_LENGTHS_DIFFER, f"{len(xs)} x, {len(ys)} y")
    bad = [v for v in xs + ys if isinstance(v, bool) or not isinstance(v, (int, float))]
    if bad:
        raise _BadPolygon(_NON_NUMERIC, f"{_short(bad[0])}")
    try:
        x, y = np.array(xs, dtype=np.float64), np.array(ys, dtype=np.float64)  # [P] each
    except OverflowError:  # an integer beyond float64
        raise _BadPolygon(_NON_FINITE, "a coordinate beyond float range") from None
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise _BadPolygon(_NON_FINITE, f"x = {_short(xs)}, y = {_short(ys)}")
    distinct = len(set(zip(x.tolist(), y.tolist())))
    if distinct < 2:
        raise _BadPolygon(_FEW_POINTS, f"{distinct} distinct of {len(xs)} points")
    extent = [float(x.min()), float(y.min()), float(x.max()), float(y.max())]
    box = [min(max(extent[0], 0.0), width), min(max(extent[1], 0.0), height), min(max(extent[2], 0.0), width),
           min(max(extent[3], 0.0), height)]  # fmt: skip
    if not (box[2] > box[0] and box[3] > box[1]):
        raise _BadPolygon(_ZERO_AREA, f"extent {[round(v, 2) for v in extent]} in {width}×{height}")
    return box


def polygon_boxes(
    annotation: dict, width: int, height: int, file: Path, unmapped: Counter | None = None
) -> FrameBoxes:
    """Boxes of the detection-class objects of one ``annotation2Dfinal/index.json``.

    ``annotation["objects"][k]["name"]`` is the free-text name of object k;
    ``annotation["frames"][0]["polygon"]`` lists ``{"x": [...], "y": [...], "object": k}``. The
    vertices are points on the continuous image plane, so a polygon's box is the min/max of its
    vertices clipped to [0, W] × [0, H], and an object's box is the union of its polygons' boxes
    (an occluded object may have several polygons).

    A malformed polygon is dropped, not the frame, with one of :data:`POLYGON_REASONS`; an object
    keeps the union of its valid polygons and is dropped only when none is valid. Polygons of
    deleted objects (``null`` or nameless entries) and of names outside the 19 classes give no box
    and are not checked. ``unmapped``, if given, counts the (lower-cased) names outside the 19
    classes, once per object with polygons.

    Raises :class:`MalformedFrame` only when the top-level structure is unusable (``objects`` or
    ``frames`` not lists, ``frames[0]`` not an object, ``frames[0].polygon`` not a list).
    """
    objects, frames = annotation.get("objects"), annotation.get("frames")
    if not isinstance(objects, list) or not isinstance(frames, list):
        raise MalformedFrame(file, "missing 'objects' or 'frames' list")
    first = frames[0] if frames else None  # SUN RGB-D frames are single images: one annotated frame
    if first is not None and not isinstance(first, dict):
        raise MalformedFrame(file, "'frames[0]' is not an object")
    polygons = (first or {}).get("polygon", [])
    if not isinstance(polygons, list):
        raise MalformedFrame(file, "'frames[0].polygon' is not a list")
    dropped_polygons: list[Dropped] = []
    boxes_of: dict[int, list[list[float]]] = {}  # object → boxes of its valid polygons
    failed_of: dict[int, list[Dropped]] = {}  # object → its dropped polygons
    labels_of: dict[int, int] = {}
    unmapped_seen: set[int] = set()
    for i, poly in enumerate(polygons):
        if not isinstance(poly, dict):
            dropped_polygons.append(Dropped(i, _NOT_AN_OBJECT, _short(poly)))
            continue
        k = poly.get("object")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(objects):
            dropped_polygons.append(Dropped(i, _BAD_INDEX, f"object {_short(k)} of {len(objects)}"))
            continue
        name = _object_name(objects[k])
        if name is None:
            continue  # deleted object: the annotation tool keeps its slot as null / {}
        label = detection_class(name)
        if label is None:
            if unmapped is not None and k not in unmapped_seen:
                unmapped[name.strip().lower()] += 1
                unmapped_seen.add(k)
            continue
        try:
            box = _clipped_box(poly, width, height)
        except _BadPolygon as bad:
            drop = Dropped(i, bad.reason, f"object {k} {name!r}: {bad.detail}")
            dropped_polygons.append(drop)
            failed_of.setdefault(k, []).append(drop)
            continue
        boxes_of.setdefault(k, []).append(box)
        labels_of[k] = label
    boxes, labels, dropped_objects = [], [], []
    for k in sorted(boxes_of.keys() | failed_of.keys()):
        if k in boxes_of:
            parts = np.array(boxes_of[k])  # [P, 4] clipped boxes of the object's valid polygons
            boxes.append([parts[:, 0].min(), parts[:, 1].min(), parts[:, 2].max(), parts[:, 3].max()])
            labels.append(labels_of[k])
            continue
        reasons = {d.reason for d in failed_of[k]}
        reason = reasons.pop() if len(reasons) == 1 else MIXED_REASONS
        polygons_k = ", ".join(str(d.index) for d in failed_of[k])
        detail = f"{_object_name(objects[k])!r}, every polygon dropped: {polygons_k}"
        dropped_objects.append(Dropped(k, reason, detail))
    return FrameBoxes(
        np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64), dropped_polygons,
        dropped_objects,
    )  # fmt: skip
