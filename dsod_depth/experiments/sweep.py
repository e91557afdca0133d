"""Running a matrix of experiments, resumably (``dsod-depth sweep``).

Each run of the matrix (:mod:`dsod_depth.experiments.matrix`) is in one of these states, decided
from its folder alone, so that a sweep can be stopped at any moment and started again:

* ``new`` — no ``checkpoints/last.pt``: train from the start;
* ``resume`` — ``last.pt`` before ``train.iters``: continue with the trainer's exact resume;
* ``evaluate`` — trained to ``train.iters`` but no test metrics: evaluate ``last.pt``;
* ``done`` — trained to ``train.iters`` and ``eval/<test split>/metrics.json`` present: skipped;
* ``conflict`` — the folder holds a run of a different config (e.g. the matrix changed since):
  never overwritten; reported as failed.

A run that fails is reported and the sweep goes on with the next one; the sweep ends with a
summary (also written to ``<output>/sweep.json``) and :attr:`SweepResult.ok` is False when any
run failed. Ctrl-C stops the sweep; running it again resumes.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsod_depth.config import ExperimentConfig, load_config, to_dict
from dsod_depth.errors import KitError
from dsod_depth.experiments.matrix import Matrix, RunSpec, load_matrix, matrix_from_dict

__all__ = ["RunState", "RunOutcome", "SweepResult", "run_state", "run_sweep", "metrics_path"]

Log = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


def metrics_path(run_dir: Path, config: ExperimentConfig) -> Path:
    """Where the trainer's final evaluation writes the test metrics of a run."""
    return Path(run_dir) / "eval" / config.data.test_split / "metrics.json"


@dataclass(frozen=True)
class RunState:
    kind: str  # new | resume | evaluate | done | conflict
    step: int = 0  # optimiser steps in checkpoints/last.pt (0 when there is none)
    detail: str = ""  # why, for conflict


@dataclass
class RunOutcome:
    spec: RunSpec
    status: str  # trained | resumed | evaluated | skipped | failed | planned
    state: RunState
    map: float | None = None  # test mAP (fraction) when the run is finished
    error: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "run_dir": str(spec.run_dir), "dataset": spec.dataset, "modality": spec.modality,
            "init": spec.init, "seed": spec.seed, "status": self.status, "map": self.map,
            "error": self.error, "seconds": round(self.seconds, 3),
        }  # fmt: skip


@dataclass
class SweepResult:
    matrix: Matrix
    outcomes: list[RunOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def finished_run_dirs(self) -> list[Path]:
        """Run folders with test metrics (what ``compare`` takes)."""
        return [o.spec.run_dir for o in self.outcomes if o.map is not None]


def _config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs, as 'key: a → b'."""
    out = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            out += _config_differences(left, right, f"{prefix}{key}.")
        elif left != right:
            out.append(f"{prefix}{key}: {left!r} → {right!r}")
    return out


def run_state(spec: RunSpec) -> RunState:
    """The state of a matrix cell's folder (see :func:`folder_state`)."""
    return folder_state(spec.run_dir, spec.config)


def folder_state(run_dir: Path, config: ExperimentConfig) -> RunState:
    """The state of a run folder meant for ``config`` (see the module docstring). Reads ``config.yaml``
    and the step of ``checkpoints/last.pt``; an unreadable checkpoint raises :class:`KitError`."""
    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file():
        return RunState("new")
    stored_path = run_dir / "config.yaml"
    if not stored_path.is_file():
        return RunState("conflict", detail=f"{last} exists but config.yaml is missing")
    diffs = _config_differences(to_dict(load_config(stored_path)), to_dict(config))
    if diffs:
        more = f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else ""
        return RunState("conflict", detail=f"it holds a run of another config: {'; '.join(diffs[:3])}{more}")
    from dsod_depth.engine.checkpoint import load_checkpoint

    step = int(load_checkpoint(last).get("step", -1))
    iters = config.train.iters
    if step < 0 or step > iters:
        return RunState("conflict", step, f"last.pt is at step {step}, outside 0..{iters}")
    if step < iters:
        return RunState("resume", step)
    if metrics_path(run_dir, config).is_file():
        return RunState("done", step)
    return RunState("evaluate", step)


def _read_map(spec: RunSpec) -> float | None:
    path = metrics_path(spec.run_dir, spec.config)
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["map"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _describe(state: RunState, iters: int) -> str:
    return {
        "new": f"new, train {iters:,} steps",
        "resume": f"interrupted, resume at step {state.step:,}/{iters:,}",
        "evaluate": f"trained {state.step:,} steps, evaluate",
        "done": f"done ({state.step:,} steps)",
        "conflict": f"conflict: {state.detail}",
    }[state.kind]


def _execute(spec: RunSpec, state: RunState, progress: bool) -> str:
    """Bring one run to ``done``; returns the outcome status."""
    from dsod_depth.engine import evaluator, trainer

    if state.kind == "conflict":
        raise KitError(
            f"{spec.run_dir}: {state.detail}; delete the folder, or change the matrix 'output', "
            "to train this run"
        )
    if state.kind in ("new", "resume"):
        # The trainer evaluates on data.test_split after its last step (eval/<split>/metrics.json).
        trainer.train(spec.config, spec.run_dir, resume=state.kind == "resume", progress=progress)
        return "trained" if state.kind == "new" else "resumed"
    if state.kind == "evaluate":
        evaluator.evaluate_checkpoint(
            spec.run_dir, split=spec.config.data.test_split, metric=spec.config.train.eval_metric,
            device=spec.config.train.device, progress=progress,
        )  # fmt: skip
        return "evaluated"
    return "skipped"


def run_sweep(
    matrix: Matrix | dict[str, Any] | str | Path,
    *,
    dry_run: bool = False,
    progress: bool = True,
    log: Log = _print,
) -> SweepResult:
    """Run (or, with ``dry_run``, list) every run of ``matrix``; finished runs are skipped.

    Args:
        matrix: a :class:`Matrix`, the plain dict of a matrix file, or the path of one.
        dry_run: print each run's folder and state (new / resume at step k / done / conflict)
            without training; runs that would fail (conflicts, unreadable checkpoints) count as failed.
        progress: show the trainer's progress bars.
        log: receives each line of the plan, the per-run headers and the summary.

    Returns a :class:`SweepResult`; ``result.ok`` is False when a run failed. A matrix mistake (unknown
    key, missing config file, bad override) raises :class:`KitError` before any run starts.
    """
    if isinstance(matrix, (str, Path)):
        matrix = load_matrix(matrix)
    elif isinstance(matrix, dict):
        matrix = matrix_from_dict(matrix)
    specs = matrix.expand()
    result = SweepResult(matrix)
    width = len(str(len(specs)))
    verb = "plan of" if dry_run else "running"
    log(f"sweep {matrix.name}: {verb} {len(specs)} runs into {matrix.output}")
    for index, spec in enumerate(specs, start=1):
        head = f"[{index:>{width}}/{len(specs)}] {spec.name}"
        start = time.perf_counter()
        try:
            state = run_state(spec)
        except KitError as err:
            state = RunState("conflict", detail=str(err))
        outcome = RunOutcome(spec, "planned", state)
        if dry_run:
            outcome.status = "failed" if state.kind == "conflict" else "planned"
            outcome.error = state.detail
            outcome.map = _read_map(spec) if state.kind == "done" else None
            score = f", test mAP {100 * outcome.map:.1f}" if outcome.map is not None else ""
            log(f"{head}: {_describe(state, spec.config.train.iters)}{score} [{spec.config_path}]")
        else:
            log(f"{head}: {_describe(state, spec.config.train.iters)}")
            try:
                outcome.status = _execute(spec, state, progress)
                outcome.map = _read_map(spec)
            except KitError as err:
                outcome.status, outcome.error = "failed", str(err)
                log(f"{head}: FAILED: {err}")
            except Exception as err:  # a bug or a crash (e.g. out of memory): report, keep sweeping
                outcome.status = "failed"
                outcome.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                log(f"{head}: FAILED with an unexpected error:\n{traceback.format_exc().rstrip()}")
        outcome.seconds = time.perf_counter() - start
        result.outcomes.append(outcome)
    for line in summary_lines(result, dry_run=dry_run):
        log(line)
    if not dry_run:
        _write_summary(result)
    return result


def summary_lines(result: SweepResult, *, dry_run: bool = False) -> list[str]:
    """The end of a sweep: one line per run (status, test mAP, minutes) and the totals; for a dry run
    only the number of runs in each state."""
    counts: dict[str, int] = {}
    for o in result.outcomes:
        key = o.state.kind if dry_run else o.status
        counts[key] = counts.get(key, 0) + 1
    total = f"{len(result.outcomes)} runs: " + ", ".join(f"{n} {key}" for key, n in sorted(counts.items()))
    if dry_run:
        return [total, *(f"would fail: {o.spec.name}: {o.error}" for o in result.failed)]
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
    if result.finished_run_dirs:
        out = result.matrix.output
        lines.append(f"compare the finished runs: dsod-depth compare {out} --out {out / 'comparison.md'}")
    return lines


def _write_summary(result: SweepResult) -> None:
    from dsod_depth.evaluation import write_json_atomic

    write_json_atomic(
        result.matrix.output / "sweep.json",
        {"matrix": result.matrix.source, "runs": [o.as_dict() for o in result.outcomes]},
    )
