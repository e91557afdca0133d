"""One run of a matrix: the unit every sweep launcher executes.

:func:`execute_run` brings one run to ``done`` while holding its run folder's lock
(:mod:`dsod_depth.engine.run_dir`); its state — ``new``, ``resume`` (at step k), ``evaluate``, ``done``
or ``conflict`` (:func:`~dsod_depth.engine.run_dir.folder_state`) — is read under that lock, so
whoever runs it (the sweep's own process, a child of ``--jobs``, another sweep on another machine
sharing the folder, a SLURM job) trains each run exactly once, and a run another process holds is
reported as ``held`` and left to it. :func:`run_single` is ``dsod-depth sweep MATRIX --run NAME``,
the command every launcher runs per run (:func:`run_command`).

Progress goes to a ``log`` callable, one line per call; by default (:func:`log_line`) an INFO record
of the ``dsod_depth.experiments`` logger, which shows nowhere unless the application configures
logging. The command line passes a printing ``log``; a SLURM job logs to its stdout.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsod_depth.config import load_config
from dsod_depth.engine.run_dir import (
    RunBusy,
    RunDir,
    RunExists,
    RunState,
    folder_state,
    read_map,
    run_lock,
)
from dsod_depth.errors import KitError
from dsod_depth.experiments.matrix import Matrix, RunSpec, load_matrix, matrix_from_dict

__all__ = [
    "RunOutcome",
    "run_state",
    "execute_run",
    "run_single",
    "resolve_matrix",
    "specs_for",
    "pending_specs",
    "run_command",
    "shell_command",
    "exit_code",
    "child_outcome",
    "EXIT_HELD",
    "EXIT_STOPPED",
    "LOGGER",
    "log_line",
]

Log = Callable[[str], None]

# Exit codes of `sweep --run NAME` beyond 0 (finished) and 1 (failed): the launchers read them.
EXIT_HELD = 3  # another process holds the run
EXIT_STOPPED = 130  # asked to stop; the run saved a checkpoint of its last step


LOGGER = logging.getLogger("dsod_depth.experiments")


def log_line(line: str) -> None:
    """The default ``log``: ``line`` as an INFO record of :data:`LOGGER` (silent unless configured)."""
    LOGGER.info(line)


@dataclass
class RunOutcome:
    spec: RunSpec
    status: str  # trained | resumed | evaluated | skipped | held | stopped | failed | planned | pending
    state: RunState
    map: float | None = None  # test mAP (fraction) when the run is finished
    error: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "run_dir": str(spec.run_dir),
            "dataset": spec.dataset,
            "modality": spec.modality,
            "init": spec.init,
            "seed": spec.seed,
            "status": self.status,
            "map": self.map,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, spec: RunSpec, record: dict[str, Any]) -> RunOutcome:
        return cls(
            spec,
            record["status"],
            RunState(record.get("state", "new"), record.get("step", 0)),
            record.get("map"),
            record.get("error", ""),
            record.get("seconds", 0.0),
        )


# --------------------------------------------------------------------------- one run


def run_state(spec: RunSpec) -> RunState:
    """The state of a matrix cell's folder, read without its lock (plans and dry runs)."""
    return folder_state(spec.run_dir, spec.config)


def describe_state(state: RunState, iters: int) -> str:
    return {
        "new": f"new, train {iters:,} steps",
        "resume": f"interrupted, resume at step {state.step:,}/{iters:,}",
        "evaluate": f"trained {state.step:,} steps, evaluate",
        "done": f"done ({state.step:,} steps)",
        "conflict": f"conflict: {state.detail}",
    }[state.kind]


def _bring_to_done(spec: RunSpec, state: RunState, progress: bool, stop, on_acquired) -> str:
    """Train, resume or evaluate one run whose lock this process holds; returns the status."""
    from dsod_depth.engine import evaluator, trainer

    if state.kind == "conflict":
        raise KitError(
            f"{spec.run_dir}: {state.detail}; delete the folder, or change the matrix 'output', "
            "to train this run"
        )
    if state.kind in ("new", "resume"):
        # The trainer evaluates on data.test_split after its last step (eval/<split>/metrics.json).
        trainer.train(
            spec.config,
            spec.run_dir,
            resume=state.kind == "resume",
            progress=progress,
            stop=stop,
            on_acquired=on_acquired,
        )
        return "trained" if state.kind == "new" else "resumed"
    if state.kind == "evaluate":
        evaluator.evaluate_checkpoint(
            spec.run_dir,
            split=spec.config.data.test_split,
            metric=spec.config.train.eval_metric,
            device=spec.config.train.device,
            progress=progress,
            on_acquired=on_acquired,
        )
        return "evaluated"
    return "skipped"


def execute_run(
    spec: RunSpec,
    *,
    progress: bool = True,
    stop: Callable[[], bool] | None = None,
    on_acquired: Callable[[RunDir], None] | None = None,
    log: Log = log_line,
    head: str = "",
) -> RunOutcome:
    """Bring one run to ``done`` under its lock; never raises for a failed run (see the status).

    A run whose folder does not exist yet is checked (store, model, weights) before its folder is
    made and locked; when another process made it in the meantime, the state is read again.
    ``stop`` and ``on_acquired`` are passed to the trainer (see :func:`dsod_depth.engine.trainer.train`).
    """
    from dsod_depth.engine.trainer import RunStopped

    head = head or spec.name
    start = time.perf_counter()
    outcome = RunOutcome(spec, "failed", RunState("new"))
    run = RunDir(spec.run_dir)
    try:
        for _ in range(2):  # a second pass only when another process created the folder meanwhile
            if not run.path.is_dir():
                outcome.state = RunState("new")
                log(f"{head}: {describe_state(outcome.state, spec.config.train.iters)}")
                try:
                    outcome.status = _bring_to_done(spec, outcome.state, progress, stop, on_acquired)
                    break
                except RunExists:
                    continue
            with run_lock(run, on_acquired=on_acquired):
                outcome.state = folder_state(run, spec.config)
                log(f"{head}: {describe_state(outcome.state, spec.config.train.iters)}")
                outcome.status = _bring_to_done(spec, outcome.state, progress, stop, on_acquired)
                break
        outcome.map = read_map(run, spec.config.data.test_split)
    except RunBusy as err:
        outcome.status, outcome.error = "held", str(err)
        log(f"{head}: skipped, {err}")
    except RunStopped as err:
        outcome.status, outcome.error = "stopped", str(err)
        log(f"{head}: {err}")
    except KitError as err:
        outcome.status, outcome.error = "failed", str(err)
        log(f"{head}: FAILED: {err}")
    except Exception as err:  # a bug or a crash (e.g. out of memory): report, keep sweeping
        outcome.status = "failed"
        outcome.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        log(f"{head}: FAILED with an unexpected error:\n{traceback.format_exc().rstrip()}")
    outcome.seconds = time.perf_counter() - start
    return outcome


# --------------------------------------------------------------------------- the matrix


def resolve_matrix(matrix: Matrix | dict[str, Any] | str | Path) -> tuple[Matrix, Path | None]:
    """(matrix, its file) from a path, a plain dict or a :class:`Matrix`. A dict is written to
    ``<output>/matrix.yaml`` (child processes and jobs read the matrix from a file); a hand-built
    :class:`Matrix` has no file."""
    import yaml

    from dsod_depth.fileio import write_text_atomic

    if isinstance(matrix, (str, Path)):
        return load_matrix(matrix), Path(matrix)
    if isinstance(matrix, dict):
        checked = matrix_from_dict(matrix)
        path = checked.output / "matrix.yaml"
        text = yaml.safe_dump(matrix, sort_keys=False)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_text_atomic(path, text)
        return dataclasses.replace(checked, source=str(path)), path
    return matrix, None


def specs_for(matrix: Matrix, *, gpus_per_run: int = 1, only: str | None = None) -> list[RunSpec]:
    """The runs of the matrix (or the one named ``only``, e.g. ``nyudv2/hha_scratch_s0``). With K GPUs
    per run (DDP), each run's ``optim.accumulate`` is divided by K so the effective batch stays the
    config's; refused with the numbers when it does not divide."""
    specs = matrix.expand()
    if only is not None:
        chosen = [s for s in specs if s.name == only]
        if not chosen:
            names = ", ".join(s.name for s in specs[:4]) + (", ..." if len(specs) > 4 else "")
            raise KitError(f"{matrix.source} has no run {only!r}; its runs are named like {names}")
        specs = chosen
    if gpus_per_run == 1:
        return specs
    out = []
    for spec in specs:
        accumulate = spec.config.optim.accumulate
        if accumulate % gpus_per_run:
            raise KitError(
                f"--gpus-per-run {gpus_per_run} does not divide optim.accumulate = {accumulate} of "
                f"{spec.name} (effective batch {spec.config.train.batch_size} × {accumulate}); choose a "
                f"divisor of {accumulate} or change optim.accumulate"
            )
        overrides = (*spec.overrides, f"optim.accumulate={accumulate // gpus_per_run}")
        config = load_config(spec.config_path, list(overrides))
        out.append(dataclasses.replace(spec, overrides=overrides, config=config))
    return out


def run_command(
    matrix_file: Path,
    spec: RunSpec,
    *,
    gpus_per_run: int = 1,
    threads: int | None = None,
    python: str | None = None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The command that runs one run of a matrix file (``sweep MATRIX --run NAME``), under
    ``torchrun --standalone`` when it has several GPUs."""
    python = python or sys.executable
    args = ["sweep", str(matrix_file), "--run", spec.name, "--no-progress"]
    if gpus_per_run > 1:
        args += ["--gpus-per-run", str(gpus_per_run)]
        launcher = [
            python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes",
            "1",
            "--nproc_per_node",
            str(gpus_per_run),
            "-m",
            "--",  # torchrun's parser would read the script's --run as an abbreviation of its --run-path
            "dsod_depth",
        ]
    else:
        launcher = [python, "-m", "dsod_depth"]
    if threads is not None:
        args += ["--threads-per-run", str(threads)]
    return [*launcher, *args, *extra]


def shell_command(argv: list[str], env: dict[str, str] | None = None) -> str:
    prefix = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    return " ".join([*prefix, *(shlex.quote(a) for a in argv)])


def pending_specs(specs: list[RunSpec]) -> list[RunSpec]:
    """The runs not yet done (read without locks: a plan for launchers, re-checked by each run)."""
    out = []
    for spec in specs:
        try:
            if run_state(spec).kind != "done":
                out.append(spec)
        except KitError:
            out.append(spec)  # reported by the run itself
    return out


# --------------------------------------------------------------------------- one run as a process


def run_single(
    matrix: Matrix | dict[str, Any] | str | Path,
    name: str,
    *,
    gpus_per_run: int = 1,
    threads: int | None = None,
    progress: bool = True,
    log_to_run: bool = False,
    report: str | Path | None = None,
    log: Log = log_line,
) -> RunOutcome:
    """``sweep MATRIX --run NAME``: bring the one run ``NAME`` to done, in this process.

    What each launcher executes. SIGINT/SIGTERM (Ctrl-C, a scheduler's stop) make the trainer save a
    checkpoint at the end of its current step and stop (a second signal interrupts at once).
    ``log_to_run`` sends this process's output to ``RUN_DIR/train.log`` from the moment it holds the
    run; ``report`` receives the outcome as JSON (for the launcher that started this process).
    """
    import signal

    import torch

    from dsod_depth.fileio import write_text_atomic

    matrix, _ = resolve_matrix(matrix)
    (spec,) = specs_for(matrix, gpus_per_run=gpus_per_run, only=name)
    if threads is not None:
        torch.set_num_threads(threads)
    requested = []

    def ask_to_stop(signum, frame):  # noqa: ARG001 (signal handler signature)
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    previous = {sig: signal.signal(sig, ask_to_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        outcome = execute_run(
            spec,
            progress=progress,
            stop=lambda: bool(requested),
            log=log,
            on_acquired=redirect_output if log_to_run else None,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if report is not None:
        record = {
            **outcome.as_dict(),
            "state": outcome.state.kind,
            "step": outcome.state.step,
            "threads": torch.get_num_threads(),
        }
        write_text_atomic(report, json.dumps(record) + "\n")
    return outcome


def child_outcome(
    spec: RunSpec, report: Path, code: int, *, stop_asked: bool = False, last_line: str = ""
) -> RunOutcome:
    """The outcome a ``sweep --run`` child process wrote to ``report``, or, when it wrote none (it
    died, or torchrun stood between), one made from its exit code: :data:`EXIT_HELD`,
    :data:`EXIT_STOPPED`, a signal, or 0 with the run's metrics present. A child asked to stop that
    did not finish is ``stopped`` whatever the code (torchrun exits 1 after passing a signal on).
    ``last_line``: the last thing it printed, for the error."""
    try:
        return RunOutcome.from_dict(spec, json.loads(report.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError):
        pass
    run_map = read_map(RunDir(spec.run_dir), spec.config.data.test_split)
    status = {EXIT_HELD: "held", EXIT_STOPPED: "stopped"}.get(code, "failed")
    if code == 0 and run_map is not None:
        status = "trained"
    elif stop_asked and run_map is None:
        status = "stopped"
    error = last_line or f"exit code {code}"
    if code < 0:
        error = f"killed by signal {-code}" + (f" after: {last_line}" if last_line else "")
    return RunOutcome(spec, status, RunState("new"), run_map, "" if status == "trained" else error)


def exit_code(outcome: RunOutcome) -> int:
    """0 finished, 1 failed, :data:`EXIT_HELD`, :data:`EXIT_STOPPED` (what launchers read)."""
    return {"failed": 1, "held": EXIT_HELD, "stopped": EXIT_STOPPED}.get(outcome.status, 0)


def redirect_output(run: RunDir) -> None:
    """Point this process's stdout and stderr (file descriptors 1 and 2, so C libraries and child
    processes follow) at ``RUN_DIR/train.log``, appended to across resumes."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(run.train_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # The header of this process's part of the log: when, what command, which process.
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    header = f"==== {stamp} {' '.join(sys.argv)} (pid {os.getpid()})\n"
    os.write(fd, header.encode("utf-8", "surrogateescape"))
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # The trainer's logged records (losses, lr, throughput, evaluations), one line each.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    train_log = logging.getLogger("dsod_depth.train")
    train_log.addHandler(handler)
    train_log.setLevel(logging.INFO)
