"""What several commands share: depth-file options, config-key flags, and how library output is shown.

The library prints nothing: it raises :class:`~dsod_depth.errors.KitError`, emits warnings and
takes ``log`` callables. The commands show these here, one line each: a warning as
``warning: ...`` on stderr (:func:`warnings_as_lines`), a logged line on stdout (:func:`print_line`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dsod_depth.errors import KitError

if TYPE_CHECKING:
    from dsod_depth.config import ExperimentConfig

__all__ = [
    "CONFIG_FLAGS",
    "print_line",
    "warnings_as_lines",
    "config_overrides",
    "add_depth_reading",
    "depth_scale",
]

# Flags that stand for one config key each (`--iters 100` is `--set train.iters=100`): argparse
# destination → key. A command declares those it offers; `config_overrides` reads the ones given.
CONFIG_FLAGS = {
    "data": "data.store",
    "iters": "train.iters",
    "checkpoint_every": "train.checkpoint_every",
    "seed": "train.seed",
}


def print_line(line: str) -> None:
    """The ``log`` the commands pass to the library: one line on stdout, flushed at once (a sweep's
    lines interleave with the output of its children and its progress bars)."""
    print(line, flush=True)


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Library warnings inside the block printed as one ``warning: ...`` line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                sys.stderr.write(f"warning: {warning.message}\n")


def config_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set KEY=VALUE`` overrides, then ``key=value`` for every flag of :data:`CONFIG_FLAGS`
    that the command has and the user gave (so a flag wins over a ``--set`` of the same key)."""
    overrides = list(args.overrides)
    for dest, key in CONFIG_FLAGS.items():
        value = getattr(args, dest, None)  # None: not given, or not an option of this command
        if value is not None:
            overrides.append(f"{key}={value}")
    return overrides


def add_depth_reading(p: argparse.ArgumentParser) -> None:
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


def depth_scale(args: argparse.Namespace) -> float:
    """--depth-scale (default 1000), refused with a format of fixed units."""
    if args.depth_scale is not None and args.depth_format != "plain":
        raise KitError(
            f"--depth-scale applies to --depth-format plain only; {args.depth_format} has fixed units"
        )
    return 1000.0 if args.depth_scale is None else args.depth_scale


def resumed_run(path: str, command: str) -> tuple[Path, ExperimentConfig]:
    """(folder, config) of the run folder ``path`` given to ``COMMAND --resume``; a one-line error
    when it is not a run folder."""
    from dsod_depth.config import load_config
    from dsod_depth.engine.run_dir import RunDir

    run = RunDir(path)
    if not run.is_run():
        raise KitError(f"{run} is not a run directory (no config.yaml); pass a folder written by `{command}`")
    return run.path, load_config(run.config)
