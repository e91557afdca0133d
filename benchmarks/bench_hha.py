"""HHA speed: one-thread numpy path, batched torch path, whole-NYU estimate.

Frame: the real NYU frame of ``../shared/data/hha_reference`` (filled depth + raw
depth with 73,446 holes) when present, else an analytic room with holes, both
640 x 480. Measured:

* numpy ``hha_image``, one thread: wall and CPU (process) time per frame;
* torch ``hha_image_torch`` batched on the CPU (one thread and all threads), and
  on the GPU when one is present: frames per second;
* the NYU labeled set (1,449 frames) on 2 cores: two processes each encoding
  frames with the one-thread numpy path, throughput measured, time extrapolated.

The public Python port (charlesCXK/Depth2HHA-python) takes about 3.9 s per frame
on one core of these machines (REFERENCE §2). Because a shared machine's speed
varies, the same run also times the test suite's literal transcription of the
MATLAB code (``tests/encoders/matlab_reference.py``: direct 2-D filtering with
scipy, as the port does), so that a speed-up measured under identical conditions
is reported next to the one against the 3.9 s figure.

Usage::

    python benchmarks/bench_hha.py           # 15 timed frames, batches of 8
    python benchmarks/bench_hha.py --quick   # 3 timed frames, batches of 2

Prints a table and writes ``benchmarks/results/hha.json``. On a shared machine the
wall times are noisy; the CPU times are less so (the minimum is the cleanest).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread for the numpy path (set before numpy loads)

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from dsod_depth.encoders import hha_image, hha_image_torch  # noqa: E402
from dsod_depth.geometry import Intrinsics  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "hha.json"
PORT_SECONDS_PER_FRAME = 3.9  # REFERENCE §2, public Python port on one core of these machines
NYU_FRAMES = 1449
TARGET_MS = 80.0


def load_frame() -> tuple[np.ndarray, np.ndarray, str]:
    """(filled depth, raw depth) in metres, float64 [480, 640], and where they come from."""
    root = Path(os.environ.get("DSOD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ref = root / "hha_reference"
    if (ref / "0.png").is_file() and (ref / "0_raw.png").is_file():
        from dsod_depth.data.depth_io import read_depth

        return read_depth(ref / "0.png", 10000), read_depth(ref / "0_raw.png", 10000), "NYU frame 1 (real)"
    # Fallback: a box room seen from 1.2 m, pitched 10 degrees down, with 20 % missing raw depth.
    cam = Intrinsics.nyu()
    v, u = np.mgrid[0:480, 0:640].astype(np.float64)
    tilt = np.radians(10.0)
    ray_y = (v - cam.cy) / cam.fy
    down = np.cos(tilt) * ray_y + np.sin(tilt)
    floor = np.where(down > 1e-6, 1.2 / np.maximum(down, 1e-6), np.inf)
    wall = 4.0 / (np.cos(tilt) - np.sin(tilt) * ray_y)
    depth = np.minimum(floor, wall)
    raw = np.where(np.random.default_rng(0).random(depth.shape) < 0.2, 0.0, depth)
    return depth, raw, "analytic room (no shared data)"


def time_numpy(depth, raw, repeats: int) -> dict:
    cam = Intrinsics.nyu()
    hha_image(depth, raw, cam)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        hha_image(depth, raw, cam)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    ms = lambda xs, f: round(1000 * float(f(xs)), 1)  # noqa: E731
    return {
        "wall_ms_median": ms(wall, np.median),
        "wall_ms_min": ms(wall, np.min),
        "cpu_ms_median": ms(cpu, np.median),
        "cpu_ms_min": ms(cpu, np.min),
    }


def time_torch(depth, raw, batch: int, device: str, threads: int | None) -> dict:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    d = torch.from_numpy(np.stack([depth] * batch)).to(device)
    r = torch.from_numpy(np.stack([raw] * batch)).to(device)
    cam = Intrinsics.nyu()
    hha_image_torch(d, r, cam)  # warm-up
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    rounds = 3
    for _ in range(rounds):
        hha_image_torch(d, r, cam)
    sync()
    seconds = (time.perf_counter() - t0) / (rounds * batch)
    threads_used = torch.get_num_threads()
    return {"device": device, "threads": threads_used, "batch": batch, "frames_per_s": round(1 / seconds, 1)}


def time_literal_reference(depth, raw) -> float | None:
    """CPU seconds of one frame with the literal transcription (None outside a source checkout)."""
    try:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.encoders.matlab_reference import save_hha
    except ImportError:
        return None
    cam = Intrinsics.nyu()
    c0 = time.process_time()
    save_hha(depth, raw, cam.fx, cam.fy, cam.cx + 1, cam.cy + 1)
    return time.process_time() - c0


def _worker(args) -> float:
    depth, raw, frames = args
    cam = Intrinsics.nyu()
    t0 = time.perf_counter()
    for _ in range(frames):
        hha_image(depth, raw, cam)
    return time.perf_counter() - t0


def time_two_processes(depth, raw, frames_per_process: int) -> dict:
    _worker((depth, raw, 1))  # imports and caches in the parent (fork start method copies them)
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(_worker, [(depth, raw, 1)] * 2)  # warm-up
        t0 = time.perf_counter()
        pool.map(_worker, [(depth, raw, frames_per_process)] * 2)
        elapsed = time.perf_counter() - t0
    per_frame = elapsed / (2 * frames_per_process)
    return {
        "seconds_per_frame_2_cores": round(per_frame, 4),
        "nyu_1449_frames_s": round(NYU_FRAMES * per_frame, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and smaller batches")
    args = parser.parse_args()
    repeats, batch = (3, 2) if args.quick else (15, 8)

    import torch

    depth, raw, source = load_frame()
    numpy_stats = time_numpy(depth, raw, repeats)
    torch_runs = [
        time_torch(depth, raw, batch, "cpu", 1),
        time_torch(depth, raw, batch, "cpu", os.cpu_count() or 1),
    ]
    if torch.cuda.is_available():
        torch_runs.append(time_torch(depth, raw, 4 * batch, "cuda", None))
    whole = time_two_processes(depth, raw, 2 if args.quick else 8)
    literal_s = time_literal_reference(depth, raw)

    speedup = PORT_SECONDS_PER_FRAME * 1000 / numpy_stats["cpu_ms_median"]
    print(f"HHA 640x480, {source}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'path':34} {'result':>22}")
    for kind in ("wall", "cpu"):
        label = f"numpy, 1 thread, {kind} (median/min)"
        print(f"{label:34} {numpy_stats[kind + '_ms_median']:>9} / {numpy_stats[kind + '_ms_min']} ms")
    print(f"{'target':34} {TARGET_MS:>12} ms")
    for run in torch_runs:
        label = f"torch {run['device']}, {run['threads']} thr, batch {run['batch']}"
        print(f"{label:34} {run['frames_per_s']:>12} frames/s")
    print(f"{'NYU 1449 frames, 2 processes':34} {whole['nyu_1449_frames_s']:>12} s (target 120 s)")
    port_ms = PORT_SECONDS_PER_FRAME * 1000
    label = "public Python port (REFERENCE §2)"
    print(f"{label:34} {port_ms:>12.0f} ms  -> {speedup:.0f}x faster (CPU median)")
    if literal_s is not None:
        literal_speedup = literal_s * 1000 / numpy_stats["cpu_ms_median"]
        label = "literal transcription, this run"
        print(f"{label:34} {literal_s * 1000:>12.0f} ms  -> {literal_speedup:.0f}x faster (CPU median)")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "frame": source,
        "numpy_one_thread": numpy_stats,
        "torch": torch_runs,
        "nyu_two_cores": whole,
        "port_ms_per_frame": PORT_SECONDS_PER_FRAME * 1000,
        "speedup_vs_port_cpu_median": round(speedup, 1),
        "literal_transcription_cpu_ms": None if literal_s is None else round(literal_s * 1000, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
    }
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, RESULTS)
    print(f"results written to {RESULTS}")


if __name__ == "__main__":
    main()
