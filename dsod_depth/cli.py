"""The `dsod-depth` command line: the only module that parses arguments.

Every command is a pair: ``_add_<name>(subparsers)`` declares its arguments and
``_run_<name>(args) -> int`` does the work by calling library functions. Expected
user errors (:class:`~dsod_depth.errors.KitError`, argument mistakes) become one
``error: ...`` line on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence

from dsod_depth import __version__
from dsod_depth.errors import KitError

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line instead of the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USER_ERROR)


# --------------------------------------------------------------------------- prepare


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    from dsod_depth.data.prepare import PREPARERS, add_common_arguments

    p = sub.add_parser(
        "prepare",
        help="convert a dataset into the prepared HDF5 store (resumable, atomic)",
        description="Convert a dataset into the prepared HDF5 store read by training and evaluation. "
        "Rerunning the same command resumes an interrupted preparation.",
    )
    datasets = p.add_subparsers(dest="dataset", metavar="<dataset>")
    datasets.required = True
    for name in PREPARERS.list():
        preparer = PREPARERS.get(name)
        dp = datasets.add_parser(name, help=preparer.help, description=preparer.help)
        add_common_arguments(dp)
        preparer.add_arguments(dp)
        dp.set_defaults(run=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from dsod_depth.data.prepare import PREPARERS

    files = PREPARERS.get(args.dataset).run(args)
    for split, path in files.items():
        print(f"{split}: {path}")
    print(f"prepared store ready in {args.out}")
    return 0


# --------------------------------------------------------------------------- evaluate


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score COCO-format detections against COCO-format ground truth",
        description="Score detections (COCO results list) against ground truth (COCO annotation file).",
    )
    p.add_argument("--gt", required=True, help="ground truth, COCO annotation JSON")
    p.add_argument("--det", required=True, help="detections, COCO results JSON list")
    p.add_argument("--metric", required=True, choices=["voc07", "voc12", "coco"])
    p.add_argument(
        "--iou", type=float, default=None, help="IoU threshold for voc07/voc12 (default 0.5); not for coco"
    )
    p.add_argument("--json", dest="json_out", default=None, help="write the metrics to this JSON file")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from dsod_depth.evaluation import evaluate_files, format_table, write_json_atomic

    result = evaluate_files(args.gt, args.det, metric=args.metric, iou_threshold=args.iou)
    print(format_table(result))
    if args.json_out:
        write_json_atomic(args.json_out, result)
        print(f"metrics written to {args.json_out}")
    return 0


# --------------------------------------------------------------------------- train / eval


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one detector run (or resume one)",
        description="Train one run from an experiment config; `train --resume RUN_DIR` continues a run "
        "from its last checkpoint. Works unchanged under torchrun (DDP).",
    )
    p.add_argument("config", nargs="?", help="experiment config YAML (experiments/configs/...)")
    p.add_argument("--data", help="prepared store folder (overrides data.store)")
    p.add_argument("--out", help="run directory to create (default runs/<config name>)")
    p.add_argument("--iters", type=int, help="optimiser steps (overrides train.iters)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (train.checkpoint_every)")
    p.add_argument("--seed", type=int, help="seed of init, data order and augmentation (train.seed)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set optim.lr=0.05 (repeatable)")  # fmt: skip
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from checkpoints/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dsod_depth.config import load_config

    if args.resume:
        if args.config or args.data or args.out or args.iters or args.seed is not None or args.overrides:
            raise KitError("--resume takes only the run directory: its config.yaml fixes every setting")
        from dsod_depth.engine.run_dir import RunDir

        run = RunDir(args.resume)
        if not run.is_run():
            raise KitError(f"{run} is not a run directory (no config.yaml); pass a folder written by `train`")
        run_dir = run.path
        config = load_config(run.config)
    else:
        if not args.config:
            raise KitError("give a config YAML (e.g. experiments/configs/synthrooms/rgb_scratch.yaml)")
        overrides = list(args.overrides)
        for key, value in (
            ("data.store", args.data),
            ("train.iters", args.iters),
            ("train.checkpoint_every", args.checkpoint_every),
            ("train.seed", args.seed),
        ):
            if value is not None:
                overrides.append(f"{key}={value}")
        config = load_config(args.config, overrides)
        run_dir = Path(args.out) if args.out else Path("runs") / config.name
    from dsod_depth.engine.trainer import train

    state = train(config, run_dir, resume=bool(args.resume), progress=not args.no_progress)
    best = f", best {state.best_map:.4f} at step {state.best_step}" if state.best_step >= 0 else ""
    print(f"trained {state.step} steps into {run_dir}{best}")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a trained run or checkpoint on a split",
        description="Run a trained detector over a split; write eval/<split>/detections.json (COCO "
        "results), gt.json and metrics.json in the run directory and print the per-class table.",
    )
    p.add_argument("target", metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--data", help="prepared store (default: the one the run was trained on)")
    p.add_argument("--split", default="test")
    p.add_argument("--metric", choices=["voc07", "voc12", "coco"], help="default: the run's eval_metric")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from dsod_depth.engine.evaluator import evaluate_checkpoint
    from dsod_depth.evaluation import format_table

    metrics, out_dir = evaluate_checkpoint(
        args.target, store=args.data, split=args.split, metric=args.metric, device=args.device,
        batch_size=args.batch_size,
    )  # fmt: skip
    print(format_table(metrics))
    print(f"detections and metrics written to {out_dir}")
    return 0


# --------------------------------------------------------------------------- hha


def _add_depth_reading(p: argparse.ArgumentParser) -> None:
    """--depth-format and --depth-scale, as `hha` and `detect` read depth files."""
    from dsod_depth.inference.frames import DEPTH_FORMATS

    p.add_argument(
        "--depth-format",
        choices=DEPTH_FORMATS,
        default="plain",
        help="plain: value / S; sun: SUN RGB-D depth PNG; nyu-kinect: NYU raw Kinect .pgm (default plain)",
    )
    p.add_argument(
        "--depth-scale",
        type=float,
        default=None,
        metavar="S",
        help="stored units per metre for --depth-format plain (default 1000 = mm; 10000 for NYU's HHA demo)",
    )


def _depth_scale(args: argparse.Namespace) -> float:
    """--depth-scale (default 1000), refused with a format of fixed units."""
    if args.depth_scale is not None and args.depth_format != "plain":
        raise KitError(
            f"--depth-scale applies to --depth-format plain only; {args.depth_format} has fixed units"
        )
    return 1000.0 if args.depth_scale is None else args.depth_scale


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Library warnings inside the block printed as one ``warning: ...`` line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                sys.stderr.write(f"warning: {warning.message}\n")


def _add_hha(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hha",
        help="encode one depth image (16-bit PNG or .npy) to HHA",
        description=(
            "Encode a depth image to HHA (disparity, height above ground, angle with gravity; "
            "Gupta et al. 2014), identical to the original MATLAB code. Writes an 8-bit RGB PNG "
            "with R, G, B = disparity, height, angle."
        ),
    )
    p.add_argument("depth", help="filled depth: 16-bit PNG or 2-D .npy (plain: metres = value / S)")
    p.add_argument("--raw", default=None, help="raw depth with 0 at missing pixels (default: DEPTH)")
    _add_depth_reading(p)
    p.add_argument(
        "--camera", required=True, help="'nyu' or FX,FY,CX,CY in pixels with a 0-based principal point"
    )
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(run=_run_hha)


def _run_hha(args: argparse.Namespace) -> int:
    import numpy as np

    from dsod_depth.data.depth_io import save_png_atomic
    from dsod_depth.encoders import hha_image
    from dsod_depth.geometry import Intrinsics
    from dsod_depth.inference.frames import read_depth_file

    camera = Intrinsics.parse(args.camera)
    # float64: MATLAB's HHA works in double on the stored values; float32 metres move a few pixels.
    read = dict(depth_format=args.depth_format, depth_scale=_depth_scale(args), dtype=np.float64)
    with _warnings_as_lines():
        depth = read_depth_file(args.depth, **read)
        raw = read_depth_file(args.raw, **read) if args.raw else None
    image = hha_image(depth, raw, camera)
    save_png_atomic(args.out, image)
    height, width = image.shape[:2]
    print(f"HHA {width}x{height} written to {args.out} (R, G, B = disparity, height, angle)")
    return 0


# --------------------------------------------------------------------------- detect / export


def _add_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    """RUN_OR_CKPT and --store, as `detect` and `export` load a detector."""
    p.add_argument(
        "checkpoint", metavar="RUN_OR_CKPT", help="run directory (checkpoints/last.pt) or checkpoint"
    )
    p.add_argument("--store", help="prepared store the run was trained on (only for checkpoints written "
                   "before they recorded their normalisation)")  # fmt: skip


def _add_detect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="run a trained detector on your own RGB-D frames (COCO detections, figures, point clouds)",
        description="Run a trained detector on frames from files: each frame is encoded exactly as for "
        "training (depth in whole millimetres, HHA from the camera, the training normalisation). Writes "
        "OUT/detections.json (COCO results), OUT/images.json (COCO images, ids 1..N in input order), "
        "OUT/figures/ and, with --ply, OUT/clouds/. Dataset-specific crops (NYU's border) are not applied.",
    )
    _add_checkpoint_arguments(p)
    p.add_argument("--out", required=True, help="output folder (created; files in it are replaced)")
    p.add_argument("--rgb", action="append", default=[], metavar="A", help="colour image (repeatable)")
    p.add_argument("--depth", action="append", default=[], metavar="B", help="depth image, one per --rgb")
    p.add_argument("--raw", action="append", default=[], metavar="C",
                   help="raw (unfilled) depth, one per --depth (--depth is then the filled one)")  # fmt: skip
    p.add_argument("--input", metavar="FOLDER",
                   help="FOLDER/rgb/, FOLDER/depth/ [, FOLDER/raw/] paired by file stem, optional "
                   "FOLDER/intrinsics.txt (SUN RGB-D layout) for all frames")  # fmt: skip
    p.add_argument("--list", dest="list_file", metavar="FILE",
                   help="one frame per line: 'rgb depth [raw]', paths relative to FILE")  # fmt: skip
    _add_depth_reading(p)
    p.add_argument("--no-fill", action="store_true",
                   help="do not fill the holes of a depth given without --raw (default: filled, as the "
                   "datasets' own depth is)")  # fmt: skip
    p.add_argument("--camera", help="'nyu' or FX,FY,CX,CY in pixels, 0-based principal point (overrides "
                   "FOLDER/intrinsics.txt); needed by HHA and normals runs")  # fmt: skip
    p.add_argument("--score", type=float, default=None,
                   help="keep detections scoring at least this (default: the checkpoint's, 0.01)",
                   )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8, help="frames per forward pass (default 8)")
    p.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    p.add_argument("--no-figures", action="store_true", help="no figures")
    p.add_argument(
        "--ply", action="store_true", help="also write each frame's point cloud (needs the camera)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_detect)


def _run_detect(args: argparse.Namespace) -> int:
    from dsod_depth.geometry import Intrinsics
    from dsod_depth.inference.detect import detect_files
    from dsod_depth.inference.detector import Detector
    from dsod_depth.inference.frames import frames_from_folder, frames_from_list, frames_from_paths

    sources = [bool(args.rgb or args.depth or args.raw), bool(args.input), bool(args.list_file)]
    if sum(sources) != 1:
        raise KitError("give the frames one way: --rgb/--depth [--raw], --input FOLDER or --list FILE")
    if args.batch_size < 1:
        raise KitError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    if args.input:
        frames, camera = frames_from_folder(args.input)
    elif args.list_file:
        frames, camera = frames_from_list(args.list_file)
    else:
        frames, camera = frames_from_paths(args.rgb, args.depth, args.raw)
    if args.camera:
        camera = Intrinsics.parse(args.camera)
    detector = Detector.from_checkpoint(args.checkpoint, device=args.device, store=args.store)
    with _warnings_as_lines():
        summary = detect_files(
            detector, frames, args.out, camera=camera, depth_format=args.depth_format,
            depth_scale=_depth_scale(args), fill=not args.no_fill, score_threshold=args.score,
            batch_size=args.batch_size, figures=not args.no_figures, ply=args.ply,
            progress=not args.no_progress,
        )  # fmt: skip
    classes = ", ".join(f"{name} {n}" for name, n in summary.per_class.items()) or "none"
    print(f"{summary.frames} frames, {summary.detections} detections written; score ≥ "
          f"{summary.figure_score:.2f} per class: {classes}")  # fmt: skip
    extras = [
        f"{summary.figures} figures" if summary.figures else "",
        f"{summary.clouds} clouds" if summary.clouds else "",
    ]
    print(f"wrote {summary.out}/detections.json, images.json" + "".join(f", {e}" for e in extras if e))
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained detector to ONNX (with its metadata; optional decoding and NMS in the graph)",
        description="Export a trained detector to ONNX: input 'images' [N, C, H, W] normalised as the "
        "checkpoint records; outputs 'loc', 'conf' and 'priors', or with --postprocess the decoded "
        "detections. Classes, modality, channel order, normalisation and input size go into the model's "
        "metadata. Checked against PyTorch in onnxruntime before it is written. Needs "
        "pip install 'dsod-depth[export]'.",
    )
    _add_checkpoint_arguments(p)
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format (onnx)")
    p.add_argument("--out", required=True, help="output file, e.g. model.onnx")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--batch", default="dynamic", help="batch size K, or 'dynamic' (default)")
    p.add_argument("--postprocess", action="store_true",
                   help="add decoding, score threshold and NMS to the graph (outputs boxes, scores, labels, "
                   "batch_index, num_detections)")  # fmt: skip
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from dsod_depth.inference.detector import Detector
    from dsod_depth.inference.export import export_detector

    if args.batch == "dynamic":
        batch = None
    elif args.batch.isdigit() and int(args.batch) > 0:
        batch = int(args.batch)
    else:
        raise KitError(f"--batch must be a positive integer or 'dynamic', got {args.batch!r}")
    detector = Detector.from_checkpoint(args.checkpoint, device="cpu", store=args.store)
    report = export_detector(detector, args.out, opset=args.opset, batch=batch, postprocess=args.postprocess)
    print(f"wrote {report['path']} ({detector.modality} {detector.record['build']['name']}, input "
          f"{report['input']}, outputs {', '.join(report['outputs'])}); onnxruntime agrees with PyTorch "
          f"(max difference {report['max_difference']:.1e})")  # fmt: skip
    return 0


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain a detector's backbone as a classifier of object crops from a store",
        description="Classification pretraining on ground-truth object crops (any modality): the offline "
        "stand-in for ImageNet, and depth-domain pretraining. Load the result into a detector with "
        "`--set model.init=pretrained:RUN_DIR/checkpoints/last.pt`.",
    )
    p.add_argument("config", help="config YAML (model.name, data.modality; data.input_size = crop side)")
    p.add_argument("--data", required=True, help="prepared store folder")
    p.add_argument("--out", required=True, help="output folder (checkpoints/last.pt, summary.json)")
    p.add_argument("--iters", type=int, help="optimiser steps (overrides train.iters)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from dsod_depth.config import load_config
    from dsod_depth.engine.pretrain import pretrain

    overrides = [*args.overrides, f"data.store={args.data}"]
    if args.iters is not None:
        overrides.append(f"train.iters={args.iters}")
    summary = pretrain(load_config(args.config, overrides), args.out, progress=not args.no_progress)
    acc = summary["test_accuracy"]
    acc_text = "n/a (no test crops)" if acc is None else f"{acc:.3f}"
    print(
        f"pretrained {summary['model']} on {summary['train_crops']} {summary['modality']} crops for "
        f"{summary['steps']} steps; test crop accuracy {acc_text}; "
        f"weights in {args.out}/checkpoints/last.pt"
    )
    return 0


# --------------------------------------------------------------------------- visualize


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


# --------------------------------------------------------------------------- sweep / compare


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
            progress=not args.no_progress, log_to_run=args.log_to_run, report=args.report,
        )  # fmt: skip
        return runs.exit_code(outcome)
    if args.log_to_run or args.report:
        raise KitError("--log-to-run and --report go with --run NAME")
    if slurm is not None:
        from dsod_depth.experiments.slurm import submit_sweep

        submit_sweep(args.matrix, slurm, dry_run=args.dry_run, **placement)
        return 0
    if args.print_commands:
        from dsod_depth.experiments.local import plan

        plan(jobs=args.jobs, gpus=gpus, **placement)  # the same checks as a run
        sweep.print_commands(args.matrix, **placement)
        return 0
    result = sweep.run_sweep(
        args.matrix, jobs=args.jobs, gpus=gpus, dry_run=args.dry_run, progress=not args.no_progress,
        **placement,
    )  # fmt: skip
    if result.interrupted:
        return 130
    return 0 if result.ok else 1


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="scratch-vs-pretrained tables: mAP mean ± std over seeds, gains, domain mismatch",
        description="Group finished runs by (dataset, modality, init) over seeds and write the "
        "comparison: Markdown (--out), CSV, LaTeX and JSON beside it with the same stem, and a bar "
        "chart PNG. A folder that is not a run (e.g. a sweep's output) adds every run below it.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (or folders holding them)")
    p.add_argument("--out", default="runs/comparison/comparison.md",
                   help="Markdown file to write (default runs/comparison/comparison.md)")  # fmt: skip
    p.add_argument("--no-chart", action="store_true", help="skip the bar chart PNG")
    p.set_defaults(run=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from dsod_depth.experiments.compare import compare_runs
    from dsod_depth.experiments.tables import write_tables

    result = compare_runs(args.run_dirs)
    paths = write_tables(result, args.out, chart=not args.no_chart)
    print(paths["md"].read_text(encoding="utf-8"), end="")
    print(f"\ntables written: {', '.join(str(p) for p in paths.values())}")
    return 0


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
    p.add_argument("--no-progress", action="store_true", help="no progress bars (step messages stay)")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from dsod_depth.demo import demo_settings, run_demo

    settings = demo_settings(
        full=args.full, seeds=args.seeds, iters=args.iters, num_train=args.num_train, num_test=args.num_test
    )
    result = run_demo(args.out, settings, progress=not args.no_progress)
    print()
    print(result["table"])
    print()
    print(f"report: {result['report']}  results: {args.out}/results.json")
    return 0


# --------------------------------------------------------------------------- commands

# Each entry adds one sub-command. Keep the order the README lists them in.
_COMMANDS = [
    _add_demo,
    _add_prepare,
    _add_train,
    _add_eval,
    _add_pretrain,
    _add_evaluate,
    _add_hha,
    _add_detect,
    _add_export,
    _add_visualize,
    _add_sweep,
    _add_compare,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dsod-depth",
        description="DSOD object detection on depth, HHA and RGB-D images.",
    )
    parser.add_argument("--version", action="version", version=f"dsod-depth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KitError as err:
        sys.stderr.write(f"error: {err}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
