"""`detect` and `export`: a trained detector on the user's own frames, and as an ONNX model."""

from __future__ import annotations

import argparse

from dsod_depth.cli.common import add_depth_reading, depth_scale, warnings_as_lines
from dsod_depth.errors import KitError


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
    add_depth_reading(p)
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
    with warnings_as_lines():
        summary = detect_files(
            detector, frames, args.out, camera=camera, depth_format=args.depth_format,
            depth_scale=depth_scale(args), fill=not args.no_fill, score_threshold=args.score,
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
