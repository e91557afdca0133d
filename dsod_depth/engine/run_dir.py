"""The run folder: its layout (DESIGN "File formats"), its state, and the lock of its one writer.

Layout of a run folder::

    config.yaml              resolved config of the run (decides what the folder holds)
    run_kind                 "pretrain" or "transfer" for runs that train no detector (absent: detector)
    metrics.jsonl            one JSON object per logged step
    checkpoints/last.pt      newest checkpoint (written atomically); checkpoints/best.pt
    eval/<split>/            gt.json, detections.json, metrics.json
    tensorboard/  figures/   curves and drawings
    train.log                output of the process that ran it (sweeps with --jobs / SLURM)
    .lock  .lock.holder      the writer's kernel lock and who holds it (not run content)

Every other module names these files through :class:`RunDir` and reads them through the functions
here, so the contract lives in one place.

**One writer at a time.** A process that writes a run folder holds :func:`run_lock` on it: an
exclusive ``flock`` through :class:`filelock.FileLock` on ``.lock``, plus a small JSON record of the
holder (host, pid, command, start time) in ``.lock.holder`` for the message a second writer gets.
The kernel drops the lock with its process, however the process ends (even by SIGKILL), so a dead
holder never blocks the next writer; the next holder deletes the temporary files such a writer left
(:func:`~dsod_depth.fileio.remove_stale_temporaries`). The lock is re-entrant within a process (a
sweep holding a run calls the trainer, which takes it again). Under ``torchrun`` only rank 0 locks.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import math
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from dsod_depth.errors import KitError
from dsod_depth.fileio import remove_stale_temporaries, write_text_atomic

__all__ = [
    "RunDir",
    "RunState",
    "RunBusy",
    "RunExists",
    "NOT_RUN_CONTENT",
    "run_lock",
    "lock_holder",
    "folder_state",
    "resolve_checkpoint",
    "checkpoint_folder",
    "read_eval_metrics",
    "RUN_KINDS",
    "run_kind",
    "write_run_kind",
    "read_map",
    "read_metrics_log",
    "config_differences",
]

CONFIG_FILE = "config.yaml"  # what makes a folder a run (compare finds runs by it)
# The files of an evaluation folder (eval/<split>/), written by engine.evaluator.evaluate.
GT_FILE, DETECTIONS_FILE, METRICS_FILE = "gt.json", "detections.json", "metrics.json"
KIND_FILE = "run_kind"
# What a run folder trains: a detector (train, sweep), a backbone on crops (pretrain) or a student of
# supervision transfer (transfer). Only detector runs have test metrics that compare can table.
RUN_KINDS = ("detector", "pretrain", "transfer")
LOCK_NAME = ".lock"
HOLDER_NAME = ".lock.holder"
# Files of the lock, not of the run: comparisons, states and "nothing changed" checks skip them.
NOT_RUN_CONTENT = frozenset({LOCK_NAME, HOLDER_NAME})


@dataclass(frozen=True)
class RunDir:
    """The paths of one run folder (nothing is created by naming them)."""

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path))

    def __str__(self) -> str:
        return str(self.path)

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_log(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def train_log(self) -> Path:
        return self.path / "train.log"

    @property
    def summary(self) -> Path:
        """``summary.json`` of a finished ``pretrain`` or ``transfer`` run."""
        return self.path / "summary.json"

    @property
    def transfer_record(self) -> Path:
        """``transfer.json`` of a ``transfer`` run: its settings and teacher."""
        return self.path / "transfer.json"

    @property
    def kind_file(self) -> Path:
        """``run_kind`` of a run that trains no detector (see :func:`run_kind`)."""
        return self.path / KIND_FILE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_NAME

    @property
    def holder_file(self) -> Path:
        return self.path / HOLDER_NAME

    def eval_dir(self, split: str) -> Path:
        return self.path / "eval" / split

    def eval_metrics(self, split: str) -> Path:
        return self.eval_dir(split) / METRICS_FILE

    def eval_gt(self, split: str) -> Path:
        return self.eval_dir(split) / GT_FILE

    def eval_detections(self, split: str) -> Path:
        return self.eval_dir(split) / DETECTIONS_FILE

    def is_run(self) -> bool:
        """True when the folder holds a run (its ``config.yaml``)."""
        return self.config.is_file()

    def content(self) -> dict[str, tuple[int, int]]:
        """Every file of the run (lock files excluded) → (size, mtime in ns); {} for no folder."""
        if not self.path.is_dir():
            return {}
        out = {}
        for file in sorted(self.path.rglob("*")):
            if file.is_file() and file.name not in NOT_RUN_CONTENT:
                stat = file.stat()
                out[str(file.relative_to(self.path))] = (stat.st_size, stat.st_mtime_ns)
        return out


# --------------------------------------------------------------------------- reading


def checkpoint_folder(path: str | os.PathLike) -> PurePath:
    """The run folder a checkpoint path belongs to, from the path alone: ``RUN/checkpoints/x.pt`` →
    ``RUN``; any other file → its own folder."""
    path = PurePath(path)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def resolve_checkpoint(path: str | os.PathLike) -> tuple[Path, RunDir]:
    """(checkpoint file, its run folder) for a run folder or a checkpoint file (``.../checkpoints/x.pt``
    belongs to ``...``; any other file to its own folder)."""
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        if not run.last.is_file():
            raise KitError(
                f"{path} has no checkpoints/last.pt; pass a run directory written by `dsod-depth train`"
            )
        return run.last, run
    if not path.is_file():
        raise KitError(f"{path} not found; pass a run directory or a checkpoint file")
    return path, RunDir(checkpoint_folder(path))


def run_kind(run: RunDir | str | os.PathLike) -> str:
    """What the run folder trains, one of :data:`RUN_KINDS`: the word in its ``run_kind`` file, else
    ``detector``. A pretraining folder from before the marker (its ``summary.json`` has
    ``test_accuracy``) reads ``pretrain``."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    if run.kind_file.is_file():
        kind = run.kind_file.read_text(encoding="utf-8").strip()
        if kind not in RUN_KINDS:
            expected = ", ".join(RUN_KINDS)
            raise KitError(f"{run.kind_file}: unknown run kind {kind!r}; expected one of {expected}")
        return kind
    if run.summary.is_file():
        try:
            if "test_accuracy" in json.loads(run.summary.read_text(encoding="utf-8")):
                return "pretrain"
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
            pass
    return "detector"


def write_run_kind(run: RunDir, kind: str) -> None:
    """Mark ``run`` as a ``pretrain`` or ``transfer`` run (detector runs carry no marker)."""
    if kind not in RUN_KINDS[1:]:
        raise ValueError(f"run kind {kind!r} is not marked; expected one of {', '.join(RUN_KINDS[1:])}")
    write_text_atomic(run.kind_file, kind + "\n")


def read_eval_metrics(run: RunDir, split: str) -> dict[str, Any]:
    """``eval/<split>/metrics.json`` of a run, checked; a :class:`KitError` says how to make it."""
    path = run.eval_metrics(split)
    if not path.is_file():
        raise KitError(
            f"{path} not found: run {run} has no {split} metrics; finish it with "
            f"`dsod-depth train --resume {run}` or score it with `dsod-depth eval {run}`"
        )
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise KitError(f"{path} is not readable JSON ({err}); evaluate the run again") from None
    ap = metrics.get("ap_per_class") if isinstance(metrics, dict) else None
    value = metrics.get("map") if isinstance(metrics, dict) else None
    ok = (
        isinstance(ap, dict)
        and isinstance(metrics.get("metric"), str)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and all(v is None or (isinstance(v, (int, float)) and math.isfinite(v)) for v in ap.values())
    )
    if not ok:
        raise KitError(
            f"{path} is not a metrics file of `dsod-depth eval` (needs metric, map, ap_per_class); "
            "evaluate the run again"
        )
    return metrics


def read_map(run: RunDir, split: str) -> float | None:
    """The mAP in ``eval/<split>/metrics.json`` (a fraction), or None when it is absent or unreadable
    (for summaries; :func:`read_eval_metrics` checks the whole file)."""
    try:
        value = float(json.loads(run.eval_metrics(split).read_text(encoding="utf-8"))["map"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if math.isfinite(value) else None


def read_metrics_log(run: RunDir | str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of ``metrics.jsonl`` in order ([] when there is none), given the run folder or
    the file; a malformed line is a :class:`KitError` naming the file and the line."""
    path = Path(run.metrics_log if isinstance(run, RunDir) else run)
    if path.is_dir():
        path = RunDir(path).metrics_log
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise KitError(f"{path}:{number}: not a JSON record ({err}); the log is damaged") from None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise KitError(f"{path}:{number}: a metrics record must be an object with an integer 'step'")
        records.append(record)
    return records


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class RunState:
    """What a folder holds relative to the config meant for it (see :func:`folder_state`)."""

    kind: str  # new | resume | evaluate | done | conflict
    step: int = 0  # optimiser steps in checkpoints/last.pt (0 when there is none)
    detail: str = ""  # why, for conflict


def config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs, as 'key: a → b'."""
    out = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            out += config_differences(left, right, f"{prefix}{key}.")
        elif left != right:
            out.append(f"{prefix}{key}: {left!r} → {right!r}")
    return out


def folder_state(run_dir: str | os.PathLike | RunDir, config: Any) -> RunState:
    """The state of a run folder meant for ``config`` (an ``ExperimentConfig``):

    * ``new`` — no ``checkpoints/last.pt``: train from the start;
    * ``resume`` — ``last.pt`` before ``train.iters``: continue with the trainer's exact resume;
    * ``evaluate`` — trained to ``train.iters`` but no test metrics: evaluate ``last.pt``;
    * ``done`` — trained and ``eval/<test split>/metrics.json`` present;
    * ``conflict`` — the folder holds a run of another config: never overwritten.

    Reads ``config.yaml`` and the step of ``last.pt`` only (lock files are not looked at); an
    unreadable checkpoint raises :class:`KitError`.
    """
    from dsod_depth.config import load_config, to_dict
    from dsod_depth.engine.checkpoint import load_checkpoint

    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if not run.last.is_file():
        return RunState("new")
    if not run.config.is_file():
        return RunState("conflict", detail=f"{run.last} exists but config.yaml is missing")
    diffs = config_differences(to_dict(load_config(run.config)), to_dict(config))
    if diffs:
        more = f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else ""
        return RunState("conflict", detail=f"it holds a run of another config: {'; '.join(diffs[:3])}{more}")
    step = int(load_checkpoint(run.last).get("step", -1))
    iters = config.train.iters
    if step < 0 or step > iters:
        return RunState("conflict", step, f"last.pt is at step {step}, outside 0..{iters}")
    if step < iters:
        return RunState("resume", step)
    if run.eval_metrics(config.data.test_split).is_file():
        return RunState("done", step)
    return RunState("evaluate", step)


# --------------------------------------------------------------------------- lock


class RunBusy(KitError):
    """Another process holds the run folder's lock."""


class RunExists(KitError):
    """A fresh run was asked for, but the folder already holds a trained one."""


_HELD: dict[Path, tuple[Any, int]] = {}  # this process's locks: resolved folder → (FileLock, depth)


def lock_holder(run: RunDir) -> str:
    """Who holds the lock, from ``.lock.holder``, for messages ('' when unknown)."""
    try:
        record = json.loads(run.holder_file.read_text(encoding="utf-8"))
        return f"pid {record['pid']} on {record['host']} since {record['started']} ({record['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _command_line() -> str:
    """This process's command as a user would type it (``python -m dsod_depth`` for the module)."""
    program = Path(sys.argv[0]).name
    if program == "__main__.py":
        program = "python -m dsod_depth"
    return " ".join([program, *sys.argv[1:]])


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def run_lock(
    run_dir: str | os.PathLike | RunDir,
    *,
    create: bool = False,
    command: str | None = None,
    on_acquired: Callable[[RunDir], None] | None = None,
) -> Iterator[RunDir]:
    """Hold the run folder's lock for the ``with`` block (see the module docstring).

    Args:
        run_dir: the run folder.
        create: make the folder (and its parents) if it does not exist; otherwise it must exist.
        command: recorded in the holder file (default: this process's command line).
        on_acquired: called with the run once the lock is taken by this call (not when re-entered).

    Raises :class:`RunBusy` (one line naming the folder and the holder) when another process holds
    it, without touching the folder; :class:`KitError` when the file system cannot lock files.
    """
    from filelock import FileLock, Timeout

    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if not _is_rank_zero():  # torchrun: rank 0 holds the lock for the whole job
        yield run
        return
    if not run.path.is_dir():
        if not create:
            raise KitError(f"run directory {run} not found")
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise KitError(f"cannot create {run}: {err.strerror or err}") from None
    key = run.path.resolve()
    if key in _HELD:  # re-entered by the process that holds it
        lock, depth = _HELD[key]
        _HELD[key] = (lock, depth + 1)
        try:
            yield run
        finally:
            lock, depth = _HELD[key]
            _HELD[key] = (lock, depth - 1)
        return
    # preserve_lock_file: the lock file stays (deleting it races with a waiting writer);
    # fallback_to_soft off: a marker file outlives a killed holder, which is what the lock avoids.
    lock = FileLock(str(run.lock_file), timeout=0, preserve_lock_file=True, fallback_to_soft=False)
    try:
        lock.acquire()
    except Timeout:
        holder = lock_holder(run) or "another process (no holder record yet)"
        raise RunBusy(
            f"{run} is being written by {holder}; wait for it to finish, or stop that process "
            "(a killed holder releases the folder)"
        ) from None
    except OSError as err:
        if err.errno in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            raise KitError(
                f"the file system of {run} does not support file locks (flock: {err.strerror}); put the "
                "runs on a local disk or a shared file system with flock enabled"
            ) from None
        raise KitError(f"cannot lock {run.lock_file}: {err.strerror or err}") from None
    _HELD[key] = (lock, 1)
    try:
        remove_stale_temporaries(run.path)  # left by a killed writer; the lock says none is alive
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": command or _command_line(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        write_text_atomic(run.holder_file, json.dumps(record) + "\n")
        if on_acquired is not None:
            on_acquired(run)
        yield run
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            run.holder_file.unlink()
        lock.release()
