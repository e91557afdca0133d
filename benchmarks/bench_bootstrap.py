"""Cost of the bootstrap intervals of ``compare``: the demo's comparison with 1,000 resamples.

The runs are the demo's (``runs/demo/runs``: 24 runs = 4 modalities × 2 inits × 3 seeds, 200 test
images, 12 classes, 200 detections per image) when they are there; otherwise the script builds a
synthetic set of the same size in a temporary folder (jittered GT copies and random boxes, VOC07
metrics scored by the kit's evaluator). Timed, each the best of ``--repeat`` rounds:

* ``compare_runs(..., bootstrap=0)`` — today's tables: configs and ``metrics.json`` only;
* ``compare_runs(..., bootstrap=N)`` — the same plus the intervals; the difference is the bootstrap;
* its two parts on their own: reading and matching every run's ``gt.json``/``detections.json``
  once (:func:`~dsod_depth.evaluation.bootstrap.match_files`), and scoring the matched runs on the
  N resamples (:func:`~dsod_depth.evaluation.bootstrap.resampled_map`).

Usage::

    python benchmarks/bench_bootstrap.py                 # 1,000 resamples, best of 3
    python benchmarks/bench_bootstrap.py --synthetic     # ignore runs/demo/runs

Prints a table and writes ``benchmarks/results/bench_bootstrap.json`` (machine, threads, load,
seconds, resamples, runs, images). Timings on a shared machine are noisy: the load average before and
after is recorded with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from dsod_depth.engine.run_dir import RunDir, run_kind
from dsod_depth.evaluation import coco_ground_truth, coco_results, evaluate_files, write_json_atomic
from dsod_depth.evaluation.bootstrap import match_files, resample_counts, resampled_map
from dsod_depth.experiments.compare import compare_runs, find_run_dirs

REPO = Path(__file__).resolve().parents[1]
DEMO_RUNS = REPO / "runs" / "demo" / "runs"
RESULTS = REPO / "benchmarks" / "results" / "bench_bootstrap.json"


def demo_runs() -> list[Path]:
    """The demo's evaluated detector runs, or [] when they are not all there."""
    if not DEMO_RUNS.is_dir():
        return []
    runs = [r for r in find_run_dirs([DEMO_RUNS]) if run_kind(r) == "detector"]
    files = [path for r in runs for path in (RunDir(r).eval_gt("test"), RunDir(r).eval_detections("test"))]
    return runs if runs and all(path.is_file() for path in files) else []


def synthetic_runs(root: Path, *, num_images: int = 200, num_classes: int = 12, dets_per_image: int = 200):
    """24 run folders like the demo's (4 modalities × scratch/pretrained × 3 seeds), each with its
    config, gt.json, detections.json and VOC07 metrics.json; detections differ per run."""
    from dsod_depth.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig, dump_config

    rng = np.random.default_rng(0)
    names = [f"class{c}" for c in range(num_classes)]
    frames = []
    for i in range(num_images):
        n = int(rng.integers(2, 8))
        xy = rng.uniform(0, 250, (n, 2))
        frames.append((i, 300, 300, np.concatenate([xy, xy + rng.uniform(10, 50, (n, 2))], 1),
                       rng.integers(0, num_classes, n), rng.random(n) < 0.1))  # fmt: skip
    gt = coco_ground_truth(frames, names)
    runs = []
    for m, modality in enumerate(("rgb", "depth", "hha", "rgb+hha")):
        for init in ("scratch", "pretrained:/bench/pretrain_rgb/checkpoints/last.pt"):
            for seed in range(3):
                run = root / f"{modality.replace('+', '_')}_{init[:7]}_s{seed}"
                config = ExperimentConfig(
                    name=run.name, data=DataConfig(store="/bench/synthrooms", modality=modality),
                    model=ModelConfig(name="dsod_tiny", init=init), train=TrainConfig(iters=300, seed=seed),
                )  # fmt: skip
                folder = RunDir(run).eval_dir("test")
                folder.mkdir(parents=True)
                RunDir(run).config.write_text(dump_config(config))
                results = []
                for image_id, _, _, boxes, labels, _ in frames:
                    found = rng.random(len(labels)) < 0.5 + 0.1 * m  # detectors of varied quality
                    near = boxes[found] + rng.normal(0, 3, (int(found.sum()), 4))
                    near = np.sort(near.reshape(-1, 2, 2), axis=1).reshape(-1, 4)  # keep x1 <= x2, y1 <= y2
                    xy = rng.uniform(0, 280, (dets_per_image - len(near), 2))
                    far = np.concatenate([xy, xy + rng.uniform(5, 40, (len(xy), 2))], 1)
                    scores = np.concatenate([rng.uniform(0.2, 1, len(near)), rng.uniform(0, 0.6, len(far))])
                    classes = np.concatenate([labels[found], rng.integers(0, num_classes, len(far))])
                    results += coco_results(image_id, np.concatenate([near, far]), scores, classes)
                write_json_atomic(folder / "gt.json", gt)
                write_json_atomic(folder / "detections.json", results)
                metrics = evaluate_files(folder / "gt.json", folder / "detections.json", metric="voc07")
                write_json_atomic(folder / "metrics.json", metrics)
                runs.append(run)
    return runs


def best_of(repeat: int, work) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - start)
    return min(times), out


def threads() -> dict[str, object]:
    try:
        from threadpoolctl import threadpool_info

        return {f"{p['internal_api']} ({p['user_api']})": p["num_threads"] for p in threadpool_info()}
    except ImportError:  # without threadpoolctl: the variables that set the thread counts, if any
        names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        return {k: os.environ[k] for k in names if k in os.environ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each timing (the best is kept)")
    parser.add_argument("--synthetic", action="store_true", help="build the synthetic set even with the demo")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_bootstrap_") as tmp:
        runs = [] if args.synthetic else demo_runs()
        source = str(DEMO_RUNS.relative_to(REPO)) if runs else "synthetic (built by this script)"
        runs = runs or synthetic_runs(Path(tmp))
        plain_s, plain = best_of(args.repeat, lambda: compare_runs(runs, bootstrap=0))
        full_s, full = best_of(args.repeat, lambda: compare_runs(runs, bootstrap=args.resamples))
        records = {r["run_dir"]: r for r in plain["runs"]}

        def match_all():
            return [
                match_files(RunDir(d).eval_gt("test"), RunDir(d).eval_detections("test"),
                            metric=records[d]["metric"], iou_threshold=records[d]["iou_threshold"])
                for d in records
            ]  # fmt: skip

        match_s, matched = best_of(args.repeat, match_all)
        num_images = len(matched[0].image_ids)
        counts = resample_counts(num_images, args.resamples, seed=0)
        resample_s, _ = best_of(args.repeat, lambda: [resampled_map(m, counts) for m in matched])
    load_after = os.getloadavg()

    dataset = full["datasets"][0]
    report = {
        "benchmark": "bench_bootstrap",
        "source": source,
        "runs": len(records),
        "images": num_images,
        "classes": len(dataset["classes"]),
        "metric": dataset["metric"],
        "resamples": args.resamples,
        "repeat": args.repeat,
        "seconds": {
            "compare_without_bootstrap": plain_s,
            "compare_with_bootstrap": full_s,
            "bootstrap": full_s - plain_s,
            "read_and_match_once": match_s,
            "score_resamples": resample_s,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
        },
        "threads": threads(),
        "load_average_1_5_15_min": {"before": list(load_before), "after": list(load_after)},
    }
    write_json_atomic(args.out, report)

    load = f"load {load_before[0]:.2f} → {load_after[0]:.2f}"
    print(f"{len(records)} runs × {num_images} images ({source}), {args.resamples:,} resamples, best of "
          f"{args.repeat}, {os.cpu_count()} CPUs, {load}")  # fmt: skip
    for name, seconds in report["seconds"].items():
        print(f"  {name:28s} {seconds:7.2f} s")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
