"""``sweep --launcher slurm``: jobs through submitit's local executor train what an in-process sweep
trains, bit for bit, also across a timeout signal, checkpoint and requeue; the default executor
writes the sbatch array the options ask for; dry runs and bad inputs submit and create nothing."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch.distributed.run import get_args_parser

from dsod_depth.cli import build_parser, main
from dsod_depth.engine.checkpoint import load_checkpoint
from dsod_depth.engine.run_dir import read_metrics_log
from dsod_depth.errors import KitError
from dsod_depth.experiments.slurm import SIGNAL_DELAY_S, SlurmOptions, SweepJob, submit_sweep
from dsod_depth.experiments.sweep import run_sweep
from tests.engine.conftest import write_config

submitit = pytest.importorskip("submitit")

RGB, DEPTH = "rooms/rgb_scratch_s0", "rooms/depth_scratch_s0"


def write_matrix(
    tmp_path: Path, store: Path, name: str, *, modalities=("rgb",), accumulate=1, **train
) -> Path:
    """A matrix of tiny runs (input 64, batch 2) into ``tmp_path/name``."""
    train = {"iters": 4, "batch_size": 2, "checkpoint_every": 2, **train}
    base = write_config(
        tmp_path / f"{name}_base.yaml", store, data={"modality": "rgb", "input_size": 64},
        optim={"accumulate": accumulate}, train=train,
    )  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "output": str(tmp_path / name), "config": str(base),
        "datasets": {"rooms": str(store)}, "modalities": list(modalities), "inits": ["scratch"], "seeds": [0],
    }))  # fmt: skip
    return path


def run_folder(matrix: Path, run: str) -> Path:
    return Path(yaml.safe_load(matrix.read_text())["output"]) / run


@contextlib.contextmanager
def one_thread():
    """The jobs train on one thread (threads_per_run=1); so does the in-process reference."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def assert_same_weights(a: Path, b: Path, step: int) -> None:
    first, second = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (a, b))
    assert first["step"] == second["step"] == step
    assert first["model"].keys() == second["model"].keys()
    for key, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][key]), key


def final_map(run: Path) -> float:
    return json.loads((run / "eval" / "test" / "metrics.json").read_text())["map"]


def losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics_log(run) if "loss" in r]


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def wait_for_steps(run: Path, steps: int, job, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(losses(run)) < steps:
        assert job.state == "RUNNING", f"the job ended early:\n{job.stdout()}\n{job.stderr()}"
        assert time.monotonic() < deadline, "the job logged no steps in time"
        time.sleep(0.05)


# --------------------------------------------------------------------------- jobs that train


def test_slurm_jobs_train_what_the_in_process_sweep_trains(sweep_store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    matrix = write_matrix(tmp_path, sweep_store, "jobs", modalities=("rgb", "depth"))
    reference = write_matrix(tmp_path, sweep_store, "reference", modalities=("rgb", "depth"))
    # AutoExecutor on the local cluster: the SLURM parameters are checked by submitit (and ignored),
    # the shared ones (time limit, GPUs, tasks) reach the local executor.
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit" / "%j", cluster="local")
    options = SlurmOptions(partition="gpu", mem="1G", extra={"exclude": "node12"})
    lines = []
    jobs = submit_sweep(matrix, options, threads_per_run=1, executor=executor, log=lines.append)
    assert len(jobs) == 2
    assert executor._executor.parameters["timeout_min"] == 24 * 60  # the default time limit
    assert [line.split(":")[0] for line in lines[1:3]] == [f"job {job.job_id}" for job in jobs]
    assert RGB in lines[1] and DEPTH in lines[2]
    results = [job.result() for job in jobs]
    assert [(r["status"], r["seed"]) for r in results] == [("trained", 0), ("trained", 0)]

    with one_thread():
        assert run_sweep(reference, progress=False, log=lambda line: None).ok
    for run in (RGB, DEPTH):
        ours, theirs = run_folder(matrix, run), run_folder(reference, run)
        assert_same_weights(ours, theirs, step=4)
        assert final_map(ours) == final_map(theirs)
        assert "==== " in (ours / "train.log").read_text()  # the run's output went to its train.log
    assert [r["map"] for r in results] == [final_map(run_folder(matrix, run)) for run in (RGB, DEPTH)]
    summary = json.loads((tmp_path / "jobs" / "sweep.json").read_text())
    assert [(Path(r["run_dir"]).name, r["status"]) for r in summary["runs"]] == [
        ("rgb_scratch_s0", "trained"), ("depth_scratch_s0", "trained")
    ]  # fmt: skip

    # Everything done: a second submission submits nothing.
    assert submit_sweep(matrix, options, executor=executor, log=lines.append) == []
    assert "all 2 runs are done; nothing to submit" in lines[-1]


def test_interrupted_job_stops_at_a_step_requeues_and_ends_bit_identical(sweep_store, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # 40 steps and no periodic checkpoint before the end: the only mid-run last.pt is the stop's.
    train = {"iters": 40, "checkpoint_every": 1000}
    matrix = write_matrix(tmp_path, sweep_store, "jobs", **train)
    reference = write_matrix(tmp_path, sweep_store, "reference", **train)
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit" / "%j")
    (job,) = submit_sweep(matrix, SlurmOptions(), threads_per_run=1, executor=executor, log=lambda line: None)
    run = run_folder(matrix, RGB)
    wait_for_steps(run, 3, job)

    # The timeout/preemption signal, as submitit's local controller sends it before the time limit
    # (local.py, Controller.wait) to the job's task. Not job._interrupt(): with the local executor
    # that signals the controller itself, which has no handler for it and would die.
    (task,) = child_pids(int(job.job_id))
    os.kill(task, submitit.JobEnvironment._usr_sig())
    result = job.result()  # the same controller starts the requeued job (exit code 144 = requeue)

    assert result["status"] == "resumed"
    log = (run / "train.log").read_text()
    stopped = [int(line.split("stopped at step ")[1].split("/")[0]) for line in log.splitlines()
               if "stopped at step " in line]  # fmt: skip
    assert len(stopped) == 1 and 3 <= stopped[0] < 40, log
    assert f"interrupted, resume at step {stopped[0]}/40" in log  # last.pt held the stop's step
    stdout = job.stdout() or ""
    assert "Calling checkpoint method" in stdout and "Requeued job" in stdout, stdout
    assert stdout.count("Starting with JobEnvironment") == 2, stdout
    assert job.submission().function == SweepJob(str(matrix.resolve()), RGB, 1, 1)  # what was requeued

    with one_thread():
        assert run_sweep(reference, progress=False, log=lambda line: None).ok
    assert_same_weights(run, run_folder(reference, RGB), step=40)
    assert losses(run) == losses(run_folder(reference, RGB)) and len(losses(run)) == 40
    assert final_map(run) == final_map(run_folder(reference, RGB))


def test_failed_run_fails_its_job(sweep_store, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    matrix = write_matrix(tmp_path, sweep_store, "jobs")
    run = run_folder(matrix, RGB)
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")  # and no config.yaml: a conflict
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit" / "%j")
    (job,) = submit_sweep(matrix, SlurmOptions(), threads_per_run=1, executor=executor, log=lambda line: None)
    with pytest.raises(
        submitit.core.utils.FailedJobError, match="RunFailed: rooms/rgb_scratch_s0: .*config.yaml"
    ):
        job.result()
    summary = json.loads((tmp_path / "jobs" / "sweep.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["failed"]


# --------------------------------------------------------------------------- what is submitted


def fake_slurm(tmp_path: Path, monkeypatch, refusal: str = "") -> Path:
    """``sbatch`` and ``srun`` on PATH: sbatch keeps a copy of the script it is given, and accepts it
    as job 4242 or, given a ``refusal``, prints it and fails as sbatch does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answer = f'echo "{refusal}" >&2; exit 1' if refusal else 'echo "Submitted batch job 4242"'
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {bin_dir}/submitted.sh\n{answer}\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir / "submitted.sh"


def test_default_executor_submits_one_array_with_the_options(sweep_store, tmp_path, monkeypatch, capsys):
    script = fake_slurm(tmp_path, monkeypatch)
    matrix = write_matrix(tmp_path, sweep_store, "jobs", modalities=("rgb", "depth"), accumulate=2)
    code = main([
        "sweep", str(matrix), "--launcher", "slurm", "--partition", "gpu", "--time", "600", "--mem", "64G",
        "--cpus-per-task", "8", "--account", "lab", "--qos", "high", "--constraint", "a100",
        "--gpus-per-run", "2", "--slurm-set", "exclude=node12",
        "--slurm-set", "additional_parameters.reservation=res1",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    flags = {line for line in script.read_text().splitlines() if line.startswith("#SBATCH")}
    expected = {
        "--array=0-1%2", "--job-name=jobs", "--partition=gpu", "--time=600", "--mem=64G",
        "--cpus-per-task=8", "--account=lab", "--qos=high", "--constraint=a100", "--exclude=node12",
        "--reservation=res1", "--gpus-per-node=2", "--ntasks-per-node=1", "--nodes=1",
        f"--signal=USR2@{SIGNAL_DELAY_S}",
    }  # fmt: skip
    assert {f"#SBATCH {flag}" for flag in expected} <= flags, flags
    assert f"--output={tmp_path / 'jobs' / 'slurm'}/%A_%a/%A_%a_0_log.out" in " ".join(flags)
    # One pickled job per run, each the run's SweepJob.
    for index, run in enumerate((RGB, DEPTH)):
        assert f"job 4242_{index}: {run}" in out
        pickled = tmp_path / "jobs" / "slurm" / f"4242_{index}" / f"4242_{index}_submitted.pkl"
        delayed = submitit.helpers.DelayedSubmission.load(pickled)
        assert delayed.function == SweepJob(str(matrix.resolve()), run, 2, None)
        assert delayed._timeout_countdown == 100  # MAX_TIME_LIMITS, not submitit's 3
    assert not run_folder(matrix, RGB).exists()  # jobs make the run folders, not the submission


def test_sbatch_refusal_is_one_kit_error(sweep_store, tmp_path, monkeypatch, capsys):
    fake_slurm(tmp_path, monkeypatch, refusal="sbatch: error: invalid partition specified: nope")
    matrix = write_matrix(tmp_path, sweep_store, "jobs")
    assert main(["sweep", str(matrix), "--launcher", "slurm", "--partition", "nope"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    refusal = "sbatch: error: invalid partition specified: nope"
    assert last == f"error: --launcher slurm: sbatch refused the jobs: {refusal}"
    assert not run_folder(matrix, RGB).exists()


@pytest.mark.parametrize("gpus", [1, 2])
def test_dry_run_prints_parameters_and_commands_and_submits_nothing(sweep_store, tmp_path, capsys, gpus):
    matrix = write_matrix(tmp_path, sweep_store, "jobs", modalities=("rgb", "depth"), accumulate=2)
    code = main([
        "sweep", str(matrix), "--launcher", "slurm", "--dry-run", "--partition", "gpu", "--time", "600",
        "--mem", "64G", "--slurm-set", "exclude=node12", "--gpus-per-run", str(gpus),
        "--threads-per-run", "2",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    (params,) = [line for line in lines if line.startswith("job parameters")]
    for shown in ("name=jobs", "timeout_min=600", f"gpus_per_node={gpus}", "tasks_per_node=1", "nodes=1",
                  "slurm_partition=gpu", "slurm_mem=64G", "slurm_exclude=node12",
                  f"slurm_signal_delay_s={SIGNAL_DELAY_S}"):  # fmt: skip
        assert shown in params.split(), params
    commands = [shlex.split(line) for line in lines if line.startswith("    ")]
    assert len(commands) == 2
    for argv, run in zip(commands, (RGB, DEPTH)):
        # Each command parses as what it should run: torchrun's own parser, then the kit's.
        assert argv[0] == sys.executable and argv[1] == "-m"
        if gpus == 1:
            assert argv[2] == "dsod_depth"
            sweep_args = argv[3:]
        else:
            assert argv[2] == "torch.distributed.run"
            torchrun = parse_or_fail(get_args_parser(), argv[3:], "torchrun")
            assert (torchrun.standalone, torchrun.nproc_per_node, torchrun.module) == (True, "2", True)
            assert torchrun.training_script == "dsod_depth"
            sweep_args = torchrun.training_script_args
        args = parse_or_fail(build_parser(), sweep_args, "dsod-depth")
        assert (args.matrix, args.run_name, args.log_to_run) == (str(matrix), run, True)
        assert (args.gpus_per_run, args.threads_per_run, args.no_progress) == (gpus, 2, True)
    assert f"{RGB}: new, train 4 steps" in out
    assert lines[-1] == "dry run: nothing submitted"
    assert not (tmp_path / "jobs").exists()  # no slurm folder, no run folder


def parse_or_fail(parser, argv: list[str], what: str):
    try:
        return parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{what} cannot parse {shlex.join(argv)} (its error is in the captured stderr)")


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    "args, message",
    [
        (["--partition", "gpu"], "--partition is a SLURM option; add --launcher slurm"),
        (["--launcher", "pbs"], "argument --launcher: invalid choice: 'pbs'"),
        (["--launcher", "slurm", "--slurm-set", "exclude"], "--slurm-set takes key=value"),
        (["--launcher", "slurm", "--slurm-set", "reservation=r1"], "--slurm-set reservation: not a submitit"),
        (["--launcher", "slurm", "--slurm-set", "time=5"], "--slurm-set time: use --time"),
        (["--launcher", "slurm"], "SLURM's sbatch was not found on this machine"),
        (["--launcher", "slurm", "--no-submitit"], "--launcher slurm needs submitit: pip install"),
    ],
)
def test_bad_slurm_inputs_are_one_error_line(sweep_store, tmp_path, monkeypatch, capsys, args, message):
    matrix = write_matrix(tmp_path, sweep_store, "jobs")
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no sbatch here, whatever this machine has
    if "--no-submitit" in args:
        args = [a for a in args if a != "--no-submitit"]
        monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` raises ImportError
    try:
        code = main(["sweep", str(matrix), *args])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "jobs").exists()


def test_parameters_submitit_refuses_are_one_kit_error(sweep_store, tmp_path):
    class Refusing:  # what submitit's executors raise for a parameter they do not take
        def update_parameters(self, **params):
            raise NameError("Unknown argument 'bogus' for executor 'slurm'\nKnown executors: slurm, local")

    matrix = write_matrix(tmp_path, sweep_store, "jobs")
    with pytest.raises(KitError) as refused:
        submit_sweep(matrix, SlurmOptions(), executor=Refusing(), log=lambda line: None)
    assert str(refused.value) == (
        "--launcher slurm: submitit refused the job parameters: Unknown argument 'bogus' for executor 'slurm'"
    )
    assert not (tmp_path / "jobs").exists()


# --------------------------------------------------------------------------- several GPUs per run


@pytest.mark.slow
def test_torchrun_job_forwards_the_signal_and_requeues_bit_identical(sweep_store, tmp_path, monkeypatch):
    # Two ranks on the CPU (gloo) under torchrun inside the job; the job's signal reaches them as SIGTERM.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    train = {"iters": 30, "checkpoint_every": 1000}
    matrix = write_matrix(tmp_path, sweep_store, "jobs", accumulate=2, **train)
    reference = write_matrix(tmp_path, sweep_store, "reference", accumulate=2, **train)
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit" / "%j")
    run = run_folder(matrix, RGB)

    (job,) = submit_sweep(
        matrix, SlurmOptions(), gpus_per_run=2, threads_per_run=1, executor=executor, log=lambda line: None
    )
    wait_for_steps(run, 3, job, timeout=300)
    (task,) = child_pids(int(job.job_id))
    os.kill(task, submitit.JobEnvironment._usr_sig())
    result = job.result()
    assert result["status"] == "resumed"
    log = (run / "train.log").read_text()
    assert "stopped at step " in log and "interrupted, resume at step " in log, log
    assert "Requeued job" in (job.stdout() or "")

    (job,) = submit_sweep(
        reference, SlurmOptions(), gpus_per_run=2, threads_per_run=1, executor=executor, log=lambda line: None
    )
    assert job.result()["status"] == "trained"
    assert_same_weights(run, run_folder(reference, RGB), step=30)
    assert losses(run) == losses(run_folder(reference, RGB))
    assert final_map(run) == final_map(run_folder(reference, RGB))
