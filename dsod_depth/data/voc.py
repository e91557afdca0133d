"""PASCAL VOC (2007 and/or 2012) → prepared store, colour only (REFERENCE §5).

Layout: ``VOCdevkit/VOC<year>/{Annotations/<id>.xml, ImageSets/Main/<set>.txt, JPEGImages/<id>.jpg}``.
Sets are named ``<year>-<set>`` and combined with commas: the usual "07+12" training set is
``2007-trainval,2012-trainval`` and the test set ``2007-test``.

Boxes: the XML gives 1-based inclusive pixel indices (``xmin = 1`` is the first column). In the
kit's continuous convention pixel i spans [i, i + 1], so the box is (xmin - 1, ymin - 1, xmax,
ymax); its width xmax - xmin + 1 is the devkit's, so xmin = xmax is a valid one-pixel box.
``difficult`` objects are kept with their flag (the VOC metric ignores them; training may drop them).
An object whose box is inverted (xmin > xmax or ymin > ymax) or lies outside the image is dropped
with a warning naming the file and the object; its image and the other objects are kept, and
:meth:`VocScan.report` counts the drops by reason for the summary.

VOC has no depth: samples carry an all-zero (all invalid) depth, a nominal camera, and the store
is written without depth-derived channel groups (``with_depth=False``).
"""

from __future__ import annotations

import math
import os
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsod_depth.data.sample import RGBDSample
from dsod_depth.data.summary import Dropped, PrepareReport
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics

__all__ = [
    "CLASSES", "DROP_REASONS", "VocImage", "VocScan", "parse_sets", "parse_annotation", "read_image_set",
    "collect", "scan_voc", "VocFrames", "nominal_camera", "prepare_voc",
]  # fmt: skip

CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
_SET_NAMES = ("train", "val", "trainval", "test")
# Why an object is dropped (its image is kept); the keys of the counts in the summary.
_INVERTED = "inverted box (xmin > xmax or ymin > ymax)"
_OUTSIDE = "box outside the image"
DROP_REASONS = (_INVERTED, _OUTSIDE)


@dataclass(frozen=True)
class VocImage:
    """One annotated image: id ``VOC<year>/<name>``, file, size, boxes float32 [N, 4] continuous
    pixels, labels int64 [N] 0-based into :data:`CLASSES`, difficult bool [N]; dropped: objects
    left out (0-based index among the file's ``<object>`` elements, reason from :data:`DROP_REASONS`)."""

    image_id: str
    path: str
    height: int
    width: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    dropped: tuple[Dropped, ...] = ()


def parse_sets(text: str) -> list[tuple[str, str]]:
    """``"2007-trainval,2012-trainval"`` → [("2007", "trainval"), ("2012", "trainval")]."""
    sets = []
    for item in (t.strip() for t in text.split(",")):
        year, _, name = item.partition("-")
        if not (year.isdigit() and len(year) == 4) or name not in _SET_NAMES:
            raise KitError(f"VOC set {item!r} must look like 2007-trainval (year-{'|'.join(_SET_NAMES)})")
        if (year, name) not in sets:
            sets.append((year, name))
    if not sets:
        raise KitError("no VOC set given; e.g. --sets 2007-trainval,2012-trainval")
    return sets


def read_image_set(devkit: Path, year: str, name: str) -> list[str]:
    """Image names listed in ``VOC<year>/ImageSets/Main/<name>.txt``."""
    path = devkit / f"VOC{year}" / "ImageSets" / "Main" / f"{name}.txt"
    if not path.is_file():
        hint = " (VOC2012 test annotations are not public: test on 2007-test)" if year == "2012" else ""
        raise KitError(f"{path} not found; --source must be the VOCdevkit folder holding VOC{year}{hint}")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _number(node: ET.Element, tag: str, file: Path) -> float:
    text = node.findtext(tag)
    try:
        value = float(text)  # VOC2012 has a few coordinates written as "273.5"
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value):  # "nan" and "inf" parse as floats but are no coordinates
        raise KitError(f"{file}: <{tag}> is {text!r}, not a number; the annotation is damaged")
    return value


def parse_annotation(path: Path, image_path: Path, image_id: str) -> VocImage:
    """One ``Annotations/<id>.xml`` → :class:`VocImage` (1-based boxes → continuous, clamped to the image).

    Inverted boxes and boxes outside the image are left out and listed in ``dropped``; a damaged
    file (unreadable XML, no size, an unknown class, a coordinate that is no number) raises KitError.
    """
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise KitError(f"{path} is not a readable VOC annotation ({err}); extract the devkit again") from None
    size = root.find("size")
    if size is None:
        raise KitError(f"{path} has no <size>; the annotation is damaged")
    width, height = int(_number(size, "width", path)), int(_number(size, "height", path))
    boxes, labels, difficult, dropped = [], [], [], []
    for i, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        if name not in CLASSES:
            raise KitError(f"{path}: unknown VOC class {name!r}")
        bb = obj.find("bndbox")
        if bb is None:
            raise KitError(f"{path}: object {name!r} has no <bndbox>")
        xmin, ymin, xmax, ymax = (_number(bb, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        corners = f"{name!r}, xmin {xmin:g} ymin {ymin:g} xmax {xmax:g} ymax {ymax:g}"
        if xmin > xmax or ymin > ymax:  # xmin = xmax is one pixel wide: the indices are inclusive
            dropped.append(Dropped(i, _INVERTED, corners))
            continue
        # 1-based inclusive → continuous: the first pixel (index 1) spans [0, 1].
        box = [max(xmin - 1.0, 0.0), max(ymin - 1.0, 0.0), min(xmax, float(width)), min(ymax, float(height))]
        if not (box[2] > box[0] and box[3] > box[1]):
            dropped.append(Dropped(i, _OUTSIDE, f"{corners} in {width}×{height}"))
            continue
        boxes.append(box)
        labels.append(CLASSES.index(name))
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")  # absent in some 2012 files
    return VocImage(
        image_id, str(image_path), height, width, np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(labels, dtype=np.int64), np.array(difficult, dtype=bool), tuple(dropped),
    )  # fmt: skip


def collect(devkit: Path, sets: list[tuple[str, str]]) -> list[VocImage]:
    """Every image of the given sets once (first occurrence wins), annotations parsed; a
    ``UserWarning`` names the file and the object for every dropped object."""
    images, seen = [], set()
    for year, name in sets:
        root = devkit / f"VOC{year}"
        for stem in read_image_set(devkit, year, name):
            image_id = f"VOC{year}/{stem}"
            if image_id in seen:
                continue
            seen.add(image_id)
            xml, jpg = root / "Annotations" / f"{stem}.xml", root / "JPEGImages" / f"{stem}.jpg"
            if not xml.is_file():
                raise KitError(f"{xml} not found; the VOC{year} {name} annotations are missing from --source")
            if not jpg.is_file():
                raise KitError(f"{jpg} not found; the VOC{year} images are missing from --source")
            image = parse_annotation(xml, jpg, image_id)
            for drop in image.dropped:
                message = f"dropping a VOC object: {xml}: object {drop.index}: {drop.reason} ({drop.detail})"
                warnings.warn(message, stacklevel=2)
            images.append(image)
    return images


@dataclass
class VocScan:
    """Parsed annotations of the store's splits (train = ``--sets``, test = ``--test``)."""

    images: dict[str, list[VocImage]]

    def report(self) -> PrepareReport:
        """The dropped objects by reason, for the printed summary."""
        images = (image for split in self.images.values() for image in split)
        dropped = Counter(d.reason for image in images for d in image.dropped)
        return PrepareReport(dropped={"objects": dict(dropped)})


def scan_voc(source: str | os.PathLike, *, sets: str = "2007-trainval,2012-trainval",
             test: str = "2007-test") -> VocScan:  # fmt: skip
    """Parse the annotations of the train sets ``sets`` and test sets ``test`` in the VOCdevkit
    folder ``source``. Raises :class:`KitError` naming a missing set list, an empty split or train
    and test sets that share images (all checked before any annotation is parsed), or a damaged or
    missing annotation or image."""
    devkit = Path(source)
    if not devkit.is_dir():
        raise KitError(f"--source {devkit} is not a folder; give the VOCdevkit folder (holding VOC2007/...)")
    chosen = {"train": (sets, parse_sets(sets)), "test": (test, parse_sets(test))}
    ids = {
        split: {f"VOC{year}/{stem}" for year, name in parsed for stem in read_image_set(devkit, year, name)}
        for split, (_, parsed) in chosen.items()
    }
    for split, (text, _) in chosen.items():
        if not ids[split]:
            raise KitError(f"the VOC sets {text} list no images")
    overlap = ids["train"] & ids["test"]
    if overlap:
        raise KitError(f"train and test sets share {len(overlap)} images (e.g. {sorted(overlap)[0]}); "
                       "choose disjoint sets")  # fmt: skip
    return VocScan({split: collect(devkit, parsed) for split, (_, parsed) in chosen.items()})


def nominal_camera(width: int, height: int) -> Intrinsics:
    """VOC has no calibration: a pinhole with fx = fy = image width (~53° horizontal field of view)
    centred on the image, only so that samples satisfy the data contract."""
    return Intrinsics(float(width), float(width), (width - 1) / 2.0, (height - 1) / 2.0)


class VocFrames:
    """Frame reader for one split: picklable callable index → :class:`RGBDSample` (depth all 0)."""

    def __init__(self, images: list[VocImage]) -> None:
        self.images = list(images)

    def __len__(self) -> int:
        return len(self.images)

    def __call__(self, index: int) -> RGBDSample:
        from dsod_depth.data.image_io import read_dataset_rgb

        rec = self.images[index]
        rgb = read_dataset_rgb(rec.path)  # uint8 [H, W, 3]
        if rgb.shape[:2] != (rec.height, rec.width):
            raise KitError(f"{rec.path} is {rgb.shape[1]}×{rgb.shape[0]} but its annotation says "
                           f"{rec.width}×{rec.height}")  # fmt: skip
        empty = np.zeros((rec.height, rec.width), dtype=np.float32)  # no depth: every pixel invalid
        return RGBDSample(
            rgb=rgb, depth=empty, raw_depth=empty, intrinsics=nominal_camera(rec.width, rec.height),
            boxes=rec.boxes, labels=rec.labels, difficult=rec.difficult, image_id=rec.image_id,
        )  # fmt: skip


def prepare_voc(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    sets: str = "2007-trainval,2012-trainval",
    test: str = "2007-test",
    scan: VocScan | None = None,
    workers: int = 1,
    progress: bool = True,
    compression: str = "lz4",
) -> PrepareReport:
    """Convert VOC sets from the VOCdevkit folder ``source`` into a store (train = ``sets``, test = ``test``).

    All annotations are parsed (or ``scan`` from :func:`scan_voc` with the same sets is reused)
    before ``out`` is touched: a damaged or missing file raises :class:`KitError` naming it and
    leaves no store; every dropped object is a ``UserWarning``. Returns the report (``files``:
    split → file; the dropped objects by reason). Rerunning resumes.
    """
    from dsod_depth.data.store_writer import SplitSource, write_store

    if scan is None:
        scan = scan_voc(source, sets=sets, test=test)
    train_sets, test_sets = parse_sets(sets), parse_sets(test)
    splits = [
        SplitSource(
            name, len(images), VocFrames(images), max(i.height for i in images), max(i.width for i in images)
        )
        for name, images in scan.images.items()
    ]
    report = scan.report()
    report.files = write_store(
        out,
        dataset="voc",
        class_names=CLASSES,
        splits=splits,
        prep_args={
            "sets": [f"{y}-{n}" for y, n in train_sets],
            "test": [f"{y}-{n}" for y, n in test_sets],
            "num_frames": {s.name: s.num_frames for s in splits},
        },
        with_hha=False,
        with_depth=False,
        workers=workers,
        progress=progress,
        compression=compression,
    )
    return report
