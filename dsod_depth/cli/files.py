"""`evaluate` and `hha`: commands on single files, no run or store needed.

``evaluate`` scores COCO-format detections against COCO-format ground truth; ``hha`` encodes one
depth image to HHA.
"""

from __future__ import annotations

import argparse

from dsod_depth.cli.common import add_depth_reading, depth_scale, warnings_as_lines


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
    add_depth_reading(p)
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
    read = dict(depth_format=args.depth_format, depth_scale=depth_scale(args), dtype=np.float64)
    with warnings_as_lines():
        depth = read_depth_file(args.depth, **read)
        raw = read_depth_file(args.raw, **read) if args.raw else None
    image = hha_image(depth, raw, camera)
    save_png_atomic(args.out, image)
    height, width = image.shape[:2]
    print(f"HHA {width}x{height} written to {args.out} (R, G, B = disparity, height, angle)")
    return 0
