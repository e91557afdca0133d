"""A tiny SUN RGB-D tree in the official layout, with a known answer for every frame.

Depth PNGs are written the way the dataset stores them: millimetres with their 16 bits rotated
left by 3 (the toolbox reads them with a right rotation, REFERENCE §4). Frames cover several
sensors, with and without ``depth_bfx``, plus the broken cases the real data has: malformed
polygons among valid ones (a scalar ``x``, a NaN, one outside the image: dropped, the frame kept),
a file that is not JSON, a missing ``intrinsics.txt``, ``objects`` that is no list (these frames
are skipped); and a frame that the split file does not list. ``allsplit.mat`` uses the
``/n/fs/sun3d/data/SUNRGBD/`` prefix of the official copy, some entries with a trailing slash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

PREFIX = "/n/fs/sun3d/data/SUNRGBD/"


def rotate_left_3(mm: np.ndarray) -> np.ndarray:
    """What the dataset stores for depth ``mm`` (uint16 millimetres): the bits rotated left by 3."""
    mm = mm.astype(np.uint16)
    return ((mm << 3) | (mm >> 13)).astype(np.uint16)


def write_depth_png(path: Path, mm: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rotate_left_3(mm)).save(path)  # uint16 → 16-bit greyscale PNG


@dataclass
class SunFrameSpec:
    """Fixture frame: its key (suffix after SUNRGBD/), split, and the expected parse result."""

    key: str
    split: str | None  # None: not listed in allsplit.mat
    width: int
    height: int
    K: np.ndarray  # 3×3, 1-based principal point as in intrinsics.txt
    objects: list[dict | None]
    polygons: list[dict]
    expected: list[tuple[list[float], str]] = field(default_factory=list)  # (box, class name)
    dropped_polygons: list[tuple[int, str]] = field(default_factory=list)  # (polygon index, reason)
    dropped_objects: list[tuple[int, str]] = field(default_factory=list)  # (object index, reason)
    raw_mm: np.ndarray | None = None
    bfx_mm: np.ndarray | None = None
    broken: str | None = None  # the frame is skipped: "bad_json", "no_intrinsics", "objects_not_list"


def _depth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    mm = (1000 + 4000 * np.linspace(0, 1, h)[:, None] + 300 * rng.random((h, w))).astype(np.uint16)
    mm[rng.random((h, w)) < 0.1] = 0  # holes
    mm[:3, :3] = 9000  # beyond the 8 m clip of the toolbox
    return mm


def frame_specs(rng: np.random.Generator) -> list[SunFrameSpec]:
    K = np.array([[529.5, 0.0, 365.0], [0.0, 529.5, 265.0], [0.0, 0.0, 1.0]])
    specs = [
        SunFrameSpec(
            "kv1/NYUdata/NYU0001", "train", 64, 48, K,
            objects=[{"name": "Chair"}, {"name": "wall"}, None, {"name": "night_stand"}, {}, {"name": "tv"}],
            polygons=[
                {"x": [3.5, 20.0, 12.0], "y": [4.0, 5.0, 30.25], "object": 0},
                {"x": [30.0, 34.0], "y": [40.0, 44.0], "object": 0},  # second part of the chair
                {"x": [0, 64, 64, 0], "y": [0, 0, 20, 20], "object": 1},
                {"x": [1, 2, 3], "y": [1, 2, 3], "object": 2},  # deleted object (null)
                {"x": [-5.0, 10.0], "y": [40.0, 60.0], "object": 3},  # leaves the image: clamped
                {"x": [5, 6], "y": [5, 6], "object": 4},  # nameless object
                {"x": [70.0, 80.0], "y": [1.0, 9.0], "object": 5},  # entirely right of the image
            ],
            expected=[([3.5, 4.0, 34.0, 44.0], "chair"), ([0.0, 40.0, 10.0, 48.0], "night_stand")],
            dropped_polygons=[(6, "zero area in the image")], dropped_objects=[(5, "zero area in the image")],
        ),
        SunFrameSpec(
            "kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103-resize", "test", 73, 53, K,
            objects=[{"name": "Garbage_Bin"}, {"name": "coffee table"}, {"name": "bedside table"}],
            polygons=[
                {"x": [10, 20], "y": [10, 20], "object": 0},
                {"x": [30, 50, 40], "y": [5, 5, 25], "object": 1},
                {"x": [60, 70], "y": [30, 50], "object": 2},
            ],
            expected=[([10.0, 10.0, 20.0, 20.0], "garbage_bin"), ([30.0, 5.0, 50.0, 25.0], "table"),
                      ([60.0, 30.0, 70.0, 50.0], "night_stand")],
        ),
        SunFrameSpec(
            "realsense/lg/2014_10_26-15_02_41-1311000073", "test", 68, 53, K,
            objects=[{"name": "sofa"}], polygons=[{"x": [1, 67], "y": [2, 52], "object": 0}],
            expected=[([1.0, 2.0, 67.0, 52.0], "sofa")],
        ),
        SunFrameSpec(
            "xtion/sun3ddata/mit_lab/scan1/0000001-000000000001", "train", 64, 48, K,
            objects=[{"name": "lamp"}], polygons=[], expected=[],  # annotated frame without polygons
        ),
        SunFrameSpec(
            "kv2/align_kv2/2014-12-18_14-11-02_260595134347", "train", 64, 48, K,
            objects=[{"name": "desk"}, {"name": "chair"}, {"name": "lamp"}, {"name": "wall"}],
            polygons=[
                {"x": 12.0, "y": [1, 2], "object": 0},  # scalar x, the desk's only polygon: desk dropped
                {"x": [5, 25, 15], "y": [10, 10, 30], "object": 1},
                {"x": [40, 50], "y": [float("nan"), 6], "object": 2},  # NaN: the lamp keeps its other polygon
                {"x": [40, 50, 45], "y": [5, 5, 20], "object": 2},
                {"x": 3, "y": 4, "object": 3},  # malformed, but a wall is none of the 19 classes: not checked
            ],
            expected=[([5.0, 10.0, 25.0, 30.0], "chair"), ([40.0, 5.0, 50.0, 20.0], "lamp")],
            dropped_polygons=[(0, "x/y not lists"), (2, "non-finite coordinates")],
            dropped_objects=[(0, "x/y not lists")],
        ),
        SunFrameSpec("xtion/xtion_align_data/2014_12_18_13_49_54", "test", 64, 48, K,
                     objects=[], polygons=[], broken="bad_json"),
        SunFrameSpec("realsense/sh/2014_10_21-18_52_56-1311000073", "test", 64, 48, K,
                     objects=[{"name": "bed"}], polygons=[{"x": [1, 5], "y": [1, 5], "object": 0}],
                     broken="objects_not_list"),
        SunFrameSpec("realsense/sa/2014_10_23-15_17_40-1311000073", "train", 64, 48, K,
                     objects=[], polygons=[], broken="no_intrinsics"),
        SunFrameSpec("kv1/b3dodata/img_9999", None, 64, 48, K,
                     objects=[{"name": "bed"}], polygons=[{"x": [1, 5], "y": [1, 5], "object": 0}],
                     expected=[([1.0, 1.0, 5.0, 5.0], "bed")]),
    ]  # fmt: skip
    for i, spec in enumerate(specs):
        spec.raw_mm = _depth(rng, spec.height, spec.width)
        if i % 2 == 0:  # every other frame has the toolbox's filled depth
            spec.bfx_mm = np.maximum(spec.raw_mm, 1500).astype(np.uint16)
            spec.bfx_mm[:3, :3] = 9000
    return specs


def write_frame(root: Path, spec: SunFrameSpec, rng: np.random.Generator) -> Path:
    folder = root / "SUNRGBD" / spec.key
    stem = Path(spec.key).name
    (folder / "image").mkdir(parents=True, exist_ok=True)
    rgb = rng.integers(0, 256, size=(spec.height, spec.width, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "image" / f"{stem}.jpg", quality=95)
    write_depth_png(folder / "depth" / f"{stem}.png", spec.raw_mm)
    if spec.bfx_mm is not None:
        write_depth_png(folder / "depth_bfx" / f"{stem}.png", spec.bfx_mm)
    if spec.broken != "no_intrinsics":
        rows = (" ".join(f"{v:g}" for v in row) for row in spec.K)  # 3×3, row-major, one row per line
        (folder / "intrinsics.txt").write_text("\n".join(rows) + "\n")
    annotation = folder / "annotation2Dfinal" / "index.json"
    annotation.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": stem, "date": "1 Jan 2015", "frames": [{"polygon": spec.polygons}], "objects": spec.objects,
        "extLabel": [], "conflictList": [], "fileList": [f"image/{stem}.jpg"],
    }  # fmt: skip
    if spec.broken == "objects_not_list":
        doc["objects"] = {str(k): obj for k, obj in enumerate(spec.objects)}
    text = json.dumps(doc)
    annotation.write_text(text[: len(text) // 2] if spec.broken == "bad_json" else text)
    (folder / "scene.txt").write_text("office\n")
    (folder / "fullres").mkdir(exist_ok=True)  # present in the real tree; must not be taken for a frame
    return folder


def write_allsplit(path: Path, specs: list[SunFrameSpec], extra_test: list[str] = ()) -> Path:
    """``allsplit.mat`` listing the specs' keys (train / test), plus keys that are not on disk."""

    def cells(keys):
        out = np.empty((1, len(keys)), dtype=object)
        for i, k in enumerate(keys):
            out[0, i] = PREFIX + k + ("/" if i % 2 else "")  # the real file mixes both forms
        return out

    train = [s.key for s in specs if s.split == "train"]
    test = [s.key for s in specs if s.split == "test"] + list(extra_test)
    savemat(str(path), {
        "alltrain": cells(train), "alltest": cells(test),
        "trainvalsplit": {"train": cells(train[::2]), "val": cells(train[1::2])},
    })  # fmt: skip
    return path


def build_sun_source(folder: Path, seed: int = 0) -> tuple[Path, list[SunFrameSpec]]:
    """``folder/SUNRGBD/...`` plus ``folder/SUNRGBD/allsplit.mat``; returns (SUNRGBD folder, specs)."""
    rng = np.random.default_rng(seed)
    specs = frame_specs(rng)
    for spec in specs:
        write_frame(folder, spec, rng)
    write_allsplit(folder / "SUNRGBD" / "allsplit.mat", specs, extra_test=["kv2/kinect2data/not_downloaded"])
    return folder / "SUNRGBD", specs
