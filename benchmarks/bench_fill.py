"""Depth hole filling (``dsod_depth.geometry.fill.fill_depth``): speed and error against NYU's fill.

Frame: NYU labeled frame 1 of ``../shared/data/hha_reference`` (``$DSOD_SHARED_DATA`` elsewhere):
``0_raw.png`` (raw depth, 73,446 holes, a border band up to 57 px wide) and ``0.png`` (NYU's own
colour-guided colorization fill of it), both uint16 = metres × 10000, 640 × 480. Measured:

* time of ``fill_depth`` on the raw frame, one thread, median of interleaved repeats (wall and
  process CPU time: the CPU time is the steadier on a shared machine); the raw NYU Kinect frame of
  ``rgbd_samples`` (22,199 holes) likewise when present;
* error at the raw holes against NYU's fill: mean, median and 90th percentile absolute error in
  cm, mean and median relative error;
* for context, the same errors of two references computed here: the nearest valid depth
  (``scipy.ndimage.distance_transform_edt``, the fill's starting point) and the exact membrane
  solution (``scipy.sparse.linalg.spsolve`` of the fill's own system: what unlimited conjugate
  gradient steps reach); and how far NYU's fill is from the raw depth where the raw depth is valid
  (its smoothing, a floor for any fill that keeps raw pixels).

Usage::

    python benchmarks/bench_fill.py            # 21 timed repeats
    python benchmarks/bench_fill.py --quick    # 5

Prints a table and writes ``benchmarks/results/fill.json``. Without the shared data it says so and
exits 0 without writing anything.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread (set before numpy loads)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from dsod_depth.geometry.fill import FILL_CG_ITERATIONS, _membrane_system, fill_depth  # noqa: E402
from dsod_depth.inference.frames import read_depth_file  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fill.json"
TARGET_MS = 100.0


def _shared_data() -> Path:
    return Path(os.environ.get("DSOD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _time(raw: np.ndarray, repeats: int) -> dict:
    """Median and minimum wall and CPU milliseconds of ``fill_depth(raw)`` (one untimed warm-up)."""
    fill_depth(raw)
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fill_depth(raw)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    ms = lambda xs, f: round(1000 * float(f(xs)), 1)  # noqa: E731
    return {
        "holes": int((raw == 0).sum()),
        "wall_ms_median": ms(wall, statistics.median),
        "wall_ms_min": ms(wall, min),
        "cpu_ms_median": ms(cpu, statistics.median),
        "cpu_ms_min": ms(cpu, min),
        "repeats": repeats,
    }


def _errors(filled: np.ndarray, reference: np.ndarray, where: np.ndarray) -> dict:
    """Absolute (cm) and relative error of ``filled`` against ``reference`` at ``where``."""
    diff = np.abs(filled[where].astype(np.float64) - reference[where])
    relative = diff / reference[where]
    return {
        "mean_cm": round(100 * float(diff.mean()), 2),
        "median_cm": round(100 * float(np.median(diff)), 2),
        "p90_cm": round(100 * float(np.percentile(diff, 90)), 2),
        "mean_relative_pct": round(100 * float(relative.mean()), 2),
        "median_relative_pct": round(100 * float(np.median(relative)), 2),
    }


def _nearest(raw: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    index = ndimage.distance_transform_edt(raw == 0, return_distances=False, return_indices=True)
    return raw[tuple(index)]


def _exact_membrane(raw: np.ndarray) -> np.ndarray:
    from scipy.sparse.linalg import spsolve

    holes = raw == 0
    system, rhs = _membrane_system(raw, holes)
    out = raw.copy()
    out[holes] = spsolve(system.astype(np.float64).tocsc(), rhs.astype(np.float64))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 timed repeats instead of 21")
    args = parser.parse_args()
    repeats = 5 if args.quick else 21

    root = _shared_data()
    ref = root / "hha_reference"
    if not ((ref / "0.png").is_file() and (ref / "0_raw.png").is_file()):
        print(f"skipped: no real sample data at {ref} (set DSOD_SHARED_DATA)")
        return 0
    from threadpoolctl import threadpool_limits

    raw = read_depth_file(ref / "0_raw.png", depth_scale=10000)  # float32 metres
    nyu = read_depth_file(ref / "0.png", depth_scale=10000)
    holes, valid = raw == 0, raw > 0
    with threadpool_limits(limits=1):
        timing = {"nyu_frame_1": _time(raw, repeats)}
        kinect = root / "rgbd_samples" / "NYU_depth.pgm"
        if kinect.is_file():
            timing["nyu_raw_kinect"] = _time(read_depth_file(kinect, depth_format="nyu-kinect"), repeats)
        errors = {
            "fill_depth": _errors(fill_depth(raw), nyu, holes),
            "nearest_valid": _errors(_nearest(raw), nyu, holes),
            "exact_membrane": _errors(_exact_membrane(raw), nyu, holes),
        }
    smoothing = _errors(raw, nyu, valid)

    print(
        f"fill_depth, 640x480, one thread, {FILL_CG_ITERATIONS} conjugate-gradient steps "
        f"(target < {TARGET_MS:g} ms)"
    )
    for name, t in timing.items():
        print(
            f"  {name:30} {t['holes']:>6} holes"
            f"  wall {t['wall_ms_median']:6.1f} ms (min {t['wall_ms_min']:.1f})"
            f"  cpu {t['cpu_ms_median']:6.1f} ms (min {t['cpu_ms_min']:.1f})"
        )
    print(f"error at the {int(holes.sum())} raw holes against NYU's colorization fill")
    print(f"  {'':30} {'mean cm':>8} {'median cm':>10} {'p90 cm':>8} {'mean rel %':>11} {'median rel %':>13}")
    for name, e in {**errors, "NYU fill vs raw, valid pixels": smoothing}.items():
        print(
            f"  {name:30} {e['mean_cm']:>8} {e['median_cm']:>10} {e['p90_cm']:>8}"
            f" {e['mean_relative_pct']:>11} {e['median_relative_pct']:>13}"
        )

    report = {
        "frame": "NYU labeled frame 1, hha_reference (raw 0_raw.png, NYU fill 0.png)",
        "method": f"membrane (harmonic) in-painting, {FILL_CG_ITERATIONS} CG steps from the nearest depth",
        "timing_one_thread": timing,
        "error_at_raw_holes_vs_nyu_fill": errors,
        "nyu_fill_vs_raw_at_valid_pixels": smoothing,
        "target_ms": TARGET_MS,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, RESULTS)
    print(f"results written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
