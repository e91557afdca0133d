"""``sweep --jobs N``: several runs at once on this machine, each in its own process.

Each run is a child process running ``dsod-depth sweep MATRIX --run NAME`` (under ``torchrun
--standalone`` with several GPUs per run), pinned to its own GPUs through ``CUDA_VISIBLE_DEVICES``
or, without GPUs, to its share of the CPU threads (``OMP_NUM_THREADS`` and ``torch.set_num_threads``).
Children start in their own session, so Ctrl-C reaches this process only, which forwards it: every
child saves a checkpoint at the end of its step and stops; running the sweep again resumes.

Written by hand because what it schedules is a handful of long processes with per-slot environments,
a lock-aware exit protocol and a live summary; ``concurrent.futures`` offers none of these for
processes it does not start itself, and torchrun launches one run, not a queue of them.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dsod_depth.engine.run_dir import RunDir, RunState, read_map
from dsod_depth.errors import KitError
from dsod_depth.experiments.matrix import RunSpec
from dsod_depth.experiments.runs import RunOutcome, child_outcome, pending_specs, run_command

__all__ = ["Placement", "plan", "visible_gpus", "run_children"]

_STOP_GRACE_S = 300.0  # after Ctrl-C, how long a child may take to finish its step and save


@dataclass(frozen=True)
class Placement:
    """Where the runs of a sweep go on this machine."""

    jobs: int
    slots: tuple[tuple[int, ...], ...]  # GPU indices of each job slot; () = CPU only
    gpus_per_run: int
    threads_per_run: int | None  # CPU threads of each run (None: torch's default)
    in_process: bool  # one run at a time in the sweep's own process

    def describe(self) -> str:
        if self.in_process:
            return "one at a time in this process"
        where = ", ".join(f"GPU {','.join(map(str, s))}" for s in self.slots) if self.slots[0] else "CPU"
        threads = f", {self.threads_per_run} CPU threads each" if self.threads_per_run else ""
        return f"{self.jobs} at a time on {where}{threads}"

    def env(self, slot: int) -> dict[str, str]:
        """Environment of the child in ``slot``."""
        env: dict[str, str] = {}
        if self.slots[slot]:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.slots[slot]))
        if self.threads_per_run:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads_per_run)
        return env


def visible_gpus() -> list[int]:
    """Indices of the CUDA devices this process may use."""
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def plan(
    *, jobs: int = 1, gpus: list[int] | None = None, gpus_per_run: int = 1, threads_per_run: int | None = None
) -> Placement:
    """Check the placement options and share out GPUs or CPU threads; a mistake is one
    :class:`KitError` naming the numbers."""
    if jobs < 1:
        raise KitError(f"--jobs must be at least 1, got {jobs}")
    if gpus_per_run < 1:
        raise KitError(f"--gpus-per-run must be at least 1, got {gpus_per_run}")
    if threads_per_run is not None and threads_per_run < 1:
        raise KitError(f"--threads-per-run must be at least 1, got {threads_per_run}")
    visible = visible_gpus()
    if gpus is not None:
        unknown = [g for g in gpus if g not in visible]
        if unknown:
            seen = ",".join(map(str, visible)) if visible else "none"
            raise KitError(f"--gpus names GPU {unknown[0]}, which is not visible (visible: {seen})")
        if len(set(gpus)) != len(gpus):
            raise KitError(f"--gpus lists a GPU twice: {','.join(map(str, gpus))}")
    chosen = list(gpus) if gpus is not None else visible
    if gpus_per_run > 1 and gpus_per_run > len(chosen):
        raise KitError(
            f"--gpus-per-run {gpus_per_run} needs {gpus_per_run} GPUs, but {len(chosen)} "
            f"{'are' if len(chosen) != 1 else 'is'} given (--gpus or the visible ones)"
        )
    if chosen:
        if jobs * gpus_per_run > len(chosen):
            raise KitError(
                f"--jobs {jobs} × --gpus-per-run {gpus_per_run} needs {jobs * gpus_per_run} GPUs, but "
                f"{len(chosen)} are given; lower --jobs"
            )
        slots = tuple(tuple(chosen[i * gpus_per_run : (i + 1) * gpus_per_run]) for i in range(jobs))
    else:
        slots = ((),) * jobs
    in_process = jobs == 1 and gpus is None and gpus_per_run == 1 and threads_per_run is None
    if not in_process and not chosen and threads_per_run is None:
        threads_per_run = max((os.cpu_count() or 1) // jobs, 1)
    return Placement(jobs, slots, gpus_per_run, threads_per_run, in_process)


@dataclass
class _Child:
    spec: RunSpec
    slot: int
    process: subprocess.Popen
    report: Path
    started: float
    tail: collections.deque  # last lines the child printed before it took the run's train.log
    reader: threading.Thread


def _read_lines(stream, tail: collections.deque) -> None:
    for line in iter(stream.readline, ""):
        tail.append(line.rstrip("\n"))
    stream.close()


class _Summary:
    """One live line: done / running / pending / failed, elapsed, ETA from the finished runs."""

    def __init__(self, total: int, jobs: int, log) -> None:
        self.total, self.jobs, self.log = total, jobs, log
        self.start = time.monotonic()
        self.tty = sys.stdout.isatty()
        self.last = ""
        self.durations: list[float] = []

    def update(self, counts: dict[str, int]) -> None:
        elapsed = time.monotonic() - self.start
        remaining = counts["running"] + counts["pending"]
        eta = ""
        if self.durations and remaining:
            waves = -(-remaining // self.jobs)  # ceil
            eta = f" · ETA {_clock(waves * sum(self.durations) / len(self.durations))}"
        text = (
            f"{counts['done']}/{self.total} done · {counts['running']} running · "
            f"{counts['pending']} pending · {counts['failed']} failed · {counts['held']} held · "
            f"{_clock(elapsed)} elapsed{eta}"
        )
        key = text.split(" · ETA")[0].rsplit(" · ", 1)[0]  # without the clocks
        if self.tty:
            sys.stdout.write("\r\033[K" + text)
            sys.stdout.flush()
        elif key != self.last:
            self.log(text)
        self.last = key

    def close(self) -> None:
        if self.tty:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def run_children(matrix_file: Path, specs: list[RunSpec], placement: Placement, *, log):
    """Run every spec in a child process, ``placement.jobs`` at a time; returns (outcomes in matrix
    order, interrupted). Ctrl-C (SIGINT) or SIGTERM: no more runs start, the running ones save and stop."""
    todo = collections.deque(pending_specs(specs))
    pending = {spec.run_dir for spec in todo}
    outcomes: dict[Path, RunOutcome] = {}
    for spec in specs:
        if spec.run_dir not in pending:
            outcomes[spec.run_dir] = RunOutcome(
                spec, "skipped", RunState("done"), read_map(RunDir(spec.run_dir), spec.config.data.test_split)
            )
    summary = _Summary(len(specs), placement.jobs, log)
    free = list(range(placement.jobs))
    running: list[_Child] = []
    stopping: list[int] = []  # the SIGINT/SIGTERM signals received
    forwarded_at: float | None = None  # when the first one was passed on to the children
    handlers = {}

    def on_signal(signum, frame):  # noqa: ARG001
        stopping.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        handlers[sig] = signal.signal(sig, on_signal)
    reports = Path(tempfile.mkdtemp(prefix="dsod-sweep-"))
    try:
        while running or (todo and not stopping):
            while todo and free and not stopping:
                spec, slot = todo.popleft(), free.pop(0)
                report = reports / f"{len(outcomes) + len(running)}_{spec.run_dir.name}.json"
                argv = run_command(
                    matrix_file,
                    spec,
                    gpus_per_run=placement.gpus_per_run,
                    threads=placement.threads_per_run,
                    extra=("--log-to-run", "--report", str(report)),
                )
                process = subprocess.Popen(
                    argv,
                    env={**os.environ, **placement.env(slot)},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
                tail: collections.deque = collections.deque(maxlen=40)
                reader = threading.Thread(target=_read_lines, args=(process.stdout, tail), daemon=True)
                reader.start()
                running.append(_Child(spec, slot, process, report, time.monotonic(), tail, reader))
            if stopping and forwarded_at is None:
                forwarded_at = time.monotonic()
                log(
                    "stopping: each running run saves a checkpoint at the end of its step (Ctrl-C again "
                    "to stop at once)"
                )
                for child in running:
                    _signal(child, signal.SIGINT)
            elif len(stopping) > 1:  # Ctrl-C again: stop at once
                for child in running:
                    _signal(child, signal.SIGKILL)
            for child in list(running):
                code = child.process.poll()
                if code is None:
                    if forwarded_at is not None and time.monotonic() - forwarded_at > _STOP_GRACE_S:
                        _signal(child, signal.SIGKILL)
                    continue
                child.reader.join(timeout=5)
                running.remove(child)
                free.append(child.slot)
                outcome = _outcome(child, code, bool(stopping))
                if outcome.status == "trained" or outcome.status == "resumed":
                    summary.durations.append(outcome.seconds)
                outcomes[child.spec.run_dir] = outcome
                if outcome.status == "failed":
                    train_log = RunDir(child.spec.run_dir).train_log
                    log(f"{child.spec.name}: FAILED: {outcome.error} (log: {train_log})")
            summary.update(_counts(outcomes, running, todo))
            time.sleep(0.2)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        summary.close()
        for file in reports.glob("*"):
            file.unlink()
        reports.rmdir()
    for spec in todo:
        outcomes[spec.run_dir] = RunOutcome(spec, "pending", RunState("new"))
    return [outcomes[spec.run_dir] for spec in specs], bool(stopping)


def _signal(child: _Child, signum: int) -> None:
    try:
        os.killpg(child.process.pid, signum)  # the child and its torchrun workers
    except (ProcessLookupError, PermissionError):
        pass


def _outcome(child: _Child, code: int, stop_asked: bool) -> RunOutcome:
    """What the child reported (or its exit code and last line say), with its wall time."""
    last = [line for line in child.tail if line.strip()]
    outcome = child_outcome(child.spec, child.report, code, stop_asked=stop_asked,
                            last_line=last[-1] if last else "")  # fmt: skip
    outcome.seconds = time.monotonic() - child.started
    return outcome


def _counts(outcomes, running, todo) -> dict[str, int]:
    counts = {"done": 0, "running": len(running), "pending": len(todo), "failed": 0, "held": 0}
    for outcome in outcomes.values():
        if outcome.status in ("trained", "resumed", "evaluated", "skipped"):
            counts["done"] += 1
        elif outcome.status == "held":
            counts["held"] += 1
        elif outcome.status in ("failed", "stopped"):
            counts["failed" if outcome.status == "failed" else "pending"] += 1
    return counts
