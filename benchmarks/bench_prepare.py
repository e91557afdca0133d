"""NYU Depth v2 preparation speed: frames/s of ``prepare nyudv2`` including HHA, and the full-set estimate.

A labeled file in the real v7.3 layout (640×480 frames, gzip-chunked per frame like MATLAB's save,
object-reference name cells, MATLAB user block) is written with the test fixture, repeating a few
distinct frames up to the requested count. Timed:

- ``read``: the frame reader alone (one h5py slice per variable, crop, (label, instance) boxes);
- ``hha``: :func:`dsod_depth.encoders.hha_image` alone on one cropped 560×425 frame;
- ``prepare``: the whole preparation (read, HHA, every encoder's statistics, compressed writes)
  for each worker count, with encoder statistics sampled at the full set's frame stride.

The full labeled set has 1449 frames; the estimate is 1449 / (prepare frames/s).

Usage::

    python benchmarks/bench_prepare.py            # 300 frames, workers 1 and 2
    python benchmarks/bench_prepare.py --quick    # 24 frames, workers 1

Prints a table and writes ``benchmarks/results/bench_prepare.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fixture writer lives with the tests

from dsod_depth.data import nyudv2  # noqa: E402
from dsod_depth.encoders import hha_image  # noqa: E402
from tests.data.fixtures_nyu import fixture_names, make_frame, write_labeled_mat, write_splits  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_prepare.json"
NYU_FRAMES = 1449
NYU_TRAIN_FRAMES = 795  # the official split


def build_source(folder: Path, num_frames: int, distinct: int) -> Path:
    """A --source folder with ``num_frames`` frames (``distinct`` different ones, repeated)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    frames = [make_frame(rng, i) for i in range(distinct)]
    write_labeled_mat(folder / nyudv2.LABELED_FILE, frames, num_frames=num_frames)
    cut = int(num_frames * NYU_TRAIN_FRAMES / NYU_FRAMES)  # the official train/test proportion
    write_splits(folder / nyudv2.SPLITS_FILE, list(range(1, cut + 1)), list(range(cut + 1, num_frames + 1)))
    return folder


def time_read(source: Path, num_frames: int) -> float:
    ids = nyudv2.class_ids_from_names(fixture_names())
    reader = nyudv2.NyuFrames(source / nyudv2.LABELED_FILE, np.arange(num_frames), ids)
    start = time.perf_counter()
    for i in range(num_frames):
        reader(i)
    return num_frames / (time.perf_counter() - start)


def time_hha(source: Path, repeats: int) -> float:
    ids = nyudv2.class_ids_from_names(fixture_names())
    sample = nyudv2.NyuFrames(source / nyudv2.LABELED_FILE, np.arange(1), ids)(0)
    hha_image(sample.depth, sample.raw_depth, sample.intrinsics)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        hha_image(sample.depth, sample.raw_depth, sample.intrinsics)
    return (time.perf_counter() - start) / repeats * 1000.0


def time_prepare(source: Path, out: Path, workers: int, num_frames: int) -> float:
    # On-the-fly encoder statistics come from at most 256 evenly spaced training frames: every 4th
    # of the full set's 795 training frames, but every one of a 300-frame fixture's 164. Sample
    # the fixture at the full set's stride so that its rate carries over to the full set.
    from dsod_depth.data import store_writer

    full_stride = -(-NYU_TRAIN_FRAMES // store_writer._ENCODER_STAT_FRAMES)
    train_frames = int(num_frames * NYU_TRAIN_FRAMES / NYU_FRAMES)
    saved = store_writer._ENCODER_STAT_FRAMES
    store_writer._ENCODER_STAT_FRAMES = max(1, train_frames // full_stride)
    try:
        start = time.perf_counter()
        nyudv2.prepare_nyudv2(source, out, workers=workers, progress=False)
        return num_frames / (time.perf_counter() - start)
    finally:
        store_writer._ENCODER_STAT_FRAMES = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 frames, one worker count")
    parser.add_argument("--frames", type=int, default=300, help="frames in the fixture (default 300)")
    parser.add_argument("--distinct", type=int, default=8, help="distinct frames repeated (default 8)")
    parser.add_argument("--workers", default="1,2", help="worker counts to time (default 1,2)")
    args = parser.parse_args()
    num_frames = 24 if args.quick else args.frames
    worker_counts = [1] if args.quick else [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        source = build_source(tmp / "source", num_frames, min(args.distinct, num_frames))
        build_s = time.perf_counter() - start
        size_mb = (source / nyudv2.LABELED_FILE).stat().st_size / 1e6
        read_fps = time_read(source, num_frames)
        hha_ms = time_hha(source, 3 if args.quick else 10)
        prepare = {w: time_prepare(source, tmp / f"store{w}", w, num_frames) for w in worker_counts}
    rows = [
        ("fixture", f"{num_frames} frames, {size_mb:.0f} MB, written in {build_s:.1f} s"),
        ("read + boxes", f"{read_fps:.1f} frames/s"),
        ("HHA 560×425", f"{hha_ms:.0f} ms/frame"),
    ]
    for w, fps in prepare.items():
        minutes = NYU_FRAMES / fps / 60
        estimate = f"{fps:.2f} frames/s → full NYU ({NYU_FRAMES}) in {minutes:.1f} min"
        rows.append((f"prepare, {w} worker(s)", estimate))
    width = max(len(r[0]) for r in rows)
    print(f"NYU Depth v2 preparation (cpu: {os.cpu_count()} cores, shared machine: timings are noisy)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    result = {
        "num_frames": num_frames, "distinct_frames": min(args.distinct, num_frames), "file_mb": size_mb,
        "read_frames_per_s": read_fps, "hha_ms_per_frame": hha_ms,
        "prepare_frames_per_s": {str(w): fps for w, fps in prepare.items()},
        "full_nyu_minutes": {str(w): NYU_FRAMES / fps / 60 for w, fps in prepare.items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
