"""The `dsod-depth` command line: the only package that parses arguments or prints.

One module per group of commands; every command is a pair: ``_add_<name>(subparsers)`` declares
its arguments and ``_run_<name>(args) -> int`` does the work by calling library functions.

* :mod:`.prepare` — ``prepare <dataset>`` (every dataset's options);
* :mod:`.training` — ``train``, ``eval``, ``pretrain``;
* :mod:`.files` — ``evaluate``, ``hha`` (single files);
* :mod:`.inference` — ``detect``, ``export``;
* :mod:`.experiments` — ``demo``, ``visualize``, ``sweep``, ``compare``;
* :mod:`.common` — what several commands share: depth-file options, the flags that stand for
  config keys, and how library warnings and ``log`` lines are shown.

Expected user errors (:class:`~dsod_depth.errors.KitError`, argument mistakes) become one
``error: ...`` line on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dsod_depth import __version__
from dsod_depth.cli.experiments import _add_compare, _add_demo, _add_sweep, _add_visualize
from dsod_depth.cli.files import _add_evaluate, _add_hha
from dsod_depth.cli.inference import _add_detect, _add_export
from dsod_depth.cli.prepare import _add_prepare
from dsod_depth.cli.training import _add_eval, _add_pretrain, _add_train, _add_transfer
from dsod_depth.errors import KitError

__all__ = ["main", "build_parser", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line instead of the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USER_ERROR)


# Each entry adds one sub-command. Keep the order the README lists them in.
_COMMANDS = [
    _add_demo,
    _add_prepare,
    _add_train,
    _add_eval,
    _add_pretrain,
    _add_transfer,
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
