"""``sweep --launcher slurm``: one SLURM job per pending run, through submitit.

(Being written: the options below are the command line's contract.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SlurmOptions", "SLURM_FLAGS"]

# Command-line flags that only mean something with --launcher slurm (refused without it).
SLURM_FLAGS = ("partition", "time", "cpus_per_task", "mem", "account", "qos", "constraint", "slurm_set")


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
