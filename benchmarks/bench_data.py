"""Data pipeline speed: SynthRooms generation and store read + augmentation per loader worker.

Timed on one core (the process is pinned to one CPU; Open3D, torch and BLAS use one thread):

- ``synthrooms``: generated frames/s at 320×240 and 640×480 (room, placement, ray casting, shading
  with shadows, sensor model, hole filling, boxes). Target ≥ 20 frames/s at 320×240.
- ``loader``: samples/s of ``DetectionDataset`` for ``rgb+hha`` at 300×300 — store read (LZF
  chunks), SSD augmentation and normalisation, i.e. the work of one DataLoader worker — and the
  evaluation path (read + resize). Target ≥ 200 augmented samples/s per worker. The store (320×240
  SynthRooms with HHA) is prepared first in a temporary folder; its preparation rate is reported.

Each rate is given by wall clock and by process CPU time: on a machine shared with other jobs
the wall clock includes waiting for the CPU, the CPU time much less so.

Usage::

    python benchmarks/bench_data.py            # 60 + 20 generated frames, 64 stored frames × 3 passes
    python benchmarks/bench_data.py --quick    # 15 + 5 frames, 16 stored frames × 2 passes

Prints a table and writes ``benchmarks/results/bench_data.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy / torch start their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dsod_depth.data.loader import DetectionDataset  # noqa: E402
from dsod_depth.data.prepare import prepare_synthrooms  # noqa: E402
from dsod_depth.data.synthrooms import SynthRooms, SynthRoomsConfig  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_data.json"
TARGET_FRAMES_PER_S = 20.0  # SynthRooms at 320×240 on one core
TARGET_SAMPLES_PER_S = 200.0  # store read + augmentation per worker, rgb+hha at 300×300


def rate(work: Callable[[int], object], count: int, passes: int = 1) -> dict[str, float]:
    """Items per second of ``work(i)`` for i in range(count), ``passes`` times, after one warm-up call."""
    work(0)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(passes):
        for i in range(count):
            work(i)
    n = count * passes
    return {"wall_per_s": n / (time.perf_counter() - wall), "cpu_per_s": n / (time.process_time() - cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and passes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    torch.set_num_threads(1)
    small, large, stored, passes = (15, 5, 16, 2) if args.quick else (60, 20, 64, 3)

    generation = {}
    for (w, h), count in (((320, 240), small), ((640, 480), large)):
        rooms = SynthRooms(SynthRoomsConfig(width=w, height=h), seed=0, num_threads=1)
        generation[f"{w}x{h}"] = rate(rooms.frame, count)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        prepare_synthrooms(tmp, num_train=stored, num_test=2, size=(320, 240), progress=False)
        prepare_per_s = (stored + 2) / (time.perf_counter() - start)
        train = DetectionDataset(tmp, "train", "rgb+hha", 300, train=True, seed=0)
        evaluation = DetectionDataset(tmp, "train", "rgb+hha", 300, train=False)
        fields = train.fields
        loader = {
            "read_only": rate(lambda i: train.samples.read(i, fields), stored, passes),
            "read_augment_normalise": rate(train.__getitem__, stored, passes),
            "read_resize_normalise": rate(evaluation.__getitem__, stored, passes),
        }

    gen_ok = generation["320x240"]["wall_per_s"] >= TARGET_FRAMES_PER_S
    aug_ok = loader["read_augment_normalise"]["wall_per_s"] >= TARGET_SAMPLES_PER_S
    report = {
        "benchmark": "bench_data",
        "quick": args.quick,
        "synthrooms_frames_per_s": generation,
        "prepare_frames_per_s_320x240_with_hha": prepare_per_s,
        "loader_rgb_hha_300_samples_per_s": loader,
        "targets": {"synthrooms_320x240": TARGET_FRAMES_PER_S, "augmented_samples": TARGET_SAMPLES_PER_S},
        "targets_met": {"synthrooms_320x240": gen_ok, "augmented_samples": aug_ok},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"{'one core':<44}{'wall /s':>10}{'CPU /s':>10}{'target':>10}")
    rows = [(f"SynthRooms frames {k}", v, TARGET_FRAMES_PER_S if k == "320x240" else None)
            for k, v in generation.items()]  # fmt: skip
    rows += [
        ("store read rgb+hha (320×240 frames)", loader["read_only"], None),
        ("read + SSD augment + normalise, 300×300", loader["read_augment_normalise"], TARGET_SAMPLES_PER_S),
        ("read + resize + normalise (eval), 300×300", loader["read_resize_normalise"], None),
    ]
    for name, r, target in rows:
        goal = f"≥ {target:.0f}" if target else ""
        print(f"{name:<44}{r['wall_per_s']:>10.1f}{r['cpu_per_s']:>10.1f}{goal:>10}")
    print(f"prepare synthrooms 320×240 incl. HHA and statistics: {prepare_per_s:.1f} frames/s")
    load = report["machine"]["load_average"]
    print(f"load average {load}; written to {args.out}")


if __name__ == "__main__":
    main()
