"""Choose SynthRooms' default appearance randomness on development frames.

The demo's table is read as the kit's answer, so its modalities should relate as real indoor RGB-D
data's do: on NYU Depth v2, RGB and HHA detectors are of similar strength and RGB+HHA is clearly
above either (Gupta et al., ECCV 2014). For each candidate ``appearance_randomness`` this script

1. generates a development store: SynthRooms **seed 1000** (the demo uses seed 0, so no demo
   frame, train or test, is ever seen here), 600 train + 200 held-out frames at 320×240;
2. measures the colour k-NN probe (:mod:`dsod_depth.data.synthrooms.calibration`) on the
   held-out frames: accuracy vs the guessing rate;
3. trains the demo's detectors from scratch on it, at the demo's default budget (``DemoSettings``:
   ``dsod_tiny`` at 160×160, 300 steps × batch 16) for rgb, hha and rgb+hha, and scores them on the
   held-out frames (VOC07 mAP@0.5);

and prints, for each value, the probe, the three mAPs, RGB / HHA and RGB+HHA − max(RGB, HHA). The
rule that picks the default is stated in CALIBRATION.md beside the generator.

Usage::

    python benchmarks/calibrate_appearance.py --out runs/calibration 0 0.1 0.2
    python benchmarks/calibrate_appearance.py --out runs/calibration --probe-only 0 0.1 0.2 1

Rerunning resumes (finished stores and runs are kept). Writes
``benchmarks/results/calibrate_appearance.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

from dsod_depth.data.prepare import prepare_synthrooms
from dsod_depth.data.store import load_prepared
from dsod_depth.data.synthrooms.calibration import colour_probe
from dsod_depth.demo import DemoSettings, scratch_matrix
from dsod_depth.experiments.compare import compare_runs
from dsod_depth.experiments.sweep import run_sweep
from dsod_depth.fileio import write_text_atomic

DEV_SEED = 1000  # the demo generates seed 0
MODALITIES = ("rgb", "hha", "rgb+hha")
RESULTS = Path(__file__).resolve().parent / "results" / "calibrate_appearance.json"


def probe(store: Path) -> dict:
    """The colour k-NN probe on the held-out frames of ``store`` (first 2/3 reference, k = 5)."""
    samples, _ = load_prepared(store, "test")
    return colour_probe(samples[i] for i in range(len(samples)))


def calibrate(out: Path, randomness: float, settings: DemoSettings, *, probe_only: bool, seeds: int) -> dict:
    folder = out / f"randomness_{randomness:g}"
    store = folder / "data"
    prepare_synthrooms(
        store, num_train=settings.num_train, num_test=settings.num_test, size=settings.frame_size,
        seed=DEV_SEED, appearance_randomness=randomness, workers=settings.workers, progress=False,
    )  # fmt: skip
    row: dict = {"randomness": randomness, "probe": probe(store)}
    if probe_only:
        return row
    settings = dataclasses.replace(settings, seeds=seeds)
    matrix = scratch_matrix("calibration", folder, store, settings, MODALITIES)
    result = run_sweep(matrix, jobs=settings.jobs, progress=False, log=lambda line: print(f"    {line}"))
    if not result.ok:
        raise SystemExit(f"calibration runs failed at randomness {randomness}")
    comparison = compare_runs([o.spec.run_dir for o in result.outcomes])
    maps = {g["modality"]: g["map_mean"] for g in comparison["groups"]}
    row["map"] = maps
    row["seeds"] = seeds
    row["rgb_over_hha"] = maps["rgb"] / maps["hha"]
    row["fusion_gain"] = maps["rgb+hha"] - max(maps["rgb"], maps["hha"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("randomness", type=float, nargs="+", help="candidate values in [0, 1]")
    parser.add_argument("--out", type=Path, default=Path("runs/calibration"))
    parser.add_argument("--probe-only", action="store_true", help="only the colour probe, no detectors")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per detector (mAPs are means)")
    parser.add_argument("--iters", type=int, help="steps per detector instead of the demo's (results file "
                        "calibrate_appearance_itersN.json)")  # fmt: skip
    args = parser.parse_args()
    settings = DemoSettings()
    results = RESULTS
    if args.iters:
        settings = dataclasses.replace(settings, iters=args.iters)
        results = RESULTS.with_name(f"calibrate_appearance_iters{args.iters}.json")
    rows = []
    for r in args.randomness:
        start = time.perf_counter()
        row = calibrate(args.out, r, settings, probe_only=args.probe_only, seeds=args.seeds)
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        p = row["probe"]
        line = f"randomness {r:g}: probe {p['accuracy']:.3f} vs guess {p['guess']:.3f} ({p['ratio']:.2f}×)"
        if "map" in row:
            m = row["map"]
            line += (f"; mAP rgb {100 * m['rgb']:.1f}, hha {100 * m['hha']:.1f}, rgb+hha "
                     f"{100 * m['rgb+hha']:.1f}; rgb/hha {row['rgb_over_hha']:.2f}, fusion "
                     f"{100 * row['fusion_gain']:+.1f} pts")  # fmt: skip
        print(line, flush=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(results.read_text()) if results.is_file() else {"rows": []}
    kept = [r for r in previous["rows"] if r["randomness"] not in args.randomness or args.probe_only]
    if args.probe_only:
        kept = previous["rows"]
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "dev_seed": DEV_SEED,
        "frames": {"train": settings.num_train, "held_out": settings.num_test, "size": settings.frame_size},
        "budget": {
            "model": "dsod_tiny",
            "input": settings.input_size,
            "iters": settings.iters,
            "batch": settings.batch_size,
        },  # fmt: skip
        "rows": sorted(kept + ([] if args.probe_only else rows), key=lambda r: r["randomness"]),
    }
    if args.probe_only:
        report["probe_only"] = rows
    write_text_atomic(results, json.dumps(report, indent=2) + "\n")
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
