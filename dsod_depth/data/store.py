"""The prepared store: one HDF5 file per split, read lazily (DESIGN "Data contract").

Layout of ``<store>/<split>.h5`` (N frames, images padded to the largest H × W of the split):

==========================  =====================  ==============================================
dataset                     dtype, shape           content
==========================  =====================  ==============================================
``rgb`` (optional)          uint8 [N, H, W, 3]     colour
``depth``                   uint16 [N, H, W]       filled depth in ``depth_unit`` (millimetres)
``raw_hole``                bool [N, H, W]         True where the sensor returned nothing
``raw_depth`` (optional)    uint16 [N, H, W]       raw depth, only when it differs from ``depth``
                                                   at measured pixels (attribute ``raw_separate``)
``hha`` (optional)          uint8 [N, H, W, 3]     HHA computed at preparation
``sizes``                   int32 [N, 2]           (height, width) of each frame
``intrinsics``              float64 [N, 4]         fx, fy, cx, cy (0-based grid)
``image_ids``               str [N]                stable ids
``box_offsets``             int64 [N + 1]          frame i owns rows box_offsets[i]:box_offsets[i+1]
``boxes`` / ``labels`` /    float32 [M, 4] /       x1 y1 x2 y2 pixels / 0-based class / difficult
``difficult``               int64 [M] / bool [M]
``class_names``             str [K]
``meta/<name>``             float64 [N, ...]       per-frame extras (SynthRooms: gravity, pose)
``frame_moments/<group>``   float64 [N, C, 3]      per-frame (count, mean, M2) per channel
``stats/<group>/{mean,std}`` float64 [C]           over the TRAIN split (copied into every split)
==========================  =====================  ==============================================

Attributes: ``format``, ``format_version``, ``dataset``, ``split``, ``num_frames``,
``frames_done``, ``complete``, ``kit_version``, ``prep_args`` (JSON), ``depth_unit``,
``depth_scale`` (metres per stored unit), ``raw_separate``, ``has_depth`` (False for colour-only
datasets, whose depth is all 0), ``compression``. Image datasets are chunked one frame
per chunk and compressed: LZ4 by default (HDF5 filter 32004; other programs read it after
``import hdf5plugin``, or with ``HDF5_PLUGIN_PATH`` set to hdf5plugin's plugin folder), or LZF
or gzip. A split is prepared in the folder
``<split>.h5.partial/`` and appears as ``<split>.h5`` only when complete
(:mod:`dsod_depth.data.store_writer`); readers refuse anything else.

Reading is lazy: :class:`PreparedSplit` loads the small per-frame tables (boxes, ids, intrinsics)
once, and opens its own HDF5 handle on first pixel access in each process — h5py handles do not
survive fork or pickling, so every DataLoader worker gets its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, overload

import h5py
import numpy as np

from dsod_depth.data.sample import RGBDSample
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics

__all__ = ["FORMAT", "FORMAT_VERSION", "PreparedSplit", "load_prepared", "split_path", "decode_depth"]

FORMAT = "dsod-depth-prepared"
FORMAT_VERSION = 1
DEPTH_UNIT = "millimetre"
DEPTH_SCALE = 0.001  # metres per stored unit
PIXEL_FIELDS = ("rgb", "depth", "raw_depth", "hha")


def split_path(store: str | os.PathLike, split: str) -> Path:
    """Path of a split's file inside a store folder."""
    return Path(store) / f"{split}.h5"


def decode_depth(stored: np.ndarray) -> np.ndarray:
    """uint16 millimetres → float32 metres (0 stays 0). The division is the exact inverse the
    writer assumes: float32(k) / float32(1000) for every stored k."""
    return stored.astype(np.float32) / np.float32(1000.0)


def _resolve(path: str | os.PathLike, split: str) -> Path:
    """The complete split file for (store folder or .h5 file, split), or a KitError saying what to do."""
    path = Path(path)
    if path.suffix == ".h5" or path.name.endswith(".h5.partial"):
        file = path
    elif path.is_dir():
        file = split_path(path, split)
    else:
        raise KitError(
            f"prepared store {path} not found; create it with `dsod-depth prepare <dataset> --out {path}`"
        )
    partial = file.with_name(file.name + ".partial") if file.suffix == ".h5" else file
    if file.name.endswith(".partial") or (not file.exists() and partial.is_dir()):
        done = _frames_done(partial)
        raise KitError(
            f"{partial} is an interrupted preparation ({done}); rerun the same `dsod-depth prepare` "
            "command to finish it"
        )
    if not file.exists():
        have = sorted(p.stem for p in file.parent.glob("*.h5"))
        raise KitError(f"{file.parent} has no split {split!r} (found: {', '.join(have) or 'none'})")
    return file


def _frames_done(partial: Path) -> str:
    """'k/n frames written' for a ``<split>.h5.partial`` folder of finished shards."""
    try:
        total = json.loads((partial / "header.json").read_text())["num_frames"]
        done = 0
        for shard in partial.glob("shard-*.h5"):
            with h5py.File(shard, "r") as f:
                done += int(f.attrs["num_frames"])
        return f"{done}/{total} frames written"
    except (OSError, KeyError, ValueError):
        return "progress unknown"


class PreparedSplit(Sequence[RGBDSample]):
    """A split of a prepared store as a lazy, picklable sequence of :class:`RGBDSample`.

    Attributes: ``path``, ``split``, ``dataset``, ``class_names`` (list of str), ``stats``
    (group → (mean float64 [C], std float64 [C]) over the training split), ``attrs`` (file
    attributes), ``prep_args`` (dict).
    """

    def __init__(self, path: str | os.PathLike, split: str) -> None:
        self.path = _resolve(path, split)
        try:
            with h5py.File(self.path, "r") as f:
                if f.attrs.get("format") != FORMAT or not f.attrs.get("complete", False):
                    raise KitError(
                        f"{self.path} is not a complete dsod-depth prepared store; prepare it again"
                    )
                if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
                    raise KitError(
                        f"{self.path} has store format version {f.attrs.get('format_version')}, this kit "
                        f"reads {FORMAT_VERSION}; prepare the store again with this version"
                    )
                self._load_tables(f)
        except (OSError, KeyError) as err:
            raise KitError(
                f"{self.path} is not a readable prepared store ({err}); prepare it again"
            ) from None
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        self._inherited: list[h5py.File] = []
        self._datasets: dict[str, h5py.Dataset] = {}

    def _load_tables(self, f: h5py.File) -> None:
        self.attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        self.split = str(self.attrs.get("split", ""))
        self.dataset = str(self.attrs.get("dataset", ""))
        self.prep_args = json.loads(self.attrs.get("prep_args", "{}"))
        self.class_names = [s.decode() if isinstance(s, bytes) else s for s in f["class_names"][()]]
        self.image_ids = [s.decode() if isinstance(s, bytes) else s for s in f["image_ids"][()]]
        self.sizes = f["sizes"][()]
        self.intrinsics = f["intrinsics"][()]
        self.box_offsets = f["box_offsets"][()]
        self.boxes = f["boxes"][()]
        self.labels = f["labels"][()]
        self.difficult = f["difficult"][()]
        self.meta = {name: ds[()] for name, ds in f["meta"].items()} if "meta" in f else {}
        # raw_depth is always readable: stored, or rebuilt from depth and the hole mask.
        self.fields = tuple(n for n in PIXEL_FIELDS if n in f or (n == "raw_depth" and "depth" in f))
        self.stats = (
            {group: (g["mean"][()], g["std"][()]) for group, g in f["stats"].items()} if "stats" in f else {}
        )

    # ------------------------------------------------------------------ lazy handle

    def _file(self) -> h5py.File:
        """This process's read handle, opened on first use (one per DataLoader worker)."""
        pid = os.getpid()
        if self._h5 is None or self._pid != pid:
            if self._h5 is not None:
                # Opened by the parent before a fork: keep it referenced and untouched here.
                self._inherited.append(self._h5)
            import hdf5plugin  # noqa: F401  (registers the LZ4 filter of the image datasets)

            self._h5 = h5py.File(self.path, "r")
            self._pid = pid
            # Dataset objects looked up once: a name lookup costs as much as reading a small chunk.
            names = ("rgb", "hha", "depth", "raw_depth", "raw_hole")
            self._datasets = {name: self._h5[name] for name in names if name in self._h5}
        return self._h5

    @property
    def open_in_this_process(self) -> bool:
        """True when this process already holds its own handle."""
        return self._h5 is not None and self._pid == os.getpid()

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5, self._pid, self._datasets = None, None, {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"], state["_pid"], state["_inherited"] = None, None, []  # handles never travel
        state["_datasets"] = {}
        return state

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self.image_ids)

    @overload
    def __getitem__(self, index: int) -> RGBDSample: ...

    @overload
    def __getitem__(self, index: slice) -> list[RGBDSample]: ...

    def __getitem__(self, index: int | slice) -> RGBDSample | list[RGBDSample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = self._check_index(index)
        arrays = self.read(i, self.fields)
        return RGBDSample(
            rgb=arrays.get("rgb"),
            depth=arrays["depth"],
            raw_depth=arrays["raw_depth"],
            intrinsics=self.camera(i),
            boxes=self.boxes[self.box_offsets[i] : self.box_offsets[i + 1]].copy(),
            labels=self.labels[self.box_offsets[i] : self.box_offsets[i + 1]].copy(),
            difficult=self.difficult[self.box_offsets[i] : self.box_offsets[i + 1]].copy(),
            image_id=self.image_ids[i],
            hha=arrays.get("hha"),
            meta={name: values[i].copy() for name, values in self.meta.items()},
        )

    def _check_index(self, index: int) -> int:
        n = len(self)
        i = int(index) + n if int(index) < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"frame {index} out of range for {n} frames of {self.path}")
        return i

    def camera(self, index: int) -> Intrinsics:
        return Intrinsics(*(float(v) for v in self.intrinsics[index]))

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes float32 [N, 4] pixels, labels int64 [N], difficult bool [N]) of one frame, no pixel I/O."""
        lo, hi = self.box_offsets[index], self.box_offsets[index + 1]
        return self.boxes[lo:hi].copy(), self.labels[lo:hi].copy(), self.difficult[lo:hi].copy()

    def read(self, index: int, fields: Iterable[str]) -> dict[str, np.ndarray]:
        """Pixel arrays of one frame, only those asked for (reading fewer fields is faster).

        fields ⊆ {"rgb", "depth", "raw_depth", "hha"}; returns uint8 [H, W, 3] for rgb and hha,
        float32 [H, W] metres for depth and raw_depth (0 = invalid / missing).
        """
        i = self._check_index(index)
        self._file()
        f = self._datasets
        h, w = (int(v) for v in self.sizes[i])
        out: dict[str, np.ndarray] = {}
        depth_mm = None
        for name in fields:
            if name in ("rgb", "hha"):
                if name not in f:
                    raise KitError(f"{self.path} has no {name!r} images (fields: {', '.join(self.fields)})")
                out[name] = f[name][i, :h, :w]
            elif name in ("depth", "raw_depth"):
                if depth_mm is None:
                    depth_mm = f["depth"][i, :h, :w]
                if name == "depth":
                    out[name] = decode_depth(depth_mm)
                elif "raw_depth" in f:
                    out[name] = decode_depth(f["raw_depth"][i, :h, :w])
                else:  # raw = filled where measured, 0 in the holes
                    out[name] = decode_depth(np.where(f["raw_hole"][i, :h, :w], 0, depth_mm))
            else:
                raise KitError(f"unknown store field {name!r}; choose from {', '.join(PIXEL_FIELDS)}")
        return out


def load_prepared(path: str | os.PathLike, split: str) -> tuple[PreparedSplit, list[str]]:
    """Open one split of a store written by ``dsod-depth prepare`` (contract).

    Args:
        path: the store folder (``--out`` of ``prepare``) or one of its ``<split>.h5`` files.
        split: ``train``, ``test`` (or ``val`` where the dataset has one).

    Returns:
        (samples, class_names): a lazy, picklable sequence of :class:`RGBDSample` and the
        dataset's class names (label i ↔ class_names[i]).

    Raises:
        KitError: missing folder or split, interrupted (``.partial``) or foreign file.
    """
    samples = PreparedSplit(path, split)
    if samples.split and samples.split != split:
        raise KitError(f"{samples.path} holds split {samples.split!r}, not {split!r}")
    return samples, list(samples.class_names)
