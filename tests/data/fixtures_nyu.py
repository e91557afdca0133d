"""A small ``nyu_depth_v2_labeled.mat`` in the real MATLAB v7.3 layout, with known objects.

The file is what MATLAB's ``save -v7.3`` writes: an HDF5 file behind a 512-byte user block that
starts with the MAT-file text header, every variable with its axes reversed (images (N, 3, W, H),
maps (N, W, H)), ``MATLAB_class`` attributes, and cell arrays of strings stored as object
references to uint16 character arrays in the ``#refs#`` group. Objects are painted as rectangles
whose extents are recorded, so a test knows every expected box without running the kit's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from scipy.io import savemat

H, W = 480, 640
# Ids (1-based into the 894 names) of the 19 detection classes in the real file (REFERENCE §3).
REAL_IDS = {
    "bathtub": 136, "bed": 157, "bookshelf": 88, "box": 26, "chair": 5, "counter": 7, "desk": 36, "door": 28,
    "dresser": 169, "garbage bin": 12, "lamp": 144, "monitor": 49, "night stand": 158, "pillow": 119,
    "sink": 24, "sofa": 83, "table": 19, "television": 172, "toilet": 124,
}  # fmt: skip
NUM_NAMES = 894
WALL, FLOOR, PICTURE = 21, 11, 64  # labels outside the 19 classes (ids of the fixture's filler names)


def fixture_names() -> list[str]:
    """894 names: the 19 detection classes at their real ids, filler names elsewhere."""
    names = [f"thing {i:03d}" for i in range(1, NUM_NAMES + 1)]
    for name, i in REAL_IDS.items():
        names[i - 1] = name
    names[WALL - 1], names[FLOOR - 1], names[PICTURE - 1] = "wall", "floor", "picture"
    return names


@dataclass
class FrameSpec:
    """One frame: its label/instance maps and, per object, the rectangles (r0, r1, c0, c1) painted."""

    labels: np.ndarray  # uint16 [H, W]
    instances: np.ndarray  # uint8 [H, W]
    rgb: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # float32 [H, W] metres
    raw: np.ndarray  # float32 [H, W] metres, 0 = hole
    objects: dict[tuple[int, int], list[tuple[int, int, int, int]]] = field(default_factory=dict)


def make_frame(rng: np.random.Generator, index: int) -> FrameSpec:
    """A frame with non-overlapping rectangles: detection objects (some in two parts, one in the
    crop margin, one outside the Gupta crop) and non-detection filler, on a wall/floor background."""
    labels = np.full((H, W), WALL, dtype=np.uint16)
    labels[300:] = FLOOR
    instances = np.zeros((H, W), dtype=np.uint8)
    labels[:, :5] = 0  # unlabeled strip
    objects: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
    classes = list(REAL_IDS.values())
    # A 4 × 5 grid of cells; each cell holds at most one object so nothing overlaps.
    cells = [(r, c) for r in range(4) for c in range(5)]
    rng.shuffle(cells)
    next_instance: dict[int, int] = {}
    for k, (r, c) in enumerate(cells[:9]):
        top, left = 60 + r * 100, 20 + c * 120
        h, w = (int(v) for v in rng.integers(10, 80, size=2))
        y0, x0 = top + int(rng.integers(0, 90 - h)), left + int(rng.integers(0, 100 - w))
        label = PICTURE if k == 8 else int(classes[int(rng.integers(len(classes)))])
        inst = next_instance.get(label, 1)  # instance ids restart per class, as in the real data
        next_instance[label] = inst + 1
        rects = [(y0, y0 + h, x0, x0 + w)]
        if k == 0:  # a second, disjoint part of the same object (e.g. seen on both sides of an occluder)
            rects.append((top + 88, top + 90, left + 2, left + 6))
        for r0, r1, c0, c1 in rects:
            labels[r0:r1, c0:c1], instances[r0:r1, c0:c1] = label, inst
        objects[(label, inst)] = rects
    # Same label + instance id in another class: two different objects (objects are pairs).
    chair, table = REAL_IDS["chair"], REAL_IDS["table"]
    for label, rect in ((chair, (30, 60, 300, 340)), (table, (35, 58, 360, 400))):
        rows, cols = slice(rect[0], rect[1]), slice(rect[2], rect[3])
        labels[rows, cols], instances[rows, cols] = label, 7
        objects[(label, 7)] = [rect]  # they cross the top edge of both crops (rows 45 / 44, 0-based)
    lamp = REAL_IDS["lamp"]
    labels[0:40, 100:130], instances[0:40, 100:130] = lamp, 9  # entirely above both crops
    objects[(lamp, 9)] = [(0, 40, 100, 130)]
    box = REAL_IDS["box"]
    labels[470:480, 600:640], instances[470:480, 600:640] = box, 0  # instance 0 of a class: still an object
    objects[(box, 0)] = [(470, 480, 600, 640)]
    # Depth: a tilted plane 1..4 m with texture; raw depth has holes; colour from the labels.
    rows, cols = np.mgrid[0:H, 0:W]
    depth = (1.0 + 3.0 * rows / H + 0.2 * np.sin(cols / 37.0) + 0.05 * index).astype(np.float32)
    raw = depth.copy()
    raw[rng.random((H, W)) < 0.05] = 0.0
    raw[:, :20] = 0.0
    codes = (labels.astype(np.int64) * 7, instances.astype(np.int64) * 31, rows + cols)
    rgb = np.stack([c % 256 for c in codes], axis=-1)  # [H, W, 3]
    return FrameSpec(labels, instances, rgb.astype(np.uint8), depth, raw, objects)


def _matlab_header() -> bytes:
    """The 128-byte MAT-file header MATLAB writes in the user block of a v7.3 file (then zeros to 512)."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b"\x00" * 8 + (0x0200).to_bytes(2, "little") + b"IM"
    return header.ljust(512, b"\x00")


def _write_strings(f: h5py.File, name: str, strings: list[str]) -> None:
    """A MATLAB cell array of char row vectors: references (1, K) to uint16 (L, 1) datasets in #refs#."""
    refs_group = f.require_group("#refs#")
    refs = np.empty((1, len(strings)), dtype=h5py.ref_dtype)
    for i, s in enumerate(strings):
        codes = np.frombuffer(s.encode("utf-16-le"), dtype="<u2").reshape(-1, 1)  # MATLAB 1×L → h5py (L, 1)
        ds = refs_group.create_dataset(f"{name}_{i}", data=codes)
        ds.attrs["MATLAB_class"] = np.bytes_("char")
        ds.attrs["MATLAB_int_decode"] = np.int32(2)
        refs[0, i] = ds.ref
    cell = f.create_dataset(name, data=refs, dtype=h5py.ref_dtype)
    cell.attrs["MATLAB_class"] = np.bytes_("cell")


def write_labeled_mat(
    path: Path, frames: list[FrameSpec], names: list[str] | None = None, num_frames: int | None = None
) -> Path:
    """Write ``frames`` as a v7.3 ``nyu_depth_v2_labeled.mat`` at ``path``.

    ``num_frames`` > len(frames) repeats the frames cyclically (benchmarks: a large file from a few
    distinct frames); frames are written one at a time, so memory stays at one frame.
    """
    n = num_frames or len(frames)
    with h5py.File(path, "w", userblock_size=512) as f:
        # MATLAB H × W × 3 × N → h5py (N, 3, W, H), H × W × N → (N, W, H): every axis reversed.
        variables = {
            "images": ((3, W, H), np.uint8, "uint8", lambda s: s.rgb.transpose(2, 1, 0)),
            "depths": ((W, H), np.float32, "single", lambda s: s.depth.T),
            "rawDepths": ((W, H), np.float32, "single", lambda s: s.raw.T),
            "labels": ((W, H), np.uint16, "uint16", lambda s: s.labels.T),
            "instances": ((W, H), np.uint8, "uint8", lambda s: s.instances.T),
        }
        for var, (shape, dtype, matlab_class, to_h5) in variables.items():
            # MATLAB chunks and deflates large variables; one chunk per frame like a typical save.
            ds = f.create_dataset(var, (n, *shape), dtype, chunks=(1, *shape), compression="gzip")
            ds.attrs["MATLAB_class"] = np.bytes_(matlab_class)
            for i in range(n):
                ds[i] = to_h5(frames[i % len(frames)])
        accel = f.create_dataset("accelData", data=np.zeros((4, n), dtype=np.float32))
        accel.attrs["MATLAB_class"] = np.bytes_("single")
        _write_strings(f, "names", names if names is not None else fixture_names())
        _write_strings(f, "scenes", [f"bedroom_{i + 1:04d}" for i in range(n)])
        _write_strings(f, "sceneTypes", ["bedroom"] * n)
    with open(path, "r+b") as fh:
        fh.write(_matlab_header())
    return path


def write_splits(path: Path, train: list[int], test: list[int]) -> Path:
    """``splits.mat`` (MATLAB 5) with 1-based uint16 column vectors, like the official file."""
    savemat(str(path), {
        "trainNdxs": np.array(train, dtype=np.uint16).reshape(-1, 1),
        "testNdxs": np.array(test, dtype=np.uint16).reshape(-1, 1),
    })  # fmt: skip
    return path


def build_nyu_source(folder: Path, num_frames: int = 5, seed: int = 0) -> tuple[Path, list[FrameSpec]]:
    """A --source folder with the labeled file and splits.mat; frames 1, 3, 4 train and 2, 5 test."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frames = [make_frame(rng, i) for i in range(num_frames)]
    write_labeled_mat(folder / "nyu_depth_v2_labeled.mat", frames)
    train = [i for i in range(1, num_frames + 1) if i % 5 not in (2, 0)]
    test = [i for i in range(1, num_frames + 1) if i % 5 in (2, 0)]
    write_splits(folder / "splits.mat", train, test)
    return folder, frames
