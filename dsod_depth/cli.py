"""The `dsod-depth` command line: the only module that parses arguments.

Every command is a pair: ``_add_<name>(subparsers)`` declares its arguments and
``_run_<name>(args) -> int`` does the work by calling library functions. Expected
user errors (:class:`~dsod_depth.errors.KitError`, argument mistakes) become one
``error: ...`` line on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dsod_depth import __version__
from dsod_depth.errors import KitError

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line instead of the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USER_ERROR)


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


# --------------------------------------------------------------------------- commands

# Each entry adds one sub-command. Keep the order the README lists them in.
_COMMANDS = [
    _add_evaluate,
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
