"""PASCAL VOC (2007 and/or 2012) → prepared store, colour only (REFERENCE §5).

Layout: ``VOCdevkit/VOC<year>/{Annotations/<id>.xml, ImageSets/Main/<set>.txt, JPEGImages/<id>.jpg}``.
Sets are named ``<year>-<set>`` and combined with commas: the usual "07+12" training set is
``2007-trainval,2012-trainval`` and the test set ``2007-test``.

Boxes: the XML gives 1-based inclusive pixel indices (``xmin = 1`` is the first column). In the
kit's continuous convention pixel i spans [i, i + 1], so the box is (xmin - 1, ymin - 1, xmax,
ymax); its width xmax - xmin + 1 is the devkit's. ``difficult`` objects are kept with their flag
(the VOC metric ignores them; training may drop them).

VOC has no depth: samples carry an all-zero (all invalid) depth, a nominal camera, and the store
is written without depth-derived channel groups (``with_depth=False``).
"""

from __future__ import annotations

import argparse
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsod_depth.data.prepare import PREPARERS, Preparer
from dsod_depth.data.sample import RGBDSample
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics

__all__ = [
    "CLASSES", "VocImage", "parse_sets", "parse_annotation", "read_image_set", "collect", "VocFrames",
    "nominal_camera", "prepare_voc",
]  # fmt: skip

CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
_SET_NAMES = ("train", "val", "trainval", "test")


@dataclass(frozen=True)
class VocImage:
    """One annotated image: id ``VOC<year>/<name>``, file, size, boxes float32 [N, 4] continuous
    pixels, labels int64 [N] 0-based into :data:`CLASSES`, difficult bool [N]."""

    image_id: str
    path: str
    height: int
    width: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray


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
        return float(text)  # VOC2012 has a few coordinates written as "273.5"
    except (TypeError, ValueError):
        raise KitError(f"{file}: <{tag}> is {text!r}, not a number; the annotation is damaged") from None


def parse_annotation(path: Path, image_path: Path, image_id: str) -> VocImage:
    """One ``Annotations/<id>.xml`` → :class:`VocImage` (1-based boxes → continuous, clamped to the image)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise KitError(f"{path} is not a readable VOC annotation ({err}); extract the devkit again") from None
    size = root.find("size")
    if size is None:
        raise KitError(f"{path} has no <size>; the annotation is damaged")
    width, height = int(_number(size, "width", path)), int(_number(size, "height", path))
    boxes, labels, difficult = [], [], []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in CLASSES:
            raise KitError(f"{path}: unknown VOC class {name!r}")
        bb = obj.find("bndbox")
        if bb is None:
            raise KitError(f"{path}: object {name!r} has no <bndbox>")
        xmin, ymin, xmax, ymax = (_number(bb, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        # 1-based inclusive → continuous: the first pixel (index 1) spans [0, 1].
        box = [max(xmin - 1.0, 0.0), max(ymin - 1.0, 0.0), min(xmax, float(width)), min(ymax, float(height))]
        if not (box[2] > box[0] and box[3] > box[1]):
            raise KitError(f"{path}: object {name!r} has an empty box {[xmin, ymin, xmax, ymax]}")
        boxes.append(box)
        labels.append(CLASSES.index(name))
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")  # absent in some 2012 files
    return VocImage(
        image_id, str(image_path), height, width, np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(labels, dtype=np.int64), np.array(difficult, dtype=bool),
    )  # fmt: skip


def collect(devkit: Path, sets: list[tuple[str, str]]) -> list[VocImage]:
    """Every image of the given sets once (first occurrence wins), annotations parsed."""
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
            images.append(parse_annotation(xml, jpg, image_id))
    return images


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
        from PIL import Image

        rec = self.images[index]
        try:
            with Image.open(rec.path) as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)  # [H, W, 3]
        except OSError as err:
            raise KitError(f"{rec.path} is unreadable ({err}); extract it again, then rerun") from None
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
    workers: int = 1,
    progress: bool = True,
    compression: str = "lz4",
) -> dict[str, Path]:
    """Convert VOC sets from the VOCdevkit folder ``source`` into a store (train = ``sets``, test = ``test``).

    All annotations are parsed before ``out`` is touched: a damaged or missing file raises
    :class:`KitError` naming it and leaves no store. Rerunning resumes.
    """
    from dsod_depth.data.store_writer import SplitSource, write_store

    devkit = Path(source)
    if not devkit.is_dir():
        raise KitError(f"--source {devkit} is not a folder; give the VOCdevkit folder (holding VOC2007/...)")
    train_sets, test_sets = parse_sets(sets), parse_sets(test)
    splits = []
    for name, chosen in (("train", train_sets), ("test", test_sets)):
        images = collect(devkit, chosen)
        if not images:
            raise KitError(f"the VOC sets {sets if name == 'train' else test} list no images")
        splits.append(SplitSource(name, len(images), VocFrames(images), max(i.height for i in images),
                                  max(i.width for i in images)))  # fmt: skip
    overlap = {i.image_id for i in splits[0].frame.images} & {i.image_id for i in splits[1].frame.images}
    if overlap:
        raise KitError(f"train and test sets share {len(overlap)} images (e.g. {sorted(overlap)[0]}); "
                       "choose disjoint sets")  # fmt: skip
    return write_store(
        out,
        dataset="voc",
        class_names=CLASSES,
        splits=splits,
        prep_args={"sets": [f"{y}-{n}" for y, n in train_sets], "test": [f"{y}-{n}" for y, n in test_sets],
                   "num_frames": {s.name: s.num_frames for s in splits}},  # fmt: skip
        with_hha=False,
        with_depth=False,
        workers=workers,
        progress=progress,
        compression=compression,
    )


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="the VOCdevkit folder (holding VOC2007/ and/or VOC2012/)")
    p.add_argument("--sets", default="2007-trainval,2012-trainval",
                   help="training sets, year-set joined by commas (default 2007-trainval,2012-trainval)")
    p.add_argument("--test", default="2007-test", help="test sets in the same form (default 2007-test)")


def _run(args: argparse.Namespace) -> dict[str, Path]:
    from dsod_depth.data.summary import print_summary

    files = prepare_voc(args.source, args.out, sets=args.sets, test=args.test, workers=args.workers,
                        progress=args.progress, compression=args.compression)  # fmt: skip
    print_summary(files)
    return files


PREPARERS.register("voc")(
    Preparer(
        help="PASCAL VOC 2007/2012 from a VOCdevkit folder (colour only), 20 classes",
        add_arguments=_add_arguments,
        run=_run,
    )
)
