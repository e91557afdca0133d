"""Running a matrix of experiments, resumably and safely at any scale (``dsod-depth sweep``).

Every run goes through :func:`~dsod_depth.experiments.runs.execute_run`, which holds the run
folder's lock and reads its state under it (:mod:`.runs`), so any number of sweeps on one matrix —
in one process, in ``--jobs`` children, on several machines sharing the run folders, as SLURM jobs —
cooperate: each takes the runs it can lock, skips those another process holds (``held``), and
together they train every run exactly once. Launchers:

* in this process, one run after the other (the default);
* ``--jobs N``: N child processes at once on this machine (:mod:`.local`), each pinned to its own
  GPU(s) or its share of the CPU threads;
* ``--launcher slurm``: one SLURM job per pending run through submitit (:mod:`.slurm`);
* ``--print-commands``: one shell command per pending run, for any other scheduler.

A failed run is reported and the sweep goes on; the sweep ends with a summary, merged into
``<output>/sweep.json`` (several sweeps on one matrix each add what they did), and
:attr:`SweepResult.ok` is False when any run failed or the sweep was interrupted. Ctrl-C stops the
sweep with every run resumable; running it again resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsod_depth.engine.run_dir import RunDir, RunState, read_map
from dsod_depth.errors import KitError
from dsod_depth.experiments.matrix import Matrix, RunSpec
from dsod_depth.experiments.runs import (
    Log,
    RunOutcome,
    describe_state,
    execute_run,
    log_line,
    pending_specs,
    resolve_matrix,
    run_command,
    run_state,
    shell_command,
    specs_for,
)

__all__ = [
    "RunState",
    "RunOutcome",
    "SweepResult",
    "run_state",
    "run_sweep",
    "summary_lines",
    "print_commands",
]


@dataclass
class SweepResult:
    matrix: Matrix
    outcomes: list[RunOutcome] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    @property
    def finished_run_dirs(self) -> list[Path]:
        """Run folders with test metrics (what ``compare`` takes)."""
        return [o.spec.run_dir for o in self.outcomes if o.map is not None]


# --------------------------------------------------------------------------- sweeps


def run_sweep(
    matrix: Matrix | dict[str, Any] | str | Path,
    *,
    jobs: int = 1,
    gpus: list[int] | None = None,
    gpus_per_run: int = 1,
    threads_per_run: int | None = None,
    dry_run: bool = False,
    progress: bool = True,
    log: Log = log_line,
) -> SweepResult:
    """Run (or, with ``dry_run``, list) every run of ``matrix``; finished runs are skipped.

    Args:
        matrix: a :class:`Matrix`, the plain dict of a matrix file, or the path of one.
        jobs: runs at once on this machine; above 1 each run is a child process (:mod:`.local`).
        gpus: GPU indices to share out (default: every visible GPU when ``jobs`` > 1).
        gpus_per_run: GPUs per run (DDP under torchrun; ``optim.accumulate`` is divided by it).
        threads_per_run: CPU threads of each run (default: the cores divided by ``jobs``).
        dry_run: log each run's folder and state (new / resume at step k / done / conflict)
            without training; runs that would fail (conflicts, unreadable checkpoints) count as failed.
        progress: show the trainer's progress bars (in-process runs only).
        log: receives each line of the plan, the per-run headers and the summary.

    Returns a :class:`SweepResult`; ``result.ok`` is False when a run failed. A matrix mistake (unknown
    key, missing config file, bad override) or a bad placement raises :class:`KitError` before any run
    starts.
    """
    from dsod_depth.experiments import local  # subprocess machinery only when runs go to children

    matrix, matrix_file = resolve_matrix(matrix)
    placement = local.plan(jobs=jobs, gpus=gpus, gpus_per_run=gpus_per_run, threads_per_run=threads_per_run)
    specs = specs_for(matrix, gpus_per_run=gpus_per_run)
    result = SweepResult(matrix)
    if dry_run:
        _dry_run(result, specs, log)
        return result
    if not placement.in_process and matrix_file is None:
        raise KitError("a matrix built in code runs with --jobs only when given as a dict or a file")
    log(f"sweep {matrix.name}: running {len(specs)} runs into {matrix.output} ({placement.describe()})")
    if placement.in_process:
        width = len(str(len(specs)))
        for index, spec in enumerate(specs, start=1):
            head = f"[{index:>{width}}/{len(specs)}] {spec.name}"
            result.outcomes.append(execute_run(spec, progress=progress, log=log, head=head))
    else:
        result.outcomes, result.interrupted = local.run_children(matrix_file, specs, placement, log=log)
    for line in summary_lines(result):
        log(line)
    write_summary(result)
    return result


def _dry_run(result: SweepResult, specs: list[RunSpec], log: Log) -> None:
    log(f"sweep {result.matrix.name}: plan of {len(specs)} runs into {result.matrix.output}")
    width = len(str(len(specs)))
    for index, spec in enumerate(specs, start=1):
        try:
            state = run_state(spec)
        except KitError as err:
            state = RunState("conflict", detail=str(err))
        outcome = RunOutcome(
            spec, "failed" if state.kind == "conflict" else "planned", state, error=state.detail
        )
        outcome.map = (
            read_map(RunDir(spec.run_dir), spec.config.data.test_split) if state.kind == "done" else None
        )
        score = f", test mAP {100 * outcome.map:.1f}" if outcome.map is not None else ""
        what = describe_state(state, spec.config.train.iters)
        log(f"[{index:>{width}}/{len(specs)}] {spec.name}: {what}{score} [{spec.config_path}]")
        result.outcomes.append(outcome)
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.state.kind] = counts.get(o.state.kind, 0) + 1
    log(f"{len(result.outcomes)} runs: " + ", ".join(f"{n} {key}" for key, n in sorted(counts.items())))
    for o in result.failed:
        log(f"would fail: {o.spec.name}: {o.error}")


def summary_lines(result: SweepResult) -> list[str]:
    """The end of a sweep: one line per run (status, test mAP, minutes) and the totals."""
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    total = f"{len(result.outcomes)} runs: " + ", ".join(f"{n} {key}" for key, n in sorted(counts.items()))
    rows = [("run", "status", "mAP [%]", "min")]
    for o in result.outcomes:
        score = "" if o.map is None else f"{100 * o.map:.1f}"
        rows.append((o.spec.name, o.status, score, f"{o.seconds / 60:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:]))]
        return "  ".join(cells)

    lines = ["", *(line(row) for row in rows), total]
    lines += [f"failed: {o.spec.name}: {o.error}" for o in result.failed]
    if any(o.status == "held" for o in result.outcomes):
        lines.append(
            "held runs belong to other processes (another sweep, a train --resume); rerun the sweep "
            "after they end to see them here"
        )
    if result.interrupted:
        lines.append("interrupted: every run is resumable; run the same command again to go on")
    if result.finished_run_dirs:
        out = result.matrix.output
        lines.append(f"compare the finished runs: dsod-depth compare {out} --out {out / 'comparison.md'}")
    return lines


def write_summary(result: SweepResult) -> None:
    """Merge this sweep's outcomes into ``<output>/sweep.json`` (under a lock: several sweeps on one
    matrix each add the runs they brought to an end; runs they only saw held or pending keep the
    record another process wrote)."""
    from filelock import FileLock

    from dsod_depth.evaluation import write_json_atomic

    path = result.matrix.output / "sweep.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(".sweep.json.lock")), timeout=120, preserve_lock_file=True):
        previous: dict[str, dict[str, Any]] = {}
        try:
            for record in json.loads(path.read_text(encoding="utf-8")).get("runs", []):
                previous[record["run_dir"]] = record
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            pass  # none yet, or unreadable: this sweep's records replace it
        mine = {
            str(o.spec.run_dir): o.as_dict() for o in result.outcomes if o.status not in ("held", "pending")
        }
        order = [str(o.spec.run_dir) for o in result.outcomes]
        order += [key for key in previous if key not in order]
        runs = [mine.get(key) or previous.get(key) for key in order]
        write_json_atomic(path, {"matrix": result.matrix.source, "runs": [r for r in runs if r is not None]})


def print_commands(
    matrix: Matrix | dict[str, Any] | str | Path,
    *,
    gpus_per_run: int = 1,
    threads_per_run: int | None = None,
    log: Log = log_line,
) -> list[str]:
    """One shell command per pending run (``sweep MATRIX --run NAME``), for any scheduler; runs
    nothing. Each command is safe to run anywhere that sees the run folders: it takes the run's lock."""
    matrix, matrix_file = resolve_matrix(matrix)
    if matrix_file is None:
        raise KitError("--print-commands needs a matrix file")
    specs = pending_specs(specs_for(matrix, gpus_per_run=gpus_per_run))
    lines = []
    for spec in specs:
        argv = run_command(
            matrix_file, spec, gpus_per_run=gpus_per_run, threads=threads_per_run, python="python"
        )
        lines.append(shell_command(argv))
    for line in lines:
        log(line)
    return lines
