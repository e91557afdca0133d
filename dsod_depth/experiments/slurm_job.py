"""The job that ``sweep --launcher slurm`` submits for each run (:class:`SweepJob`).

It brings one run of a matrix to done through :func:`~dsod_depth.experiments.runs.execute_run`,
like every launcher. On submitit's time-limit/preemption signal it stops the run at the end of its
current step (the trainer saves that step), and only then hands over to submitit, which calls
:meth:`SweepJob.checkpoint` and requeues the job; the requeued job resumes exactly. The reasons are
in :mod:`dsod_depth.experiments.slurm`.

The job is a process of its own, started by submitit: it shows what the library logs (the run's
header and stop lines, the outcome) by sending the records of the experiments logger to its stdout
(:func:`_log_to_stdout`): SLURM's log file of the job, and the run's ``train.log`` while the run's
output goes there.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsod_depth.engine.run_dir import RunDir, RunState
from dsod_depth.experiments.matrix import Matrix, RunSpec
from dsod_depth.experiments.runs import (
    LOGGER,
    RunOutcome,
    child_outcome,
    execute_run,
    log_line,
    redirect_output,
    resolve_matrix,
    run_command,
    specs_for,
)

__all__ = ["SweepJob", "RunFailed"]


class RunFailed(RuntimeError):
    """A job's run failed; raised in the job so that SLURM and submitit show the job as failed."""


@dataclass(frozen=True)
class SweepJob:
    """What one SLURM job runs: bring the run ``name`` of ``matrix_file`` to done.

    A checkpointable submitit callable: submitit recognises one by its :meth:`checkpoint` method
    (``SignalHandler.checkpoint_and_try_requeue``), which is what ``submitit.helpers.Checkpointable``
    provides; it is written here without that base class because this module must import without
    submitit (the command line reads :class:`SlurmOptions` from it). Plain fields only, so the
    pickle submitit stores (and re-stores on requeue) holds no state of the run: the run folder does.
    """

    matrix_file: str
    name: str
    gpus_per_run: int = 1
    threads: int | None = None  # CPU threads of the run (of each rank); default SLURM's cpus-per-task

    def __call__(self) -> dict[str, Any]:
        import submitit

        matrix, _ = resolve_matrix(Path(self.matrix_file))
        (spec,) = specs_for(matrix, gpus_per_run=self.gpus_per_run, only=self.name)
        with _log_to_stdout():
            with _StopRequest(submitit.JobEnvironment._usr_sig()) as stop:
                if self.gpus_per_run == 1:
                    outcome = self._in_process(spec, stop)
                else:
                    outcome = self._under_torchrun(spec, stop)
            _record(matrix, outcome)
            log_line(f"{spec.name}: {outcome.status}" + (f": {outcome.error}" if outcome.error else ""))
        if outcome.status == "stopped":
            stop.hand_over()  # submitit checkpoints (self.checkpoint), requeues and exits
        if outcome.status == "failed":
            raise RunFailed(f"{spec.name}: {outcome.error} (log: {RunDir(spec.run_dir).train_log})")
        return outcome.as_dict()

    def checkpoint(self, *args: Any, **kwargs: Any):
        """The same job again: the run folder's last.pt, written at the stop, makes the resume exact."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)

    def _threads(self) -> int | None:
        if self.threads is not None:
            return self.threads
        cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
        return max(int(cpus) // self.gpus_per_run, 1) if cpus.isdigit() else None

    def _in_process(self, spec: RunSpec, stop: _StopRequest) -> RunOutcome:
        """One GPU (or the CPU): the run in this process, its output in RUN_DIR/train.log."""
        import torch

        threads = self._threads()
        if threads is not None:
            torch.set_num_threads(threads)
        with _output_restored():
            return execute_run(
                spec, progress=False, stop=lambda: stop.received, on_acquired=redirect_output, log=log_line
            )

    def _under_torchrun(self, spec: RunSpec, stop: _StopRequest) -> RunOutcome:
        """K GPUs: ``torchrun ... sweep --run NAME`` as a child, the signal forwarded as SIGTERM."""
        threads = self._threads()
        report = Path(tempfile.mkdtemp(prefix="dsod-slurm-")) / "outcome.json"
        argv = run_command(
            Path(self.matrix_file), spec, gpus_per_run=self.gpus_per_run, threads=threads,
            extra=("--log-to-run", "--report", str(report)),
        )  # fmt: skip
        env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
        start = time.perf_counter()
        # The child ignores submitit's signal: SLURM may signal every process of the job, and
        # torchrun would die of SIGUSR2; it hears of the stop as SIGTERM, from this process only.
        ignore = functools.partial(signal.signal, stop.signum, signal.SIG_IGN)
        process = subprocess.Popen(argv, env=env, preexec_fn=ignore)
        code = _wait_forwarding(process, stop)
        outcome = child_outcome(spec, report, code, stop_asked=stop.received)
        outcome.seconds = time.perf_counter() - start
        with contextlib.suppress(OSError):
            report.unlink()
            report.parent.rmdir()
        return outcome


class _StopRequest:
    """submitit's preemption/timeout signal caught as a request to stop at the next step boundary.

    The handler only records the signal (the trainer polls :attr:`received`); submitit's own
    handler, remembered on entry and put back on exit, is called by :meth:`hand_over` once the run
    has saved its step.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.received = False
        self.submitit_handler: Callable | int | None = None

    def __enter__(self) -> _StopRequest:
        self.submitit_handler = signal.signal(self.signum, self._record)
        return self

    def __exit__(self, *exc) -> None:
        if self.submitit_handler is not None:  # None: a handler not set from Python, left alone
            signal.signal(self.signum, self.submitit_handler)

    def _record(self, signum, frame) -> None:  # noqa: ARG002 (signal handler signature)
        self.received = True

    def hand_over(self) -> None:
        """Let submitit checkpoint and requeue this job (its handler exits the process). Outside a
        submitit job there is no handler: the caller returns the ``stopped`` outcome."""
        if callable(self.submitit_handler):
            self.submitit_handler(self.signum, None)


@contextlib.contextmanager
def _log_to_stdout():
    """Within the block, the records of the experiments logger (:data:`~.runs.LOGGER`) as plain lines
    on stdout, and only there (not passed on to handlers the application may have set above it)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = LOGGER.level, LOGGER.propagate
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)
        LOGGER.propagate = propagate


@contextlib.contextmanager
def _output_restored():
    """Put this process's stdout/stderr back after the run: ``redirect_output`` points them at the
    run's train.log, and what the job says after its run (the outcome, submitit's requeue) belongs
    in the job's own log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, target in zip(saved, (1, 2)):
            os.dup2(fd, target)
            os.close(fd)


def _wait_forwarding(process: subprocess.Popen, stop: _StopRequest) -> int:
    """Wait for the child; forward a stop request to it once, as SIGTERM (torchrun passes it to
    every rank, which ends its step and saves)."""
    forwarded = False
    while True:
        try:
            return process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if stop.received and not forwarded:
                process.send_signal(signal.SIGTERM)
                forwarded = True


def _record(matrix: Matrix, outcome: RunOutcome) -> None:
    """Merge the job's outcome into ``<output>/sweep.json``, in matrix order (the other runs keep
    the records their own jobs wrote)."""
    from dsod_depth.experiments.sweep import SweepResult, write_summary

    mine = outcome.spec.run_dir
    outcomes = [
        outcome if spec.run_dir == mine else RunOutcome(spec, "pending", RunState("new"))
        for spec in matrix.expand()
    ]
    write_summary(SweepResult(matrix, outcomes))
