"""``sweep --launcher slurm``: one SLURM job per pending run, through submitit.

:func:`submit_sweep` submits one job per run of the matrix that is not yet done, as one job array;
each job is a :class:`SweepJob`, which brings its run to done through
:func:`~dsod_depth.experiments.runs.execute_run` under the run folder's lock, exactly as every other
launcher does (a run finished or held elsewhere is skipped). Logs go to ``<output>/slurm/<job id>/``
until the job holds its run, then to ``RUN_DIR/train.log``.

Time limits and preemption: submitit asks SLURM to send its signal (SIGUSR2 by default)
:data:`SIGNAL_DELAY_S` seconds before the limit, and installs a handler for it that checkpoints
the job and requeues it. A :class:`SweepJob` puts its own handler in front of that one, which only
records the signal; the trainer polls it after every optimiser step, saves ``checkpoints/last.pt``
at the end of that step and stops; only then is submitit's handler called, which requeues the same
:class:`SweepJob` and exits. The requeued job finds the run at ``resume`` and continues from that
step, so an interrupted run ends bit-identical to an uninterrupted one (on CPU; as reproducible as
the hardware on GPU). Why the detour: submitit's handler runs wherever the signal lands, in the
middle of a forward pass or an optimiser update, and a checkpoint taken there (or the last periodic
one) would not hold the state of any step boundary, so the resume would not be exact or would
repeat steps. With several GPUs per run the job runs ``torchrun`` as a child and forwards the signal
to it as SIGTERM; torchrun passes it to every rank, which ``sweep --run`` treats the same way (all
ranks agree on the step to stop at), and kills ranks that have not exited after its shutdown timeout
(30 s by default), in which case the requeued job resumes from the last periodic checkpoint instead.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsod_depth.engine.run_dir import RunDir
from dsod_depth.errors import KitError
from dsod_depth.experiments.matrix import Matrix
from dsod_depth.experiments.runs import (
    Log,
    describe_state,
    log_line,
    pending_specs,
    resolve_matrix,
    run_command,
    run_state,
    shell_command,
    specs_for,
)
from dsod_depth.experiments.slurm_job import RunFailed, SweepJob

__all__ = [
    "SlurmOptions",
    "SLURM_FLAGS",
    "SweepJob",
    "RunFailed",
    "submit_sweep",
    "job_parameters",
    "DEFAULT_TIME_MIN",
    "SIGNAL_DELAY_S",
    "MAX_TIME_LIMITS",
]

# Command-line flags that only mean something with --launcher slurm (refused without it).
SLURM_FLAGS = ("partition", "time", "cpus_per_task", "mem", "account", "qos", "constraint", "slurm_set")

# Time limit of a job without --time. submitit would otherwise ask for 5 minutes; a day is within
# the limits of most partitions, and a run longer than that is requeued and resumed exactly.
DEFAULT_TIME_MIN = 24 * 60

# Seconds between SLURM's signal and the time limit: enough for the step under way to end and
# last.pt to be written (a DSOD step at batch 128 takes seconds, a checkpoint a few more).
SIGNAL_DELAY_S = 120

# How many time limits a run may reach before submitit stops requeueing it. Each requeue resumes at
# the step the last one stopped at, so a long run on a short partition may need many; submitit's
# default (3) would abandon a 4-day run on 1-day partitions.
MAX_TIME_LIMITS = 100

# submitit SLURM parameters that --slurm-set may not change: each has its own flag or is fixed by
# how a run uses its job (one node, one task; torchrun inside the job starts the ranks).
_NOT_SETTABLE = {
    "job_name": "the job name is the matrix name",
    "partition": "use --partition",
    "time": "use --time",
    "cpus_per_task": "use --cpus-per-task",
    "mem": "use --mem",
    "account": "use --account",
    "qos": "use --qos",
    "constraint": "use --constraint",
    "gpus_per_node": "use --gpus-per-run",
    "num_gpus": "use --gpus-per-run",
    "nodes": "a run uses one node",
    "ntasks_per_node": "a job runs one task (torchrun inside it starts the ranks)",
}
_ADDITIONAL = "additional_parameters."  # --slurm-set additional_parameters.KEY=V: any sbatch option


@dataclass(frozen=True)
class SlurmOptions:
    """Job parameters of ``sweep --launcher slurm`` (None: the cluster's default)."""

    partition: str | None = None
    time_min: int | None = None  # wall-clock limit of one job, minutes (requeued past it)
    cpus_per_task: int | None = None
    mem: str | None = None  # e.g. 64G
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # --slurm-set key=value, passed to submitit


# --------------------------------------------------------------------------- submission


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise KitError("--launcher slurm needs submitit: pip install 'dsod-depth[slurm]'") from None
    return submitit


def submit_sweep(
    matrix: Matrix | dict[str, Any] | str | Path,
    options: SlurmOptions,
    *,
    dry_run: bool = False,
    gpus_per_run: int = 1,
    threads_per_run: int | None = None,
    log: Log = log_line,
    executor: Any = None,
) -> list:
    """Submit one SLURM job per pending run of ``matrix`` (one job array); returns submitit's jobs.

    Args:
        matrix: the path of a matrix file, or its plain dict (written to ``<output>/matrix.yaml``);
            jobs read the matrix from that file.
        options: the job parameters (:func:`job_parameters` maps them to submitit's).
        dry_run: log the job parameters, and per pending run its state and the command its job runs
            (single-GPU jobs run its equivalent in-process); make no executor, write nothing.
        gpus_per_run: GPUs of each job; above 1 the job runs the run under torchrun.
        threads_per_run: CPU threads of each run (of each rank); default ``--cpus-per-task``.
        log: receives one line per submitted job (job id, run) and where the logs go.
        executor: a submitit executor to submit to (tests pass a local one); default an
            ``AutoExecutor`` on ``<output>/slurm/%j``, refused where SLURM's sbatch is not found.
            An ``AutoExecutor`` receives every parameter; any other executor the shared ones only.

    A mistake (no matrix file, an unknown ``--slurm-set`` key, a parameter submitit refuses, no
    SLURM here) raises :class:`KitError` before anything is submitted.
    """
    submitit = _import_submitit()
    if gpus_per_run < 1:
        raise KitError(f"--gpus-per-run must be at least 1, got {gpus_per_run}")
    if threads_per_run is not None and threads_per_run < 1:
        raise KitError(f"--threads-per-run must be at least 1, got {threads_per_run}")
    matrix, matrix_file = resolve_matrix(matrix)
    if matrix_file is None:
        raise KitError("--launcher slurm needs a matrix file (jobs read the matrix from it)")
    params = job_parameters(options, name=matrix.name, gpus_per_run=gpus_per_run)
    specs = specs_for(matrix, gpus_per_run=gpus_per_run)
    pending = pending_specs(specs)
    if dry_run:
        _log_plan(matrix, Path(matrix_file), pending, len(specs), params, gpus_per_run, threads_per_run, log)
        return []
    if not pending:
        log(f"sweep {matrix.name}: all {len(specs)} runs are done; nothing to submit")
        return []
    folder = matrix.output / "slurm" / "%j"
    executor = executor if executor is not None else _slurm_executor(submitit, folder)
    _apply_parameters(executor, params, submitit)
    matrix_path = str(Path(matrix_file).resolve())
    calls = [SweepJob(matrix_path, spec.name, gpus_per_run, threads_per_run) for spec in pending]
    jobs = _submit(executor, calls, submitit)
    log(f"sweep {matrix.name}: {len(jobs)} jobs submitted, one per pending run ({len(specs)} in all)")
    for job, spec in zip(jobs, pending):
        log(f"job {job.job_id}: {spec.name} (log: {job.paths.stdout}, then {RunDir(spec.run_dir).train_log})")
    log(f"running the same command again submits only the runs not done by then (logs: {folder.parent})")
    return jobs


def job_parameters(options: SlurmOptions, *, name: str, gpus_per_run: int = 1) -> dict[str, Any]:
    """The parameters of every job, as ``submitit.AutoExecutor.update_parameters`` takes them:
    shared ones unprefixed, SLURM ones prefixed ``slurm_``. ``--slurm-set`` keys are checked
    against submitit's SLURM parameters (an unknown key is a :class:`KitError`)."""
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": options.time_min if options.time_min is not None else DEFAULT_TIME_MIN,
        "nodes": 1,
        "tasks_per_node": 1,  # torchrun inside the job starts the K ranks
        "gpus_per_node": gpus_per_run,
        "slurm_signal_delay_s": SIGNAL_DELAY_S,
    }
    if options.time_min is not None and options.time_min < 1:
        raise KitError(f"--time must be at least 1 minute, got {options.time_min}")
    if options.cpus_per_task is not None:
        params["cpus_per_task"] = options.cpus_per_task
    slurm_only = {
        "partition": options.partition, "mem": options.mem, "account": options.account,
        "qos": options.qos, "constraint": options.constraint,
    }  # fmt: skip
    params.update({f"slurm_{key}": value for key, value in slurm_only.items() if value is not None})
    params.update(_slurm_set(options.extra, _import_submitit()))
    return params


def _slurm_set(extra: dict[str, str], submitit) -> dict[str, Any]:
    """``--slurm-set`` entries as ``slurm_*`` parameters; sbatch options submitit does not name go
    through ``additional_parameters.KEY=VALUE``."""
    known = submitit.SlurmExecutor._valid_parameters()  # the keyword arguments of its sbatch writer
    params: dict[str, Any] = {}
    additional: dict[str, Any] = {}
    for key, text in extra.items():
        key = key.removeprefix("slurm_")
        if key.startswith(_ADDITIONAL) and len(key) > len(_ADDITIONAL):
            additional[key[len(_ADDITIONAL) :]] = text
        elif key in _NOT_SETTABLE:
            raise KitError(f"--slurm-set {key}: {_NOT_SETTABLE[key]}")
        elif key not in known or key == "additional_parameters":
            names = ", ".join(sorted(k for k in known - set(_NOT_SETTABLE) if k != "additional_parameters"))
            raise KitError(
                f"--slurm-set {key}: not a submitit SLURM parameter (known: {names}); any other sbatch "
                f"option: --slurm-set {_ADDITIONAL}{key}=VALUE"
            )
        else:
            params[f"slurm_{key}"] = _slurm_value(key, text)
    if additional:
        params["slurm_additional_parameters"] = additional
    return params


def _slurm_value(key: str, text: str) -> Any:
    """A ``--slurm-set`` value in the type submitit expects for ``key``."""
    if key in ("setup", "teardown"):  # shell lines before / after the job's command
        return [text]
    if key == "srun_args":
        return shlex.split(text)
    if text.isdigit():
        return int(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _slurm_executor(submitit, folder: Path):
    """submitit's executor for this cluster; refused where there is no SLURM, because submitit
    would quietly run every job on this machine instead."""
    if shutil.which("sbatch") is None:
        raise KitError(
            "--launcher slurm: SLURM's sbatch was not found on this machine; run on a SLURM login "
            "node, or use --jobs N (local processes) or --print-commands (any other scheduler)"
        )
    try:
        return submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=MAX_TIME_LIMITS)
    except RuntimeError as err:  # sbatch but no srun
        raise KitError(f"--launcher slurm: {str(err).splitlines()[0]}") from None


def _apply_parameters(executor, params: dict[str, Any], submitit) -> None:
    """Set the job parameters; what submitit refuses becomes one :class:`KitError` line."""
    if not isinstance(executor, submitit.AutoExecutor):
        params = {key: value for key, value in params.items() if not key.startswith("slurm_")}
    try:
        executor.update_parameters(**params)
    except (NameError, ValueError, TypeError, AssertionError, RuntimeError) as err:
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise KitError(f"--launcher slurm: submitit refused the job parameters: {lines[0]}") from None


def _submit(executor, calls: list[SweepJob], submitit) -> list:
    """One job array; sbatch's refusal (a partition, account or limit the cluster does not have)
    becomes one :class:`KitError` line with sbatch's reason."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    try:
        return executor.submit_array(calls)
    except (FailedJobError, FailedSubmissionError) as err:
        lines = [line for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
        raise KitError(f"--launcher slurm: sbatch refused the jobs: {lines[-1]}") from None


def _log_plan(matrix, matrix_file, pending, total, params, gpus_per_run, threads, log: Log) -> None:
    shown = " ".join(f"{key}={value}" for key, value in params.items())
    log(f"sweep {matrix.name}: {len(pending)} of {total} runs pending; would submit one SLURM job each")
    log(f"job parameters (every job): {shown}")
    width = len(str(len(pending)))
    for index, spec in enumerate(pending, start=1):
        try:
            what = describe_state(run_state(spec), spec.config.train.iters)
        except KitError as err:
            what = f"would fail: {err}"
        argv = run_command(
            matrix_file, spec, gpus_per_run=gpus_per_run, threads=threads, extra=("--log-to-run",)
        )
        log(f"[{index:>{width}}/{len(pending)}] {spec.name}: {what}")
        log(f"    {shell_command(argv)}")
    log("dry run: nothing submitted")
