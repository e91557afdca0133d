"""Writing a prepared store: atomic, resumable after any interruption, with training statistics.

A split is written into the folder ``<out>/<split>.h5.partial/`` as shards of ``shard_size``
frames. Each shard is a small file in the store's own format, written as ``shard-<first>.h5.tmp``
and renamed when closed, so a finished shard is never touched again: a preparation stopped in any
way — an exception, Ctrl-C, SIGKILL, a power cut — loses at most the shard in progress, and the
same command resumes after the last finished shard (the folder's ``header.json`` must match the
command's settings). HDF5 gives no such guarantee for one big file killed mid-write: its
metadata can be left half-flushed and unusable.

When every shard is there they are merged into ``<split>.h5`` (via ``<split>.h5.merging`` and a
rename): image chunks are copied as stored bytes (``read_direct_chunk``), without recompressing.
A reader therefore only ever sees complete split files.

Statistics: shards keep per-frame channel moments of every group the loader can feed — ``rgb``
and ``hha`` from every training frame, the on-the-fly depth encoders from at most 256 evenly
spaced training frames (some, like normals, cost as much as making the frame). At the merge of
``train`` they are combined into per-channel mean and std (``stats/<group>``), copied into every
split and written to ``<out>/stats.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from dsod_depth import __version__
from dsod_depth.data.preprocess import ProcessedFrame, processed_frames, stat_groups
from dsod_depth.data.sample import RGBDSample
from dsod_depth.data.stats import merge_moments, moments_to_mean_std
from dsod_depth.data.store import DEPTH_SCALE, DEPTH_UNIT, FORMAT, FORMAT_VERSION, split_path
from dsod_depth.errors import KitError
from dsod_depth.fileio import write_text_atomic

__all__ = ["COMPRESSIONS", "SplitSource", "write_store", "stat_groups"]

# Image compression of a store. LZ4 (HDF5 filter 32004, from hdf5plugin) decompresses a
# 320×240×3 frame about 8× faster than LZF for the same size, which keeps store reading a small
# part of a loader worker's time (benchmarks/bench_data.py); LZF is built into h5py; gzip suits
# stores read by other HDF5 tools without plugins.
COMPRESSIONS = ("lz4", "lzf", "gzip")


def _compression_options(name: str) -> dict[str, Any]:
    """h5py ``create_dataset`` keyword arguments of a compression in :data:`COMPRESSIONS`."""
    if name == "lz4":
        import hdf5plugin

        return dict(hdf5plugin.LZ4())
    if name == "lzf":
        return {"compression": "lzf"}
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 4}
    raise KitError(f"unknown compression {name!r}; choose one of {', '.join(COMPRESSIONS)}")


_IMAGES = ("rgb", "depth", "raw_hole", "raw_depth", "hha")  # one chunk per frame, copied as bytes
_TABLES = ("sizes", "intrinsics", "image_ids")  # small per-frame rows
_ENCODER_STAT_FRAMES = 256  # evenly spaced training frames that estimate on-the-fly encoder statistics


@dataclass(frozen=True)
class SplitSource:
    """Where a split's frames come from.

    name: split name (``train``, ``test``, ``val``); num_frames: frame count;
    frame: picklable callable index → :class:`RGBDSample` (deterministic per index);
    height, width: largest frame size of the split (smaller frames are padded in the file).
    """

    name: str
    num_frames: int
    frame: Callable[[int], RGBDSample]
    height: int
    width: int


def _create(f: h5py.File, n: int, h: int, w: int, layout: dict[str, Any]) -> None:
    """Empty datasets for n frames of at most h × w pixels (the layout of :mod:`.store`)."""
    packed = _compression_options(layout["compression"])
    if layout["with_rgb"]:
        f.create_dataset("rgb", (n, h, w, 3), np.uint8, chunks=(1, h, w, 3), **packed)
    f.create_dataset("depth", (n, h, w), np.uint16, chunks=(1, h, w), shuffle=True, **packed)
    f.create_dataset("raw_hole", (n, h, w), bool, chunks=(1, h, w), **packed)
    if layout["raw_separate"]:
        f.create_dataset("raw_depth", (n, h, w), np.uint16, chunks=(1, h, w), shuffle=True, **packed)
    if layout["with_hha"]:
        f.create_dataset("hha", (n, h, w, 3), np.uint8, chunks=(1, h, w, 3), **packed)
    f.create_dataset("sizes", (n, 2), np.int32)
    f.create_dataset("intrinsics", (n, 4), np.float64)
    f.create_dataset("image_ids", (n,), h5py.string_dtype())
    f.create_dataset("box_offsets", (n + 1,), np.int64)
    f.create_dataset("boxes", (0, 4), np.float32, maxshape=(None, 4), chunks=(4096, 4))
    f.create_dataset("labels", (0,), np.int64, maxshape=(None,), chunks=(4096,))
    f.create_dataset("difficult", (0,), bool, maxshape=(None,), chunks=(4096,))
    names = np.array(layout["class_names"], dtype=object)
    f.create_dataset("class_names", data=names, dtype=h5py.string_dtype())
    for name, shape in layout["meta_shapes"].items():
        f.create_dataset(f"meta/{name}", (n, *shape), np.float64)
    for group, channels in layout["channels"].items():
        f.create_dataset(f"frame_moments/{group}", (n, channels, 3), np.float64)


class _Shard:
    """Frames [first, first + count) of a split, written to a temporary file then renamed."""

    def __init__(
        self, folder: Path, first: int, count: int, source: SplitSource, layout: dict[str, Any]
    ) -> None:
        self.final = folder / f"shard-{first:08d}.h5"
        self.tmp = self.final.with_name(self.final.name + ".tmp")
        self.first, self.count, self.source, self.layout = first, count, source, layout
        self.f = h5py.File(self.tmp, "w")
        self.f.attrs.update(first_frame=first, num_frames=count)
        _create(self.f, count, source.height, source.width, layout)
        self.rows = 0

    def write(self, item: ProcessedFrame) -> None:
        f, lay, sample = self.f, self.layout, item.sample
        j = item.index - self.first
        h, w = sample.height, sample.width
        if h > self.source.height or w > self.source.width:
            raise KitError(
                f"sample {sample.image_id!r} is {w}×{h}, larger than the split's "
                f"{self.source.width}×{self.source.height}"
            )
        sample.validate(len(lay["class_names"]))
        if lay["with_rgb"]:
            if sample.rgb is None:
                raise KitError(f"sample {sample.image_id!r} has no rgb but the dataset declares colour")
            f["rgb"][j, :h, :w] = sample.rgb
        f["depth"][j, :h, :w] = item.depth_mm
        f["raw_hole"][j, :h, :w] = item.raw_mm == 0
        if lay["raw_separate"]:
            f["raw_depth"][j, :h, :w] = item.raw_mm
        elif np.any((item.raw_mm != 0) & (item.raw_mm != item.depth_mm)):
            raise KitError(
                f"sample {sample.image_id!r}: raw depth differs from the filled depth at measured pixels; "
                "the preparer must declare raw_separate=True"
            )
        if lay["with_hha"]:
            f["hha"][j, :h, :w] = item.hha
        f["sizes"][j] = (h, w)
        f["intrinsics"][j] = sample.intrinsics.as_tuple()
        f["image_ids"][j] = sample.image_id
        n = sample.num_boxes
        for name, values in (
            ("boxes", sample.boxes),
            ("labels", sample.labels),
            ("difficult", sample.difficult),
        ):
            f[name].resize(self.rows + n, axis=0)
            f[name][self.rows : self.rows + n] = values
        self.rows += n
        f["box_offsets"][j + 1] = self.rows
        for name in lay["meta_shapes"]:
            if name not in sample.meta:
                raise KitError(f"sample {sample.image_id!r} lacks meta[{name!r}] that the dataset declares")
            f[f"meta/{name}"][j] = sample.meta[name]
        for group, moments in item.moments.items():
            f[f"frame_moments/{group}"][j] = moments

    def close(self) -> None:
        """Finish the shard: after the rename it is final."""
        self.f.close()
        os.replace(self.tmp, self.final)

    def abandon(self) -> None:
        self.f.close()
        self.tmp.unlink(missing_ok=True)


def _finished_shards(folder: Path, num_frames: int) -> int:
    """Frames covered by consecutive finished shards from frame 0; later or stray files are removed."""
    for tmp in folder.glob("*.tmp"):
        tmp.unlink()
    done = 0
    for path in sorted(folder.glob("shard-*.h5")):
        if path.name == f"shard-{done:08d}.h5" and done < num_frames:
            try:
                with h5py.File(path, "r") as f:
                    done += int(f.attrs["num_frames"])
                continue
            except (OSError, KeyError):
                pass
        path.unlink()  # unreadable, or not contiguous with what came before: regenerate from there
    return min(done, num_frames)


def _merging_path(final: Path) -> Path:
    """Where a split is merged before its rename to ``final``."""
    return final.with_name(final.name + ".merging")


def _merge(
    folder: Path,
    final: Path,
    source: SplitSource,
    header: dict[str, Any],
    layout: dict[str, Any],
    stats: dict[str, tuple[np.ndarray, np.ndarray]] | None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Merge the shards into ``final`` atomically; returns the statistics it stored."""
    merging = _merging_path(final)
    moments: dict[str, list[np.ndarray]] = {g: [] for g in layout["channels"]}
    with h5py.File(merging, "w") as out:
        out.attrs.update(header)
        out.attrs.update(depth_unit=DEPTH_UNIT, depth_scale=DEPTH_SCALE, complete=False)
        _create(out, source.num_frames, source.height, source.width, layout)
        rows = 0
        for path in sorted(folder.glob("shard-*.h5")):
            with h5py.File(path, "r") as shard:
                first, n = int(shard.attrs["first_frame"]), int(shard.attrs["num_frames"])
                for name in _IMAGES:
                    if name not in shard:
                        continue
                    tail = (0,) * (shard[name].ndim - 1)
                    for j in range(n):  # stored (compressed) bytes, one chunk per frame
                        mask, chunk = shard[name].id.read_direct_chunk((j, *tail))
                        out[name].id.write_direct_chunk((first + j, *tail), chunk, mask)
                for name in _TABLES:
                    out[name][first : first + n] = shard[name][()]
                for name in shard["meta"] if "meta" in shard else []:
                    out[f"meta/{name}"][first : first + n] = shard[f"meta/{name}"][()]
                m = shard["boxes"].shape[0]
                for name in ("boxes", "labels", "difficult"):
                    out[name].resize(rows + m, axis=0)
                    out[name][rows : rows + m] = shard[name][()]
                out["box_offsets"][first + 1 : first + n + 1] = shard["box_offsets"][1:] + rows
                rows += m
                for group in moments:
                    frame_moments = shard[f"frame_moments/{group}"][()]
                    out[f"frame_moments/{group}"][first : first + n] = frame_moments
                    moments[group].append(frame_moments)
        if stats is None:  # the train split: its moments normalise every split
            stats = {g: moments_to_mean_std(merge_moments(np.concatenate(m))) for g, m in moments.items()}
        for group, (mean, std) in stats.items():
            out.create_dataset(f"stats/{group}/mean", data=mean)
            out.create_dataset(f"stats/{group}/std", data=std)
        out.attrs.update(frames_done=source.num_frames, complete=True)
    os.replace(merging, final)
    shutil.rmtree(folder)
    return stats


def _prepare_split(
    out: Path,
    source: SplitSource,
    header: dict[str, Any],
    layout: dict[str, Any],
    stats,
    workers: int,
    shard_size: int,
    progress: bool,
    dataset: str,
):
    """Write (or resume) one split's shards, then merge them; returns the statistics used."""
    final = split_path(out, source.name)
    folder = final.with_name(final.name + ".partial")
    if folder.is_file():  # an unusable leftover (e.g. from another tool): start over
        folder.unlink()
    folder.mkdir(exist_ok=True)
    header_file = folder / "header.json"
    wanted = json.loads(json.dumps(header))
    if header_file.exists():
        there = json.loads(header_file.read_text())
        if there != wanted:
            key = next(k for k in wanted if there.get(k) != wanted[k])
            raise KitError(
                f"{folder} is an interrupted preparation with different settings ({key}: {there.get(key)!r} "
                f"there, {wanted[key]!r} now); rerun with the same arguments or delete it"
            )
    else:
        header_file.write_text(json.dumps(wanted, indent=1))
    done = _finished_shards(folder, source.num_frames)
    shard: _Shard | None = None
    try:
        with tqdm(
            total=source.num_frames,
            initial=done,
            desc=f"{dataset} {source.name}",
            unit="frame",
            disable=not progress,
        ) as bar:
            frames = range(done, source.num_frames)
            # Encoder statistics come from the training split only, from at most ~256 frames.
            stride = -(-source.num_frames // _ENCODER_STAT_FRAMES) if stats is None else 0
            for item in processed_frames(
                source.frame, frames, layout["groups"], layout["with_hha"], stride, workers
            ):
                if shard is None:
                    count = min(shard_size, source.num_frames - item.index)
                    shard = _Shard(folder, item.index, count, source, layout)
                shard.write(item)
                bar.update(1)
                if item.index + 1 == shard.first + shard.count:
                    shard.close()
                    shard = None
    except BaseException as err:
        if shard is not None:
            shard.abandon()
        if isinstance(err, OSError):  # e.g. the disk filled up: finished shards stay for the rerun
            where = shard.tmp if shard is not None else folder
            raise KitError(f"cannot write {where}: {err.strerror or err}; rerun to resume") from None
        raise
    try:
        return _merge(folder, final, source, header, layout, stats)
    except OSError as err:
        _merging_path(final).unlink(missing_ok=True)
        raise KitError(f"cannot write {final}: {err.strerror or err}; rerun to resume") from None


def write_store(
    out: str | os.PathLike,
    *,
    dataset: str,
    class_names: Sequence[str],
    splits: Sequence[SplitSource],
    prep_args: dict[str, Any],
    with_rgb: bool = True,
    with_depth: bool = True,
    with_hha: bool = True,
    raw_separate: bool = False,
    meta_shapes: dict[str, tuple[int, ...]] | None = None,
    workers: int = 1,
    shard_size: int = 32,
    progress: bool = True,
    compression: str = "lz4",
) -> dict[str, Path]:
    """Write (or finish) a prepared store; returns split name → file.

    ``splits`` must start with ``train``: its statistics normalise every split. A split whose
    complete file exists with the same settings is kept; different settings raise KitError.

    Options: ``with_rgb`` False for depth-only datasets; ``with_depth`` False for colour-only
    datasets (samples carry all-zero depth; no HHA and no depth-encoder statistics are made, and
    the attribute ``has_depth`` tells the loader); ``with_hha`` computes HHA at preparation;
    ``raw_separate`` stores raw depth apart when it differs from the filled depth at measured
    pixels; ``meta_shapes`` names per-frame float arrays of ``RGBDSample.meta`` to keep;
    ``workers`` processes make the frames; ``shard_size`` frames per resumable shard;
    ``compression`` of the image datasets, one of :data:`COMPRESSIONS`.
    """
    if not with_rgb and not with_depth:
        raise KitError("a prepared store needs colour, depth or both")
    with_hha = with_hha and with_depth
    if not splits or splits[0].name != "train":
        raise KitError("a prepared store needs a 'train' split first: its statistics normalise every split")
    _compression_options(compression)  # refuses an unknown name before anything is written
    from dsod_depth.encoders import num_channels

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = stat_groups(with_rgb) if with_depth else ["rgb"]
    layout = {
        "with_rgb": with_rgb,
        "with_hha": with_hha,
        "raw_separate": raw_separate,
        "compression": compression,
        "class_names": list(class_names),
        "meta_shapes": dict(meta_shapes or {}),
        "groups": groups,
        "channels": {
            g: 3 if g in ("rgb", "hha") else num_channels(g) for g in groups if with_hha or g != "hha"
        },
    }
    stats = None
    files = {}
    for source in splits:
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "dataset": dataset,
            "split": source.name,
            "num_frames": source.num_frames,
            "kit_version": __version__,
            "prep_args": json.dumps(prep_args, sort_keys=True),
            "raw_separate": raw_separate,
            "has_depth": with_depth,
            # Shards are merged by copying compressed chunks: a resumed preparation must use the
            # compression of the shards already written.
            "compression": compression,
        }
        final = split_path(out, source.name)
        if final.exists():
            stats = _existing(final, header, stats)
        else:
            stats = _prepare_split(out, source, header, layout, stats, workers, shard_size, progress, dataset)
        if not (out / "stats.json").exists():
            _write_stats_json(out / "stats.json", stats)
        files[source.name] = final
    return files


def _existing(final: Path, header: dict[str, Any], stats):
    """Check a finished split against the requested settings; return the training statistics."""
    with h5py.File(final, "r") as f:
        for key in ("dataset", "num_frames", "prep_args", "format_version"):
            there = f.attrs.get(key)
            there = there.item() if isinstance(there, np.generic) else there
            if there != header[key]:
                raise KitError(
                    f"{final} was prepared with different settings ({key}: {there!r}, now "
                    f"{header[key]!r}); choose another --out folder or delete it"
                )
        if stats is None:
            stats = {g: (grp["mean"][()], grp["std"][()]) for g, grp in f["stats"].items()}
    return stats


def _write_stats_json(path: Path, stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Human-readable copy of the training statistics, written atomically."""
    text = json.dumps({g: {"mean": m.tolist(), "std": s.tolist()} for g, (m, s) in stats.items()}, indent=2)
    write_text_atomic(path, text + "\n")
