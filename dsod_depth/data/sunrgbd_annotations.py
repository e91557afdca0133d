"""SUN RGB-D 2D annotations: polygons → boxes, free-text names → the 19 detection classes (REFERENCE §4).

``annotation2Dfinal/index.json`` lists ``objects`` (``{"name": ...}``, ``null`` or ``{}`` for
deleted objects) and ``frames[0].polygon`` (``{"x": [...], "y": [...], "object": k}``);
:func:`polygon_boxes` turns them into boxes. Names are free text typed by annotators ("Chair",
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

import numpy as np

__all__ = [
    "CLASSES", "EXACT", "HEADS", "MalformedFrame", "normalise_name", "detection_class", "polygon_boxes",
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


def polygon_boxes(
    annotation: dict, width: int, height: int, file: Path, unmapped: Counter | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of the detection-class objects of one ``annotation2Dfinal/index.json``.

    ``annotation["objects"][k]["name"]`` is the free-text name of object k;
    ``annotation["frames"][0]["polygon"]`` lists ``{"x": [...], "y": [...], "object": k}``. The
    vertices are points on the continuous image plane, so an object's box is the min/max of all its
    polygons' vertices (an occluded object may have several polygons), clamped to [0, W] × [0, H].
    Polygons of deleted objects (``null`` or nameless entries) are ignored; objects whose box is
    empty after clamping are dropped.

    Returns boxes float32 [N, 4] and labels int64 [N]; raises :class:`MalformedFrame` on a
    structure that cannot be read (scalar x/y, unequal lengths, bad object index). ``unmapped``,
    if given, counts the (lower-cased) names that are none of the 19 classes.
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
    extents: dict[int, list[float]] = {}
    for i, poly in enumerate(polygons):
        xs, ys, k = (poly.get(c) for c in ("x", "y", "object")) if isinstance(poly, dict) else (None,) * 3
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or not xs:
            raise MalformedFrame(file, f"polygon {i}: x and y must be lists of equal, non-zero length")
        if not isinstance(k, int) or not 0 <= k < len(objects):
            raise MalformedFrame(file, f"polygon {i}: object index {k!r} is not in 0..{len(objects) - 1}")
        try:
            x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        except (TypeError, ValueError):
            raise MalformedFrame(file, f"polygon {i}: non-numeric coordinates") from None
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise MalformedFrame(file, f"polygon {i}: non-finite coordinates")
        box = [x.min(), y.min(), x.max(), y.max()]
        if k in extents:  # union with the object's other polygons
            prev = extents[k]
            box = [min(prev[0], box[0]), min(prev[1], box[1]), max(prev[2], box[2]), max(prev[3], box[3])]
        extents[k] = box
    boxes, labels = [], []
    for k, (x1, y1, x2, y2) in sorted(extents.items()):
        entry = objects[k]
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip():
            continue  # deleted object: the annotation tool keeps its slot as null / {}
        label = detection_class(name)
        if label is None:
            if unmapped is not None:
                unmapped[name.strip().lower()] += 1
            continue
        box = [min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width),
               min(max(y2, 0.0), height)]  # fmt: skip
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append(box)
            labels.append(label)
    return np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64)
