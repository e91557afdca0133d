"""`demo`, `visualize`, `sweep` and `compare`: the study on SynthRooms, figures of a run, matrices of
runs and their comparison.

The library reports progress through the ``log`` callables it takes; these commands pass
printing ones (the sweep's lines as they are, the demo's with a ``[demo HH:MM:SS]`` stamp).
"""

from __future__ import annotations

import argparse
import sys
import time

from dsod_depth.cli.common import print_line
from dsod_depth.errors import KitError


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole study on SynthRooms: generate, pretrain, train 4 modalities × 2 inits, compare",
        description="Generate SynthRooms, prepare RGB/depth/HHA, pretrain a backbone on RGB object crops, "
        "train dsod_tiny for rgb, depth, hha and rgb+hha from scratch and from the RGB-pretrained backbone, "
        "evaluate, and print the comparison table. Resumable; about 15 minutes on two CPU cores.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--seeds", type=int, help="seeds per configuration (default 1; 3 with --full)")
    p.add_argument("--full", action="store_true", help="more frames and 5× longer training")
    p.add_argument("--iters", type=int, help="optimiser steps per detector (overrides the budget)")
    p.add_argument("--num-train", type=int, help="training frames (overrides the budget)")
    p.add_argument("--num-test", type=int, help="test frames (overrides the budget)")
    p.add_argument(
        "--appearance-randomness",
        type=float,
        help="SynthRooms appearance randomness (default: the calibrated default; see the README)",
    )
    p.add_argument(
        "--ablation",
        action="append",
        choices=("appearance",),
        help="appearance: also train rgb, hha, rgb+hha from scratch with class-independent appearance",
    )
    p.add_argument(
        "--with-transfer",
        action="store_true",
        help="add the supervision-transfer column (depth, hha, rgb+hha students of the RGB detector)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars (step messages stay)")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from dsod_depth.demo import demo_settings, run_demo

    settings = demo_settings(
        full=args.full, seeds=args.seeds, iters=args.iters, num_train=args.num_train, num_test=args.num_test,
        appearance_randomness=args.appearance_randomness, ablations=tuple(args.ablation or ()) or None,
        with_transfer=args.with_transfer or None,
    )  # fmt: skip
    result = run_demo(args.out, settings, progress=not args.no_progress, log=_demo_line)
    print()
    print(result["table"])
    print()
    if result["ablation"] is not None:
        print(result["ablation"]["table"])
        print()
    print(f"report: {result['report']}  results: {args.out}/results.json")
    return 0


def _demo_line(message: str) -> None:
    """The demo's ``log``: each step's message stamped with the time of day."""
    print_line(f"[demo {time.strftime('%H:%M:%S')}] {message}")


def _add_visualize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "visualize",
        help="figures of an evaluated run: detections, PR and training curves, 3D view, report",
        description="Draw ground truth and detections on RGB / colourised depth / HHA, per-class "
        "precision-recall curves, training curves and a 3D point-cloud view (PNG + PLY) of an "
        "evaluated run, and a Markdown report linking them (OUT/report.md).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory evaluated with `dsod-depth eval`")
    p.add_argument("--split", default="test", help="evaluated split to draw (default test)")
    p.add_argument("--n", type=int, default=16, help="frames with detection figures (default 16)")
    p.add_argument("--score", type=float, default=0.3, help="draw detections scoring at least this (0.3)")
    p.add_argument("--out", help="output folder (default RUN_DIR/figures)")
    p.add_argument("--data", help="prepared store with the images (default: the run's data.store)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_visualize)


def _run_visualize(args: argparse.Namespace) -> int:
    from dsod_depth.viz import visualize_run

    result = visualize_run(
        args.run_dir, split=args.split, num_frames=args.n, score_threshold=args.score, out_dir=args.out,
        store=args.data, progress=not args.no_progress,
    )  # fmt: skip
    for path in result.figures:
        print(path)
    print(f"{len(result.figures)} figures; report: {result.report}")
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a dataset × modality × init × seed matrix of experiments (resumable, any scale)",
        description="Run every cell of a matrix (experiments/matrices/*.yaml) into "
        "<output>/<dataset>/<modality>_<init>_s<seed>. Finished runs are skipped, interrupted ones "
        "resumed exactly; a failed run is reported and the sweep goes on. Each run is locked by the "
        "process that writes it, so several sweeps on one matrix (on one machine or several sharing the "
        "folders) share the work. Exit code 1 if any run failed, 130 when interrupted.",
    )
    p.add_argument("matrix", metavar="MATRIX.yaml", help="matrix file (format: experiments/README.md)")
    p.add_argument("--run", dest="run_name", metavar="NAME",
                   help="run just this run, e.g. nyudv2/hha_scratch_s0 (what launchers run)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=1, help="runs at once on this machine, each its own process")
    p.add_argument("--gpus", metavar="LIST", help="GPUs to share out, e.g. 0,1,2,3 (default: all visible)")
    p.add_argument("--gpus-per-run", type=int, default=1, metavar="K",
                   help="GPUs of each run: DDP under torchrun, optim.accumulate divided by K")  # fmt: skip
    p.add_argument("--threads-per-run", type=int, metavar="T",
                   help="CPU threads of each run (default with --jobs: the cores divided by N)")  # fmt: skip
    p.add_argument("--launcher", default="local", choices=["local", "slurm"],
                   help="local processes (default) or one SLURM job per run through submitit")  # fmt: skip
    slurm = p.add_argument_group("SLURM (with --launcher slurm)")
    slurm.add_argument("--partition")
    slurm.add_argument("--time", type=int, metavar="MINUTES", help="time limit of each job; requeued past it")
    slurm.add_argument("--cpus-per-task", type=int)
    slurm.add_argument("--mem", help="memory per job, e.g. 64G")
    slurm.add_argument("--account")
    slurm.add_argument("--qos")
    slurm.add_argument("--constraint")
    slurm.add_argument("--slurm-set", action="append", default=None, metavar="KEY=VALUE",
                       help="another submitit/SLURM parameter, e.g. exclude=node12 (repeatable)")  # fmt: skip
    p.add_argument("--print-commands", action="store_true",
                   help="print a shell command per pending run (for other schedulers); run none")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state; train nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    # Set by the local launcher for its children: output into RUN_DIR/train.log, outcome as JSON.
    p.add_argument("--log-to-run", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--report", help=argparse.SUPPRESS)
    p.set_defaults(run=_run_sweep)


def _gpu_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        gpus = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise KitError(f"--gpus takes GPU indices separated by commas, e.g. 0,1,2,3; got {text!r}") from None
    if not gpus:
        raise KitError("--gpus names no GPU; give indices such as 0,1")
    return gpus


def _slurm_options(args: argparse.Namespace):
    from dsod_depth.experiments.slurm import SLURM_FLAGS, SlurmOptions

    given = [flag for flag in SLURM_FLAGS if getattr(args, flag) is not None]
    if args.launcher != "slurm":
        if given:
            raise KitError(f"--{given[0].replace('_', '-')} is a SLURM option; add --launcher slurm")
        return None
    extra = {}
    for item in args.slurm_set or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise KitError(f"--slurm-set takes key=value, e.g. exclude=node12; got {item!r}")
        extra[key.strip()] = value
    return SlurmOptions(
        partition=args.partition, time_min=args.time, cpus_per_task=args.cpus_per_task, mem=args.mem,
        account=args.account, qos=args.qos, constraint=args.constraint, extra=extra,
    )  # fmt: skip


def _run_sweep(args: argparse.Namespace) -> int:
    from dsod_depth.experiments import runs, sweep

    slurm = _slurm_options(args)
    gpus = _gpu_list(args.gpus)
    placement = {"gpus_per_run": args.gpus_per_run, "threads_per_run": args.threads_per_run}
    if args.run_name:
        if args.jobs != 1 or gpus is not None or slurm is not None or args.print_commands or args.dry_run:
            raise KitError("--run NAME runs one run here; it takes only --gpus-per-run and --threads-per-run")
        if args.gpus_per_run < 1:
            raise KitError(f"--gpus-per-run must be at least 1, got {args.gpus_per_run}")
        outcome = runs.run_single(
            args.matrix, args.run_name, gpus_per_run=args.gpus_per_run, threads=args.threads_per_run,
            progress=not args.no_progress, log_to_run=args.log_to_run, report=args.report, log=print_line,
        )  # fmt: skip
        return runs.exit_code(outcome)
    if args.log_to_run or args.report:
        raise KitError("--log-to-run and --report go with --run NAME")
    if slurm is not None:
        from dsod_depth.experiments.slurm import submit_sweep

        submit_sweep(args.matrix, slurm, dry_run=args.dry_run, log=print_line, **placement)
        return 0
    if args.print_commands:
        from dsod_depth.experiments.local import plan

        plan(jobs=args.jobs, gpus=gpus, **placement)  # the same checks as a run
        sweep.print_commands(args.matrix, log=print_line, **placement)
        return 0
    result = sweep.run_sweep(
        args.matrix, jobs=args.jobs, gpus=gpus, dry_run=args.dry_run, progress=not args.no_progress,
        log=print_line, **placement,
    )  # fmt: skip
    if result.interrupted:
        return 130
    return 0 if result.ok else 1


def _resamples(text: str) -> int:
    """``--bootstrap``: a whole number of resamples, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"takes a number of resamples >= 0 (0: no intervals); got {text!r}")
    return value


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="scratch-vs-pretrained tables: mAP over seeds, gains, domain mismatch, 95 % intervals",
        description="Group finished runs by (dataset, modality, init) over seeds and write the "
        "comparison: Markdown (--out), CSV, LaTeX and JSON beside it with the same stem, and a bar "
        "chart PNG. A folder that is not a run (e.g. a sweep's output) adds every run below it; folders "
        "that train no detector (pretrain, transfer) are skipped with a note. Every mAP, gain and "
        "mismatch figure gets a 95 % interval from a paired bootstrap over test images (VOC metrics).",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (or folders holding them)")
    p.add_argument("--out", default="runs/comparison/comparison.md",
                   help="Markdown file to write (default runs/comparison/comparison.md)")  # fmt: skip
    p.add_argument("--no-chart", action="store_true", help="skip the bar chart PNG")
    p.add_argument("--bootstrap", type=_resamples, default=1000, metavar="N",
                   help="resamples of the test images for the intervals (default 1000; 0: none)")  # fmt: skip
    p.add_argument("--bootstrap-seed", type=int, default=0, metavar="S",
                   help="seed of the resamples (default 0: the same tables every time)")  # fmt: skip
    p.set_defaults(run=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from dsod_depth.experiments.compare import compare_runs
    from dsod_depth.experiments.tables import write_tables

    result = compare_runs(args.run_dirs, bootstrap=args.bootstrap, bootstrap_seed=args.bootstrap_seed)
    paths = write_tables(result, args.out, chart=not args.no_chart)
    for note in result["notes"]:  # after the writing: a failure stays one error line
        sys.stderr.write(f"note: {note}\n")
    print(paths["md"].read_text(encoding="utf-8"), end="")
    print(f"\ntables written: {', '.join(str(p) for p in paths.values())}")
    return 0
