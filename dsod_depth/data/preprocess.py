"""Per-frame work of a preparation: quantise depth, compute HHA and channel moments, in order.

Runs in worker processes when the preparation asks for more than one; frames come back in index
order either way, so the store does not depend on the number of workers. Each frame is computed
with one BLAS/OpenMP thread: the parallelism of a preparation is its worker processes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

from dsod_depth.data.sample import RGBDSample
from dsod_depth.data.stats import frame_moments
from dsod_depth.data.store import decode_depth
from dsod_depth.errors import KitError

__all__ = ["ProcessedFrame", "stat_groups", "process_frame", "processed_frames", "to_millimetres"]

_MAX_MM = int(np.iinfo(np.uint16).max)


@dataclass
class ProcessedFrame:
    """A frame ready to store: depth_mm / raw_mm uint16 [H, W] millimetres (0 = invalid / hole),
    hha uint8 [H, W, 3] or None, moments group → float64 [C, 3] (count, mean, M2)."""

    index: int
    sample: RGBDSample
    depth_mm: np.ndarray
    raw_mm: np.ndarray
    hha: np.ndarray | None
    moments: dict[str, np.ndarray]


def stat_groups(with_rgb: bool) -> list[str]:
    """Channel groups whose statistics a store records: rgb (if any), hha and every registered encoder."""
    from dsod_depth.encoders import ENCODERS

    return (["rgb"] if with_rgb else []) + sorted(set(ENCODERS.list()) | {"hha"})


def to_millimetres(depth: np.ndarray, image_id: str) -> np.ndarray:
    """float32 metres [H, W] → uint16 millimetres, rounded to nearest (error ≤ 0.5 mm)."""
    if depth.size and float(depth.max()) * 1000.0 > _MAX_MM:
        raise KitError(
            f"sample {image_id!r}: depth above {_MAX_MM / 1000:.3f} m cannot be stored in millimetres"
        )
    return np.rint(depth.astype(np.float64) * 1000.0).astype(np.uint16)


def process_frame(
    frame: Callable[[int], RGBDSample], groups: Sequence[str], with_hha: bool, encoder_stride: int, index: int
) -> ProcessedFrame:
    """Make frame ``index`` and everything the store keeps about it.

    Moments of ``rgb`` and ``hha`` (stored anyway) come from every frame; those of the on-the-fly
    encoders only from frames whose index is a multiple of ``encoder_stride`` (0 = none), since
    some encoders (normals) cost as much as the frame itself. Depth is rounded to the stored
    millimetres *before* HHA and the moments, so both describe exactly what a reader gets back.
    """
    from dsod_depth.encoders import encode, hha_image

    sample = frame(index)
    depth_mm = to_millimetres(sample.depth, sample.image_id)
    raw_mm = to_millimetres(sample.raw_depth, sample.image_id)
    depth, raw = decode_depth(depth_mm), decode_depth(raw_mm)
    hha = hha_image(depth, raw, sample.intrinsics) if with_hha else None
    moments = {}
    for group in groups:
        if group == "rgb":
            moments[group] = frame_moments(sample.rgb.transpose(2, 0, 1))  # [H, W, 3] → [3, H, W]
        elif group == "hha" and hha is not None:
            moments[group] = frame_moments(hha.transpose(2, 0, 1))  # [H, W, 3] → [3, H, W]
        elif group != "hha" and encoder_stride and index % encoder_stride == 0:
            moments[group] = frame_moments(encode(group, depth, raw, sample.intrinsics))
    return ProcessedFrame(index, sample, depth_mm, raw_mm, hha, moments)


def processed_frames(
    frame: Callable[[int], RGBDSample],
    indices: range,
    groups: Sequence[str],
    with_hha: bool,
    encoder_stride: int,
    workers: int = 1,
) -> Iterator[ProcessedFrame]:
    """Processed frames for ``indices`` in order, computed by ``workers`` processes if > 1."""
    job = (frame, list(groups), with_hha, encoder_stride)
    if workers <= 1:
        pools = ThreadpoolController()  # found once: looking them up costs ~1 ms
        for i in indices:
            with pools.limit(limits=1):
                item = process_frame(*job, i)
            yield item
        return
    # Spawned, not forked: Open3D's and BLAS's thread pools are not fork-safe once started.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=job) as pool:
        yield from pool.imap(_work, indices, chunksize=2)


_JOB: tuple = ()  # the process_frame arguments but the index, in this worker process


def _init_worker(*job) -> None:
    global _JOB
    _JOB = job
    # One frame per process at a time; BLAS's and OpenMP's own thread pools (the gravity estimate's
    # matrix products) would only compete with the other workers: with two workers on two cores,
    # multi-threaded BLAS made a preparation slower than with one worker.
    threadpool_limits(1)


def _work(index: int) -> ProcessedFrame:
    return process_frame(*_JOB, index)
