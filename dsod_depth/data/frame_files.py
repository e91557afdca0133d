"""Frames of a prepared store written out as the plain files a camera pipeline produces.

``write_frame_files(store, split, folder)`` writes, per frame, ``rgb/<stem>.png`` (8-bit colour),
``depth/<stem>.png`` (filled depth) and ``raw/<stem>.png`` (raw depth, 0 at holes), both 16-bit
millimetres — exactly the values the store holds — plus ``intrinsics.txt`` in SUN RGB-D's layout
(the 3×3 camera matrix, 1-based principal point) when every frame shares one camera. This is the
folder layout ``dsod-depth detect --input`` reads, so a trained detector can be tried on files
(the demo leaves a few test frames in ``runs/demo/frames/``) and its output compared with ``eval``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dsod_depth.data.depth_io import save_png_atomic
from dsod_depth.errors import KitError
from dsod_depth.fileio import write_text_atomic

__all__ = ["write_frame_files", "FRAME_FOLDERS", "INTRINSICS_FILE"]

FRAME_FOLDERS = ("rgb", "depth", "raw")
INTRINSICS_FILE = "intrinsics.txt"


def write_frame_files(
    store: str | os.PathLike, split: str, folder: str | os.PathLike, *, indices: Sequence[int] | None = None
) -> list[str]:
    """Write frames ``indices`` (default: all) of ``split`` into ``folder``; returns their stems
    (the frame's position, zero-padded: ``000``, ``001``, …), in order."""
    from dsod_depth.data.store import load_prepared  # h5py: only when writing

    samples, _ = load_prepared(store, split)
    if "rgb" not in samples.fields or not samples.attrs.get("has_depth", True):
        raise KitError(f"{samples.path} does not hold both colour and depth; nothing to write as RGB-D files")
    indices = list(range(len(samples))) if indices is None else [int(i) for i in indices]
    folder = Path(folder)
    for name in FRAME_FOLDERS:
        (folder / name).mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(max(indices, default=0))))
    stems = []
    for index in indices:
        arrays = samples.read(index, ["rgb", "depth", "raw_depth"])
        stem = f"{index:0{width}d}"
        save_png_atomic(folder / "rgb" / f"{stem}.png", arrays["rgb"])
        for name, key in (("depth", "depth"), ("raw", "raw_depth")):
            # The store's float32 metres are k / 1000 for whole millimetres k: back to k exactly.
            millimetres = np.rint(arrays[key].astype(np.float64) * 1000.0).astype(np.uint16)
            save_png_atomic(folder / name / f"{stem}.png", millimetres)
        stems.append(stem)
    cameras = {samples.camera(i) for i in indices}
    if len(cameras) == 1:
        k = cameras.pop()
        # SUN RGB-D's intrinsics.txt: row-major 3×3 matrix, principal point on the 1-based grid.
        rows = [[k.fx, 0.0, k.cx + 1.0], [0.0, k.fy, k.cy + 1.0], [0.0, 0.0, 1.0]]
        write_text_atomic(
            folder / INTRINSICS_FILE, "\n".join(" ".join(f"{v:.10g}" for v in r) for r in rows) + "\n"
        )
    return stems
