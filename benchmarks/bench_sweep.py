"""Wall time of a 4-run CPU matrix: one run at a time vs ``sweep --jobs 2``.

The matrix is SynthRooms rgb and depth × seeds 0 and 1 of ``dsod_tiny`` (160×160, batch 16, cosine
schedule, the demo's recipe) on a freshly generated store. Three ways of running it, each into its
own output folder, in this order:

* ``--jobs 1`` — in the sweep's own process, torch's default thread count (all cores);
* ``--jobs 1 --threads-per-run 1`` — one child process at a time, one thread;
* ``--jobs 2 --threads-per-run 1`` — two children at once, one thread each.

The last two train bit-identical runs (same thread count per run); the script checks it. On two
cores small networks use the cores better as two single-threaded runs than as one two-threaded run.

Usage::

    python benchmarks/bench_sweep.py            # 4 runs × 60 steps
    python benchmarks/bench_sweep.py --quick    # 4 runs × 10 steps

Prints a table and writes ``benchmarks/results/bench_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bench_sweep.json"


def write_matrix(root: Path, store: Path, output: str, iters: int) -> Path:
    from dsod_depth.config import dump_config
    from dsod_depth.demo import DemoSettings, detector_config

    settings = DemoSettings(iters=iters, batch_size=16, input_size=160)
    base = root / "detector.yaml"
    base.write_text(dump_config(detector_config(settings, store, "rgb", "scratch", 0)))
    path = root / f"{output}.yaml"
    path.write_text(yaml.safe_dump({
        "name": output, "output": str(root / output), "config": str(base),
        "datasets": {"synthrooms": str(store)}, "modalities": ["rgb", "depth"], "inits": ["scratch"],
        "seeds": [0, 1],
    }))  # fmt: skip
    return path


def timed_sweep(matrix: Path, args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dsod_depth", "sweep", str(matrix), "--no-progress", *args],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def same_weights(a: Path, b: Path) -> bool:
    from dsod_depth.engine.checkpoint import load_checkpoint

    for last in sorted(a.rglob("last.pt")):
        other = b / last.relative_to(a)
        wa, wb = load_checkpoint(last)["model"], load_checkpoint(other)["model"]
        if any(not torch.equal(v, wb[k]) for k, v in wa.items()):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 steps per run instead of 60")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    iters = 10 if args.quick else 60

    from dsod_depth.data.prepare import prepare_synthrooms

    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        root = Path(tmp)
        store = root / "store"
        prepare_synthrooms(store, num_train=64, num_test=16, size=(320, 240), seed=0, progress=False)
        ways = {
            "jobs 1, in process, default threads": [],
            "jobs 1, 1 thread per run": ["--jobs", "1", "--threads-per-run", "1"],
            "jobs 2, 1 thread per run": ["--jobs", "2", "--threads-per-run", "1"],
        }
        seconds = {}
        for index, (name, extra) in enumerate(ways.items()):
            seconds[name] = timed_sweep(write_matrix(root, store, f"way{index}", iters), extra)
        identical = same_weights(root / "way1", root / "way2")

    base = seconds["jobs 1, in process, default threads"]
    rows = [(name, s, base / s) for name, s in seconds.items()]
    print(f"4 runs of dsod_tiny 160², {iters} steps × 16 images, on {os.cpu_count()} cores")
    print(f"{'way':40s} {'wall s':>8s} {'speed-up':>9s}")
    for name, s, speedup in rows:
        print(f"{name:40s} {s:8.1f} {speedup:8.2f}×")
    print(f"--jobs 2 and --jobs 1 at 1 thread per run give bit-identical weights: {identical}")
    record = {
        "runs": 4, "iters": iters, "batch_size": 16, "input_size": 160, "model": "dsod_tiny",
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
        "seconds": seconds, "identical_jobs2_vs_jobs1": identical,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
