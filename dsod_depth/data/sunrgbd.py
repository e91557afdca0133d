"""SUN RGB-D → prepared store, without MATLAB (REFERENCE §4).

The official ``SUNRGBD`` tree is walked for frame folders of any sensor (kv1, kv2, realsense,
xtion). A frame folder holds ``image/*.jpg``, ``depth/*.png`` (raw), optionally ``depth_bfx/*.png``
(the toolbox's filled depth, used as the filled depth when present), ``intrinsics.txt`` (3×3
row-major K of the MATLAB toolbox, 1-based principal point) and ``annotation2Dfinal/index.json``
(polygons with free-text names). Boxes are the polygon extents of each object, clamped to the
image, for names that map onto the 19 detection classes (:mod:`dsod_depth.data.sunrgbd_annotations`).
The official split is ``allsplit.mat``, whose paths are matched on their suffix after ``SUNRGBD/``.

A malformed polygon (``x``/``y`` given as a scalar, a bad object index, zero area, ...) is dropped
with a warning naming the file, the polygon and the reason; its frame and the other boxes are kept.
A frame is skipped only when a file is missing or unreadable, its JSON does not parse or its
top-level structure is unusable; the warning and the summary name it. Nothing of this stops the
preparation: :meth:`SunScan.report` gives the counts by reason for the summary.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dsod_depth.data.sample import RGBDSample
from dsod_depth.data.summary import Dropped, PrepareReport
from dsod_depth.data.sunrgbd_annotations import CLASSES, MalformedFrame, polygon_boxes
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics

__all__ = [
    "SunFrame", "SunScan", "split_key", "read_split_file", "parse_frame", "scan_sunrgbd", "SunFrames",
    "resolve_source", "prepare_sunrgbd",
]  # fmt: skip

SPLIT_FILE = "allsplit.mat"
# Where users usually have allsplit.mat, relative to --source (the toolbox is unpacked beside SUNRGBD).
_SPLIT_CANDIDATES = (
    SPLIT_FILE,
    "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat",
    "../SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat",
)
NUM_UNMAPPED_NAMES = 8  # names outside the classes that the report names (the most frequent first)


@dataclass(frozen=True)
class SunFrame:
    """One parsed frame: files, camera and boxes (everything but the pixels).

    key: path suffix after ``SUNRGBD/`` (the image id); intrinsics: (fx, fy, cx, cy) 0-based;
    boxes: float32 [N, 4] x1, y1, x2, y2 pixels; labels: int64 [N] 0-based into :data:`CLASSES`;
    dropped_polygons / dropped_objects: what :func:`polygon_boxes` left out of the boxes, and why.
    """

    key: str
    image: str
    depth: str
    depth_filled: str | None
    intrinsics: tuple[float, float, float, float]
    height: int
    width: int
    boxes: np.ndarray
    labels: np.ndarray
    dropped_polygons: tuple[Dropped, ...] = ()
    dropped_objects: tuple[Dropped, ...] = ()


@dataclass
class SunScan:
    """Result of walking a SUN RGB-D tree: frames per split and what was left out."""

    frames: dict[str, list[SunFrame]]
    listed: dict[str, int] = field(default_factory=dict)  # split → frames the split file lists
    skipped: dict[str, int] = field(default_factory=dict)  # reason → frames or folders left out
    skipped_frames: list[str] = field(default_factory=list)  # "<file>: <reason>" per skipped frame
    dropped_polygons: Counter = field(default_factory=Counter)  # reason → polygons left out of kept frames
    dropped_objects: Counter = field(default_factory=Counter)  # reason → objects without a valid polygon
    unmapped_names: Counter = field(default_factory=Counter)  # names outside the 19 classes → objects

    def report(self) -> PrepareReport:
        """The counts and names for the printed summary, and the names most often outside the classes."""
        notes = []
        if self.unmapped_names:
            common = ", ".join(f"{n} ({c})" for n, c in self.unmapped_names.most_common(NUM_UNMAPPED_NAMES))
            notes.append(f"most frequent names outside the 19 classes: {common}")
        return PrepareReport(
            listed=dict(self.listed),
            dropped={
                "polygons": dict(self.dropped_polygons),
                "objects (no valid polygon)": dict(self.dropped_objects),
            },
            skipped=dict(self.skipped),
            skipped_frames=list(self.skipped_frames),
            notes=notes,
        )


def split_key(path: str) -> str:
    """A split-file path → its suffix after the last ``SUNRGBD/`` without a trailing slash.

    ``/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001/`` and ``/data1/SUNRGBD/kv1/NYUdata/NYU0001``
    both give ``kv1/NYUdata/NYU0001``: the official and mirrored copies differ only in the prefix.
    """
    path = str(path).strip().replace("\\", "/").rstrip("/")
    marker = "SUNRGBD/"
    at = path.rfind(marker)
    return path[at + len(marker) :] if at >= 0 else path.lstrip("/")


def read_split_file(path: str | os.PathLike, *, with_val: bool = False) -> dict[str, str]:
    """``allsplit.mat`` → {frame key: split name}.

    Default: ``alltrain`` (5285) → train, ``alltest`` (5050) → test. With ``with_val``, the
    training frames are divided by ``trainvalsplit`` into train (2666) and val (2619).
    """
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(str(path))
        parts = {"train": mat["alltrain"], "test": mat["alltest"]}
        if with_val:
            tv = mat["trainvalsplit"][0, 0]
            parts = {"train": tv["train"], "val": tv["val"], "test": mat["alltest"]}
    except KeyError as err:
        raise KitError(f"{path} has no variable {err}; expected the SUN RGB-D allsplit.mat") from None
    except Exception as err:  # scipy raises ValueError/TypeError/OSError on truncated or foreign files
        raise KitError(f"{path} is not a readable MATLAB file ({err}); use the toolbox's one") from None
    keys: dict[str, str] = {}
    for split, cells in parts.items():
        for cell in np.asarray(cells).ravel():  # (1, K) object array of 1-element string arrays
            keys[split_key(str(np.asarray(cell).ravel()[0]))] = split
    return keys


def _one_file(folder: Path, pattern: str) -> Path:
    files = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if len(files) != 1:
        raise MalformedFrame(folder, f"expected exactly one {pattern} file, found {len(files)}")
    return files[0]


def _read_intrinsics(path: Path) -> tuple[float, float, float, float]:
    """``intrinsics.txt`` (3×3 K row-major, 1-based principal point) → 0-based (fx, fy, cx, cy)."""
    from dsod_depth.geometry.camera import read_sunrgbd_intrinsics

    try:
        return read_sunrgbd_intrinsics(path).as_tuple()
    except KitError as err:
        raise MalformedFrame(path, str(err).removeprefix(f"{path}: ")) from None


def parse_frame(folder: Path, key: str, unmapped: Counter | None = None) -> SunFrame:
    """Check one frame folder and read its camera and boxes (image headers only, no pixels)."""
    from PIL import Image

    image = _one_file(folder / "image", "*.jpg")
    depth = _one_file(folder / "depth", "*.png")
    filled = _one_file(folder / "depth_bfx", "*.png") if (folder / "depth_bfx").is_dir() else None
    intrinsics_file = folder / "intrinsics.txt"
    annotation_file = folder / "annotation2Dfinal" / "index.json"
    for required in (intrinsics_file, annotation_file):
        if not required.is_file():
            raise MalformedFrame(required, "missing")
    intrinsics = _read_intrinsics(intrinsics_file)
    sizes = {}
    for path in (image, depth, filled):
        if path is None:
            continue
        try:
            with Image.open(path) as im:  # reads the header only
                sizes[path], mode = im.size, im.mode
        except OSError as err:
            raise MalformedFrame(path, f"unreadable image ({err})") from None
        if path != image and mode not in ("I;16", "I;16B", "I", "I;16L"):
            raise MalformedFrame(path, f"depth must be a 16-bit PNG, got mode {mode}")
    if len(set(sizes.values())) != 1:
        raise MalformedFrame(depth, f"image and depth sizes differ: {sorted(set(sizes.values()))}")
    width, height = sizes[image]
    try:
        annotation = json.loads(annotation_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MalformedFrame(annotation_file, f"invalid JSON ({err})") from None
    if not isinstance(annotation, dict):
        raise MalformedFrame(annotation_file, "top level is not a JSON object")
    found = polygon_boxes(annotation, width, height, annotation_file, unmapped)
    return SunFrame(key, str(image), str(depth), str(filled) if filled else None, intrinsics, height, width,
                    found.boxes, found.labels, tuple(found.dropped_polygons),
                    tuple(found.dropped_objects))  # fmt: skip


def _frame_folders(root: Path):
    """Every folder under ``root`` holding ``image/`` or ``intrinsics.txt``; frame folders are not entered."""
    for folder, dirs, files in os.walk(root):
        if "image" in dirs or "intrinsics.txt" in files:
            dirs.clear()
            yield Path(folder)
        else:
            dirs.sort()


def _relative(path: Path, root: Path) -> str:
    """``path`` below ``root`` as a relative path (the frame's key, then the file), else in full."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _match(folder: Path, keys: dict[str, str]) -> str | None:
    """The longest path suffix of ``folder`` that the split file knows, or None."""
    parts = folder.resolve().parts
    for i in range(len(parts)):
        key = "/".join(parts[i:])
        if key in keys:
            return key
    return None


def scan_sunrgbd(source: str | os.PathLike, split_file: str | os.PathLike, *, with_val: bool = False,
                 progress: bool = False) -> SunScan:  # fmt: skip
    """Walk ``source`` for frame folders, parse them and assign the official split.

    Every dropped polygon or object and every skipped frame gets a ``UserWarning`` naming the file;
    the scan counts them by reason. Raises :class:`KitError` when no usable frame of a split is found.
    """
    from tqdm import tqdm

    source = Path(source)
    keys = read_split_file(split_file, with_val=with_val)
    names = ["train", "val", "test"] if with_val else ["train", "test"]
    scan = SunScan(frames={name: [] for name in names})
    listed = Counter(keys.values())
    scan.listed = {name: listed[name] for name in names}
    outside, seen = 0, set()
    folders = list(_frame_folders(source))
    for folder in tqdm(folders, desc="scanning SUN RGB-D", unit="frame", disable=not progress):
        key = _match(folder, keys)
        if key is None:
            outside += 1
            continue
        seen.add(key)
        try:
            frame = parse_frame(folder, key, scan.unmapped_names)
        except MalformedFrame as err:
            warnings.warn(f"skipping SUN RGB-D frame: {err}", stacklevel=2)
            scan.skipped_frames.append(f"{_relative(err.file, source)}: {err.reason}")
            continue
        annotation = folder / "annotation2Dfinal" / "index.json"
        for drop in frame.dropped_polygons:
            warnings.warn(f"dropping a SUN RGB-D polygon: {annotation}: polygon {drop.index}: {drop.reason} "
                          f"({drop.detail})", stacklevel=2)  # fmt: skip
            scan.dropped_polygons[drop.reason] += 1
        for drop in frame.dropped_objects:
            warnings.warn(f"dropping a SUN RGB-D object: {annotation}: object {drop.index}: {drop.reason} "
                          f"({drop.detail})", stacklevel=2)  # fmt: skip
            scan.dropped_objects[drop.reason] += 1
        scan.frames[keys[key]].append(frame)
    scan.skipped = {
        "frames with a missing or unreadable file (named below)": len(scan.skipped_frames),
        "frame folders not in the split file": outside,
        "split-file frames not found under --source": len(keys.keys() - seen),
    }
    for name, frames in scan.frames.items():
        if not frames:
            raise KitError(
                f"no usable SUN RGB-D frame of split {name!r} under {source}; --source must be the "
                "SUNRGBD folder (kv1/, kv2/, realsense/, xtion/) that the split file lists"
            )
        frames.sort(key=lambda f: f.key)
    return scan


class SunFrames:
    """Frame reader for one split: picklable callable index → :class:`RGBDSample`."""

    def __init__(self, frames: list[SunFrame]) -> None:
        self.frames = list(frames)

    def __len__(self) -> int:
        return len(self.frames)

    def __call__(self, index: int) -> RGBDSample:
        from dsod_depth.data.depth_io import read_sun_depth
        from dsod_depth.data.image_io import read_dataset_rgb

        rec = self.frames[index]
        rgb = read_dataset_rgb(rec.image)  # uint8 [H, W, 3]
        raw = read_sun_depth(rec.depth)  # float32 [H, W] metres: 3-bit rotation, /1000, clipped at 8 m
        filled = read_sun_depth(rec.depth_filled) if rec.depth_filled else raw
        if rgb.shape[:2] != raw.shape or filled.shape != raw.shape:
            raise KitError(f"{rec.depth}: depth is {raw.shape[::-1]} but the image {rgb.shape[1::-1]}")
        return RGBDSample(
            rgb=rgb,
            depth=filled,
            raw_depth=raw,
            intrinsics=Intrinsics(*rec.intrinsics),
            boxes=rec.boxes,
            labels=rec.labels,
            difficult=np.zeros(len(rec.labels), dtype=bool),  # the 2D annotations have no difficult flag
            image_id=rec.key,
        )


def resolve_source(source: str | os.PathLike, split_file: str | os.PathLike | None) -> tuple[Path, Path]:
    """(SUNRGBD folder, split file): ``split_file`` or ``allsplit.mat`` found in --source or in the
    toolbox beside it. Raises :class:`KitError` when either is missing."""
    source = Path(source)
    if not source.is_dir():
        raise KitError(f"--source {source} is not a folder; give the SUNRGBD folder")
    if split_file is not None:
        if not Path(split_file).is_file():
            raise KitError(f"split file {split_file} not found; pass the toolbox's {SPLIT_FILE}")
        return source, Path(split_file)
    for candidate in _SPLIT_CANDIDATES:
        if (source / candidate).is_file():
            return source, source / candidate
    raise KitError(f"no {SPLIT_FILE} found in {source} or its SUNRGBDtoolbox/traintestSUNRGBD/; "
                   "pass --split-file PATH/allsplit.mat")  # fmt: skip


def prepare_sunrgbd(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split_file: str | os.PathLike | None = None,
    with_val: bool = False,
    scan: SunScan | None = None,
    with_hha: bool = True,
    workers: int = 1,
    progress: bool = True,
    compression: str = "lz4",
) -> PrepareReport:
    """Convert the SUN RGB-D tree in ``source`` into a prepared store in ``out``.

    The tree is scanned first (or ``scan`` from :func:`scan_sunrgbd` is reused); nothing is
    written before the scan succeeds. Every dropped polygon or object and every skipped frame is a
    ``UserWarning`` of the scan. Returns the report (``files``: split → file; frames kept vs
    listed, what was dropped and skipped, the most frequent names outside the classes); rerunning
    resumes.
    """
    from dsod_depth.data.store_writer import SplitSource, write_store

    source, split_path = resolve_source(source, split_file)
    if scan is None:
        scan = scan_sunrgbd(source, split_path, with_val=with_val, progress=progress)
    sources = [
        SplitSource(
            name, len(frames), SunFrames(frames), max(f.height for f in frames), max(f.width for f in frames)
        )
        for name, frames in scan.frames.items()
    ]
    report = scan.report()
    report.files = write_store(
        out,
        dataset="sunrgbd",
        class_names=CLASSES,
        splits=sources,
        prep_args={
            "split_file": split_path.name,
            "with_val": with_val,
            "classes": "sunrgbd-19",
            "num_frames": {k: len(v) for k, v in scan.frames.items()},
        },
        with_hha=with_hha,
        raw_separate=True,  # depth_bfx is smoothed, so it differs from the raw depth where measured
        workers=workers,
        progress=progress,
        compression=compression,
    )
    return report
