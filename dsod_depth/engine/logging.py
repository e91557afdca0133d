"""Run logging: ``metrics.jsonl`` (one JSON object per logged step) and TensorBoard scalars."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from dsod_depth.engine.run_dir import RunDir, read_metrics_log
from dsod_depth.fileio import write_text_atomic

_log = logging.getLogger("dsod_depth.train")


class MetricsLogger:
    """Appends metrics to ``<run>/metrics.jsonl`` and mirrors numbers to TensorBoard.

    Only the process with ``enabled=True`` (rank 0 under DDP) writes. On resume,
    :meth:`truncate_after` drops lines logged after the checkpoint's step so that a
    resumed run's log equals an uninterrupted run's.
    """

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        run = RunDir(run_dir)
        self.path = run.metrics_log
        self.enabled = enabled
        self._writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(run.tensorboard))

    def log(self, record: dict[str, Any]) -> None:
        """Write one record; it must have an integer ``step``. Non-finite floats become null."""
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        line = json.dumps(clean, sort_keys=False)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        _log.info(line)  # shown where a handler is set up, e.g. a sweep run's train.log
        if self._writer is not None:
            step = int(record["step"])
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(key.replace(".", "/"), value, step)
            self._writer.flush()

    def truncate_after(self, step: int) -> None:
        """Remove records with ``step`` greater than ``step`` (used when resuming)."""
        if not self.enabled or not self.path.exists():
            return
        lines = self.path.read_text().splitlines()
        kept = [line for line in lines if line and json.loads(line)["step"] <= step]
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


read_metrics = read_metrics_log  # one reader of metrics.jsonl: dsod_depth.engine.run_dir
