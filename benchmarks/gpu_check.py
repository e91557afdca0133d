"""GPU acceptance check: the kit's CUDA paths exercised and measured on one GPU, unattended.

Run it with ``make gpu-check`` on a GPU machine where the repository's venv exists; it needs no
data and no network and is sized for about 5 minutes on one H100 (limit: 8). Without a CUDA
device it prints one line and exits 0, writing nothing. With one, it runs seven steps in order;
a step that fails is recorded with a one-line error and the next step still runs:

1. ``pytest -m cuda``: the test suite's CUDA-only tests, in a subprocess. Fails when a test fails,
   when none is collected (pytest exit code 5) or when none passes.
2. A SynthRooms store (480 training + 32 test frames, 320×240) in a temporary folder.
3. ``dsod300`` trained from scratch for 300 optimiser steps at 300×300 on it (rgb, batch 16,
   channels-last, seed 0) in fp32, bf16 AMP and fp16 AMP through
   :func:`dsod_depth.engine.trainer.train`, the loss logged every step. Checks: every loss is
   finite; the loss decreases (mean of the last 10 % of the logged losses < mean of the first
   10 %); each AMP run's final loss (that last-10 % mean) is within ``AMP_REL_TOLERANCE`` = 15 % of
   fp32's. "fp32" is the trainer's float32 path, where cuDNN may use TF32 for convolutions as
   PyTorch allows by default (the JSON records whether it does).
4. Training throughput (images/s) and peak memory (``torch.cuda.max_memory_allocated``) at batch
   32, 300×300, 6 input channels (rgb+hha), bf16 AMP, channels-last, for ``dsod300``, ``dsod300``
   with ``memory_efficient``, ``densenet121_dsod`` and ``ssd300_vgg16`` (both from scratch):
   :func:`bench_train.one_config` (one warm-up step, then timed steps of forward, MultiBox loss,
   backward and SGD update on random images and boxes).
5. Evaluation throughput: ``dsod300`` forward (bf16, channels-last, random weights, so nearly every
   box passes the score threshold: the costliest case for NMS) + :func:`~dsod_depth.detection.
   postprocess.postprocess` at batch 32, best of the repeats.
6. HHA frames/s on a 640×480 frame (:func:`bench_hha.load_frame`): the batched torch path on CUDA
   against the numpy ``hha_image`` on one CPU thread (``threadpoolctl``).
7. A one-process NCCL group initialised directly (127.0.0.1, a free port): ``all_reduce`` of a
   CUDA tensor, value checked, group destroyed.

Why 15 %: the three runs of step 3 start from the same weights and see the same batches in the
same order, so only rounding differs; it makes the trajectories drift apart, but the loss level
reached after 300 steps (a cosine schedule ending near lr 0, averaged over the last 30 steps, i.e.
over the same 30 batches in every run) should agree to a few percent. A broken AMP path (an fp16
overflow the loss scaler does not catch, a loss or a normalisation computed in low precision) shows
as a non-finite loss, a loss stuck near its start or a gap of tens of percent. The margin is a
judgement, not yet a measured spread: set it from measured runs when there are some.

Usage::

    python benchmarks/gpu_check.py            # the full check
    python benchmarks/gpu_check.py --quick    # tiny step and frame counts: a dry run of every step
    python benchmarks/gpu_check.py --out PATH # where the JSON goes

Prints a Markdown table and writes ``benchmarks/results/gpu_check.json`` (atomically). Exit code 1
when any step failed, else 0.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "gpu_check.json"
NO_CUDA_LINE = "gpu-check: no CUDA device visible; nothing to check (run it on a GPU machine)"
AMP_REL_TOLERANCE = 0.15  # |AMP final loss − fp32 final loss| / fp32 final loss (see the docstring)
TREND_FRACTION = 0.1  # "first" and "last" = this share of the logged losses
PRECISIONS = ("off", "bf16", "fp16")  # train.amp values; "off" = fp32, the reference
LABELS = {"off": "fp32", "bf16": "bf16 AMP", "fp16": "fp16 AMP"}
THROUGHPUT_MODELS = (  # (label, detector, build_detector options) of step 4
    ("dsod300", "dsod300", {}),
    ("dsod300 memory_efficient", "dsod300", {"memory_efficient": True}),
    ("densenet121_dsod (scratch)", "densenet121_dsod", {"init": "scratch"}),
    ("ssd300_vgg16 (scratch)", "ssd300_vgg16", {"init": "scratch"}),
)

Row = dict[str, Any]  # {"measure": str, "value": str, "problem": str | None}
StepOutput = tuple[list[Row], dict[str, Any]]  # table rows, details for the JSON


@dataclass(frozen=True)
class Budget:
    """Frame and step counts of one check (the defaults: the full check)."""

    num_train: int = 480  # SynthRooms training frames: 30 batches of 16 per epoch
    num_test: int = 32  # test frames (train() evaluates on them after its last step)
    train_steps: int = 300  # optimiser steps per precision in step 3
    train_batch: int = 16
    bench_batch: int = 32  # steps 4 and 5
    bench_steps: int = 20  # timed training steps per model in step 4
    eval_repeats: int = 20  # timed forward + post-processing calls in step 5
    hha_repeats: int = 5  # numpy frames timed in step 6
    hha_batch: int = 32  # frames per torch call in step 6
    pytest_timeout_s: int = 300


QUICK = Budget(
    num_train=64, num_test=16, train_steps=20, bench_steps=3, eval_repeats=3, hha_repeats=2, hha_batch=4
)


def row(measure: str, value: str, problem: str | None = None) -> Row:
    return {"measure": measure, "value": value, "problem": problem}


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text[:300]


def run_step(name: str, fn: Callable[[], StepOutput]) -> dict[str, Any]:
    """Run one step; an exception or a row with a problem marks it failed (it never propagates)."""
    start = time.perf_counter()
    try:
        rows, details = fn()
        problems = [f"{r['measure']}: {r['problem']}" for r in rows if r["problem"]]
        error = "; ".join(problems) or None
    except Exception as err:  # one failing step must not stop the others
        rows, details, error = [], {}, one_line(err)
    seconds = round(time.perf_counter() - start, 1)
    return {"name": name, "ok": error is None, "error": error, "seconds": seconds, "rows": rows,
            "details": details}  # fmt: skip


def bench_module(name: str):
    """A sibling benchmark script as a module (``benchmarks/`` is not a package).

    ``bench_hha`` sets OMP_NUM_THREADS & co. when imported (for its own process); that is undone
    here so that the steps after it, and their subprocesses, keep this machine's settings.
    """
    before = dict(os.environ)
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    module = importlib.import_module(name)
    os.environ.clear()
    os.environ.update(before)
    return module


# ---------------------------------------------------------------------------------- pure helpers


def parse_pytest_summary(output: str) -> tuple[dict[str, int], str]:
    """Counts of pytest's final summary line (``2 passed, 1 skipped in 3.1s``) and the line itself."""
    lines = [ln.strip("= ") for ln in output.splitlines() if re.search(r"\bin \d+(\.\d+)?s\b", ln)]
    if not lines:
        return {}, ""
    counts: dict[str, int] = {}
    for number, word in re.findall(r"(\d+) ([a-z]+)", lines[-1]):
        word = {"error": "errors", "warning": "warnings"}.get(word, word)
        counts[word] = counts.get(word, 0) + int(number)
    return counts, lines[-1]


def trend(losses: Sequence[float], fraction: float = TREND_FRACTION) -> tuple[float, float]:
    """(mean of the first, mean of the last) ``fraction`` of ``losses`` (at least one value each)."""
    n = max(1, round(len(losses) * fraction))
    return statistics.fmean(losses[:n]), statistics.fmean(losses[-n:])


def loss_rows(
    curves: dict[str, list[float | None]],
    tolerance: float = AMP_REL_TOLERANCE,
    notes: dict[str, str] | None = None,
) -> list[Row]:
    """One row per precision in ``curves`` (train.amp value → logged losses, None = non-finite):
    finite, decreasing, and for AMP runs a final loss within ``tolerance`` of the fp32 run's.
    ``notes`` (train.amp value → text) are appended to the rows' values."""
    notes = notes or {}
    finals: dict[str, float] = {}
    rows = []
    for amp, losses in curves.items():
        label = LABELS.get(amp, amp)
        if not losses:
            rows.append(row(f"train loss {label}", "no loss logged", "no loss logged"))
            continue
        bad = [i for i, v in enumerate(losses) if v is None or not math.isfinite(v)]
        if bad:
            value = f"{len(bad)} non-finite of {len(losses)}"
            rows.append(row(f"train loss {label}", value, f"non-finite loss at logged record {bad[0]}"))
            continue
        first, last = trend(losses)
        finals[amp] = last
        value = f"{first:.3f} → {last:.3f} (first → last 10 % of {len(losses)})"
        problem = None if last < first else f"loss did not decrease ({first:.4f} → {last:.4f})"
        if amp != "off":
            reference = finals.get("off")
            if reference is None:
                problem = problem or "no finite fp32 run to compare with"
            else:
                gap = (last - reference) / reference
                value += f"; vs fp32 {gap:+.1%} (tolerance ±{tolerance:.0%})"
                if abs(gap) > tolerance and problem is None:
                    problem = f"final loss {last:.4f} is {gap:+.1%} off fp32's {reference:.4f}"
        if amp in notes:
            value += f"; {notes[amp]}"
        rows.append(row(f"train loss {label}", value, problem))
    return rows


def render_table(machine: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """The Markdown report: a heading naming the GPU and versions, one row per measure."""
    lines = [
        f"## GPU check: {machine['gpu']}, torch {machine['torch']}, CUDA {machine['cuda']}, "
        f"cuDNN {machine['cudnn']}",
        "",
        "| # | step | measure | value | status |",
        "|---|---|---|---|---|",
    ]
    for number, result in enumerate(results, 1):
        rows = result["rows"] or [row("—", result["error"] or "", result["error"])]
        for r in rows:
            status = "FAILED" if r["problem"] else "ok"
            lines.append(f"| {number} | {result['name']} | {r['measure']} | {r['value']} | {status} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- the steps


def pytest_cuda(timeout_s: int) -> StepOutput:
    """Step 1: ``pytest -m cuda -q`` in a subprocess at the repository root."""
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    counts, summary = parse_pytest_summary(proc.stdout)
    passed, failed = counts.get("passed", 0), counts.get("failed", 0) + counts.get("errors", 0)
    if proc.returncode == 5:
        problem = "no CUDA test collected (pytest exit code 5)"
    elif proc.returncode != 0:
        problem = f"pytest exit code {proc.returncode}: {summary or 'no summary line'}"
    elif passed == 0:
        problem = f"no CUDA test passed ({summary})"
    else:
        problem = None
    details = {"exit_code": proc.returncode, "counts": counts, "summary": summary}
    if problem:
        details["output_tail"] = (proc.stdout + proc.stderr).splitlines()[-40:]
    value = f"{passed} passed, {failed} failed, {counts.get('skipped', 0)} skipped (exit {proc.returncode})"
    return [row("CUDA tests", value, problem)], details


def make_store(out: Path, budget: Budget) -> StepOutput:
    """Step 2: the SynthRooms store of step 3."""
    from dsod_depth.data.prepare import prepare_synthrooms

    workers = max(1, min(8, os.cpu_count() or 1))
    start = time.perf_counter()
    prepare_synthrooms(out, num_train=budget.num_train, num_test=budget.num_test, size=(320, 240), seed=0,
                       workers=workers, progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    value = f"{budget.num_train} train + {budget.num_test} test frames, 320×240, {seconds:.1f} s"
    return [row("store", value)], {"workers": workers, "seconds": round(seconds, 1)}


def precision_config(store: Path, amp: str, budget: Budget, *, model: str, input_size: int, device: str):
    """The config of one step-3 run: only ``train.amp`` differs between the runs."""
    from dsod_depth.config import DataConfig, ExperimentConfig, ModelConfig, OptimConfig, TrainConfig

    steps = budget.train_steps
    data = DataConfig(store=str(store), modality="rgb", input_size=input_size, augment=False,
                      num_workers=min(4, os.cpu_count() or 1))  # fmt: skip
    # The demo's short-schedule recipe at a linear-scaled lr; cosine to ~0 steadies the final loss.
    optim = OptimConfig(lr=0.02, schedule="cosine", warmup_iters=max(steps // 10, 1), warmup_factor=0.1,
                        grad_clip=10.0)  # fmt: skip
    train = TrainConfig(iters=steps, batch_size=budget.train_batch, seed=0, device=device, amp=amp,
                        channels_last=True, log_every=1, checkpoint_every=steps, eval_every=0)  # fmt: skip
    detector = ModelConfig(name=model, init="scratch")
    return ExperimentConfig(name=f"gpu_check_{amp}", data=data, model=detector, optim=optim, train=train)


def train_precisions(
    store: Path, runs: Path, budget: Budget, *, model: str = "dsod300", input_size: int = 300,
    device: str = "cuda", precisions: Sequence[str] = PRECISIONS,
) -> StepOutput:  # fmt: skip
    """Step 3: one training run per precision; rows from :func:`loss_rows` plus each run's speed."""
    from dsod_depth.engine.logging import read_metrics
    from dsod_depth.engine.trainer import train

    if not (store / "train.h5").is_file():
        raise RuntimeError(f"no SynthRooms store at {store} (step 2 failed)")
    curves: dict[str, list[float | None]] = {}
    details: dict[str, Any] = {"model": model, "input_size": input_size, "steps": budget.train_steps,
                               "batch": budget.train_batch, "runs": {}}  # fmt: skip
    errors: list[Row] = []
    for amp in precisions:
        run_dir = runs / f"{model}_{amp}"
        config = precision_config(store, amp, budget, model=model, input_size=input_size, device=device)
        start = time.perf_counter()
        try:
            train(config, run_dir, progress=False)
        except Exception as err:  # e.g. the trainer's stop on a non-finite loss
            errors.append(row(f"train loss {LABELS[amp]}", "run failed", one_line(err)))
            continue
        records = read_metrics(run_dir / "metrics.jsonl")
        curves[amp] = [r["loss"] for r in records if "loss" in r]
        speeds = [r["images_per_s"] for r in records if "images_per_s" in r]
        speeds = speeds[len(speeds) // 10 :] or speeds  # without the warm-up steps
        final_map = next((v for r in records for k, v in r.items() if k.startswith("eval/")), None)
        details["runs"][amp] = {"losses": curves[amp], "seconds": round(time.perf_counter() - start, 1),
                                "images_per_s": round(statistics.fmean(speeds), 1) if speeds else None,
                                "map_after": final_map}  # fmt: skip
    notes = {amp: f"{run['images_per_s']:.0f} img/s incl. data loading"
             for amp, run in details["runs"].items() if run["images_per_s"] is not None}  # fmt: skip
    return loss_rows(curves, notes=notes) + errors, details


def train_throughput(budget: Budget, *, device: str = "cuda", size: int = 300) -> StepOutput:
    """Step 4: :func:`bench_train.one_config` per model of ``THROUGHPUT_MODELS``."""
    import torch

    one_config = bench_module("bench_train").one_config
    rows, measured = [], []
    for label, model, options in THROUGHPUT_MODELS:
        measure = f"train {label} (batch {budget.bench_batch}, {size}², bf16, channels-last)"
        try:
            result = one_config(model, size, budget.bench_batch, budget.bench_steps, device, options)
        except Exception as err:  # e.g. out of memory: the other models still run
            rows.append(row(measure, "failed", one_line(err)))
            continue
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        measured.append({"label": label, **result})
        speed = result["images_per_s"]
        problem = None if math.isfinite(speed) and speed > 0 else f"images/s is {speed}"
        value = f"{speed:.1f} img/s, peak {result['peak_memory_mb']:.0f} MB"
        rows.append(row(measure, value, problem))
    return rows, {"rows": measured, "in_channels": 6}


def eval_throughput(
    budget: Budget, *, device: str = "cuda", model: str = "dsod300", size: int = 300
) -> StepOutput:
    """Step 5: forward + post-processing of one batch, best of ``eval_repeats`` (bench_eval.timed)."""
    import torch

    from dsod_depth.detection.postprocess import postprocess
    from dsod_depth.models import build_detector

    timed = bench_module("bench_eval").timed
    dev = torch.device(device)
    net = build_detector(model, num_classes=20, in_channels=3, input_size=size).to(dev).eval()
    net = net.to(memory_format=torch.channels_last)
    images = torch.randn(budget.bench_batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    images = images.to(dev).contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def run() -> int:
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loc, conf = net(images)
            detections = postprocess(loc, conf, net.priors)
        sync()
        return sum(len(d["scores"]) for d in detections)

    for _ in range(3):  # warm-up: cuDNN algorithm choice, allocator
        run()
    seconds, num_detections = timed(run, budget.eval_repeats)
    speed = budget.bench_batch / seconds
    value = f"{speed:.1f} img/s ({1000 * seconds:.1f} ms per batch, {num_detections} detections)"
    details = {"model": model, "batch": budget.bench_batch, "input": size, "repeats": budget.eval_repeats,
               "best_s_per_batch": round(seconds, 5), "images_per_s": round(speed, 1)}  # fmt: skip
    return [row(f"eval {model} forward + postprocess (batch {budget.bench_batch}, bf16)", value)], details


def hha_speed(budget: Budget, *, device: str = "cuda") -> StepOutput:
    """Step 6: bench_hha's torch path on ``device`` vs its numpy path on one CPU thread."""
    from threadpoolctl import threadpool_limits

    bench_hha = bench_module("bench_hha")
    depth, raw, source = bench_hha.load_frame()
    with threadpool_limits(limits=1):
        numpy_stats = bench_hha.time_numpy(depth, raw, budget.hha_repeats)
    torch_run = bench_hha.time_torch(depth, raw, budget.hha_batch, device, None)
    numpy_fps = 1000 / numpy_stats["wall_ms_median"]
    speedup = torch_run["frames_per_s"] / numpy_fps
    numpy_value = f"{numpy_fps:.2f} frames/s ({numpy_stats['wall_ms_median']} ms median)"
    torch_value = f"{torch_run['frames_per_s']:.1f} frames/s ({speedup:.1f}× numpy)"
    rows = [row("HHA numpy, 1 CPU thread", numpy_value),
            row(f"HHA torch {device}, batch {budget.hha_batch}", torch_value)]  # fmt: skip
    return rows, {"frame": source, "numpy_one_thread": numpy_stats, "torch": torch_run, "speedup": speedup}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_group_check(*, backend: str = "nccl", device: str = "cuda") -> StepOutput:
    """Step 7: a one-process group (rank 0 of 1), ``all_reduce`` of [1, 2, 3, 4], then destroyed."""
    import torch
    import torch.distributed as dist

    saved = {key: os.environ.get(key) for key in ("MASTER_ADDR", "MASTER_PORT")}
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    try:
        dev = torch.device(device)
        if dev.type == "cuda":
            torch.cuda.set_device(dev.index or 0)
        dist.init_process_group(backend, rank=0, world_size=1, timeout=timedelta(seconds=60))
        values = torch.arange(1.0, 5.0, device=dev)
        dist.all_reduce(values)  # sum over the one rank: unchanged
        got = values.tolist()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    expected = [1.0, 2.0, 3.0, 4.0]
    problem = None if got == expected else f"all_reduce gave {got}, expected {expected}"
    version = None
    if backend == "nccl":
        raw = torch.cuda.nccl.version()
        version = ".".join(map(str, raw)) if isinstance(raw, tuple) else str(raw)
    value = f"all_reduce {got}" + (f", NCCL {version}" if version else "")
    details = {"backend": backend, "nccl_version": version}
    return [row(f"{backend} process group, world size 1", value, problem)], details


# ---------------------------------------------------------------------------------- main


def machine_info() -> dict[str, Any]:
    import torch

    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": torch.cuda.get_device_name(0), "gpu_memory_gb": round(props.total_memory / 2**30, 1),
        "capability": f"{props.major}.{props.minor}", "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny frame and step counts (a dry run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON report (default {RESULTS})")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA_LINE)
        return 0
    from dsod_depth.fileio import write_text_atomic

    budget = QUICK if args.quick else Budget()
    machine = machine_info()
    versions = f"torch {machine['torch']}, CUDA {machine['cuda']}" + (", quick" if args.quick else "")
    print(f"gpu-check on {machine['gpu']} ({versions})", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        store = Path(tmp) / "synthrooms"
        steps = [
            ("pytest -m cuda", lambda: pytest_cuda(budget.pytest_timeout_s)),
            ("SynthRooms store", lambda: make_store(store, budget)),
            ("dsod300 fp32 / bf16 / fp16", lambda: train_precisions(store, Path(tmp) / "runs", budget)),
            ("training throughput", lambda: train_throughput(budget)),
            ("evaluation throughput", lambda: eval_throughput(budget)),
            ("HHA", lambda: hha_speed(budget)),
            ("NCCL", lambda: process_group_check()),
        ]
        results = []
        for number, (name, fn) in enumerate(steps, 1):
            results.append(run_step(name, fn))
            gc.collect()
            torch.cuda.empty_cache()
            status = "ok" if results[-1]["ok"] else f"FAILED: {results[-1]['error']}"
            print(f"[{number}/{len(steps)}] {name}: {status} ({results[-1]['seconds']} s)", flush=True)
    failed = [r["name"] for r in results if not r["ok"]]
    report = {
        "benchmark": "gpu_check", "quick": args.quick, "ok": not failed, "failed_steps": failed,
        "amp_rel_tolerance": AMP_REL_TOLERANCE, "trend_fraction": TREND_FRACTION, "budget": asdict(budget),
        "seconds": round(time.perf_counter() - start, 1), "machine": machine, "steps": results,
    }  # fmt: skip
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print()
    print(render_table(machine, results))
    print()
    verdict = f"{len(failed)} of {len(results)} steps FAILED ({', '.join(failed)})" if failed else "passed"
    print(f"gpu-check: {verdict} in {report['seconds']:.0f} s (AMP loss tolerance ±{AMP_REL_TOLERANCE:.0%}); "
          f"written {args.out}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
