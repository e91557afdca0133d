"""HHA speed: one-thread numpy path, batched torch path, whole-NYU estimate.

Frame: the real NYU frame of ``../shared/data/hha_reference`` (filled depth + raw
depth with 73,446 holes) when present, else an analytic room with holes, both
640 x 480. Measured:

* numpy ``hha_image``, one thread: wall and CPU (process) time per frame;
* torch ``hha_image_torch`` batched on the CPU (one thread and all threads), and
  on the GPU when one is present: frames per second;
* the NYU labeled set (1,449 frames) on 2 cores: two processes each encoding
  frames with the one-thread numpy path, throughput measured, time extrapolated.

The same run also times, on the same frame and one thread, in interleaved rounds
(at least 7; median and minimum reported, absolute times and ratios):

* the test suite's literal transcription of the MATLAB code
  (``tests/encoders/matlab_reference.py``: direct 2-D filtering with scipy, as
  the port does), always;
* the public Python port (charlesCXK/Depth2HHA-python) when a checkout of it is
  given with ``--port DIR`` or ``$DEPTH2HHA_PYTHON``. It is imported from that
  directory at run time (nothing of it is copied here) and needs
  ``opencv-python`` (not a dependency of the kit: install it for the benchmark
  only). One adaptation, outside its code: its ``getRMatrix`` builds a matrix
  from (1,)-shaped entries, which numpy >= 1.24 rejects, so it is called with
  the same start axis flattened to shape (3,) (the rotation is unchanged).
  Without a checkout, the 3.9 s per frame of REFERENCE §2 is reported instead.

Usage::

    python benchmarks/bench_hha.py                       # 15 timed frames, batches of 8
    python benchmarks/bench_hha.py --quick               # 3 timed frames, batches of 2
    python benchmarks/bench_hha.py --port /path/to/Depth2HHA-python

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


def _stats(wall: list[float], cpu: list[float]) -> dict:
    ms = lambda xs, f: round(1000 * float(f(xs)), 1)  # noqa: E731
    return {
        "runs": len(wall),
        "wall_ms_median": ms(wall, np.median),
        "wall_ms_min": ms(wall, np.min),
        "cpu_ms_median": ms(cpu, np.median),
        "cpu_ms_min": ms(cpu, np.min),
    }


def _timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def time_numpy(depth, raw, repeats: int) -> dict:
    cam = Intrinsics.nyu()
    hha_image(depth, raw, cam)  # warm-up
    wall, cpu = zip(*(_timed(lambda: hha_image(depth, raw, cam)) for _ in range(repeats)))
    return _stats(list(wall), list(cpu))


def literal_reference():
    """The literal transcription as ``f(depth, raw) -> uint8 [H, W, 3]`` (None outside a source checkout)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from tests.encoders.matlab_reference import save_hha
    except ImportError:
        return None
    cam = Intrinsics.nyu()
    return lambda depth, raw: save_hha(depth, raw, cam.fx, cam.fy, cam.cx + 1, cam.cy + 1)  # 1-based grid


def public_port(directory: str):
    """The public Python port imported from its checkout, as ``f(depth, raw) -> uint8 [H, W, 3]``.

    Raises:
        SystemExit: the directory is not a checkout of the port, or opencv-python is missing.
    """
    import importlib
    import sys

    root = Path(directory).resolve()
    if not (root / "getHHA.py").is_file() or not (root / "utils" / "rgbd_util.py").is_file():
        raise SystemExit(f"--port {root}: not a checkout of charlesCXK/Depth2HHA-python (no getHHA.py)")
    try:
        import cv2  # noqa: F401  (the port imports it)
    except ImportError:
        raise SystemExit("the public port needs opencv-python: pip install opencv-python-headless") from None
    sys.path.insert(0, str(root))
    port = importlib.import_module("getHHA")
    rgbd_util = importlib.import_module("utils.rgbd_util")
    if Path(rgbd_util.__file__).resolve().parent != root / "utils":
        raise SystemExit(f"another 'utils' package shadows the port's: {rgbd_util.__file__}")
    # numpy >= 1.24 rejects the port's rotation matrix built from (1,)-shaped axis
    # entries; the same start axis flattened gives the same rotation.
    get_r_matrix = rgbd_util.getRMatrix
    rgbd_util.getRMatrix = lambda yi, yf: get_r_matrix(np.ravel(yi), yf)
    cam = Intrinsics.nyu()
    # The port's camera matrix holds the 1-based principal point.
    camera_matrix = np.array([[cam.fx, 0.0, cam.cx + 1], [0.0, cam.fy, cam.cy + 1], [0.0, 0.0, 1.0]])

    def encode(depth, raw):
        bgr = port.getHHA(camera_matrix, depth, raw)  # written for cv2.imwrite: B, G, R planes
        return bgr[..., ::-1]

    return encode


def time_references(depth, raw, references: dict, rounds: int) -> dict:
    """Interleaved rounds: in each, one ``hha_image`` call and one call of every reference.

    Returns:
        {name: stats} for ``"kit"`` and each reference, and for each reference its
        output's agreement with the kit's image (share of equal channel values).
    """
    cam = Intrinsics.nyu()
    calls = {"kit": lambda d, r: hha_image(d, r, cam), **references}
    kit_image = hha_image(depth, raw, cam)
    result = {}
    for name, fn in calls.items():  # warm-up (imports, caches) and agreement
        image = fn(depth, raw)
        result[name] = {"equal_to_kit": round(float((np.asarray(image) == kit_image).mean()), 5)}
    times = {name: ([], []) for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            wall, cpu = _timed(lambda fn=fn: fn(depth, raw))
            times[name][0].append(wall)
            times[name][1].append(cpu)
    for name, (wall, cpu) in times.items():
        result[name].update(_stats(wall, cpu))
        if name != "kit":
            kit = result["kit"]
            for key in ("wall_ms_median", "wall_ms_min", "cpu_ms_median", "cpu_ms_min"):
                result[name]["ratio_" + key.replace("_ms", "")] = round(result[name][key] / kit[key], 1)
    return result


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
    parser.add_argument(
        "--port",
        default=os.environ.get("DEPTH2HHA_PYTHON"),
        help="checkout of charlesCXK/Depth2HHA-python to time side by side (default: $DEPTH2HHA_PYTHON)",
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds against the references")
    args = parser.parse_args()
    repeats, batch = (3, 2) if args.quick else (15, 8)

    import torch
    from threadpoolctl import threadpool_limits

    references = {}
    literal = literal_reference()
    if literal is not None:
        references["literal"] = literal
    if args.port:
        references["port"] = public_port(args.port)

    depth, raw, source = load_frame()
    with threadpool_limits(limits=1):  # the one-thread comparisons
        numpy_stats = time_numpy(depth, raw, repeats)
        compared = time_references(depth, raw, references, max(1, args.rounds))
    torch_runs = [
        time_torch(depth, raw, batch, "cpu", 1),
        time_torch(depth, raw, batch, "cpu", os.cpu_count() or 1),
    ]
    if torch.cuda.is_available():
        torch_runs.append(time_torch(depth, raw, 4 * batch, "cuda", None))
    whole = time_two_processes(depth, raw, 2 if args.quick else 8)

    print(f"HHA 640x480, {source}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'path':40} {'result':>24}")
    for kind in ("wall", "cpu"):
        label = f"numpy, 1 thread, {kind} (median/min)"
        print(f"{label:40} {numpy_stats[kind + '_ms_median']:>10} / {numpy_stats[kind + '_ms_min']} ms")
    print(f"{'target':40} {TARGET_MS:>13} ms")
    for run in torch_runs:
        label = f"torch {run['device']}, {run['threads']} thr, batch {run['batch']}"
        print(f"{label:40} {run['frames_per_s']:>13} frames/s")
    print(f"{'NYU 1449 frames, 2 processes':40} {whole['nyu_1449_frames_s']:>13} s (target 120 s)")
    names = {"kit": "kit hha_image", "literal": "literal transcription", "port": "public Python port"}
    print(f"interleaved rounds ({args.rounds}), 1 thread, CPU ms median / min, x slower than the kit:")
    for name, stats in compared.items():
        line = f"  {names[name]:38} {stats['cpu_ms_median']:>10} / {stats['cpu_ms_min']} ms"
        if name != "kit":
            line += f"  -> {stats['ratio_cpu_median']}x / {stats['ratio_cpu_min']}x"
            line += f"  (equal to the kit's image: {100 * stats['equal_to_kit']:.2f} %)"
        print(line)
    speedup = PORT_SECONDS_PER_FRAME * 1000 / numpy_stats["cpu_ms_median"]
    if "port" not in compared:
        label = "public Python port (REFERENCE §2)"
        port_ms = PORT_SECONDS_PER_FRAME * 1000
        print(f"{label:40} {port_ms:>13.0f} ms  -> {speedup:.0f}x (quoted, not measured: no --port)")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "frame": source,
        "numpy_one_thread": numpy_stats,
        "torch": torch_runs,
        "nyu_two_cores": whole,
        "interleaved_one_thread": compared,
        "port_measured": "port" in compared,
        "port_ms_per_frame_quoted": PORT_SECONDS_PER_FRAME * 1000,
        "speedup_vs_quoted_port_cpu_median": round(speedup, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
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
