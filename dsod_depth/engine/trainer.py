"""The training loop: ``train`` builds a :class:`Trainer`, whose ``run`` repeats ``train_step`` and
calls ``evaluate`` periodically — a plain loop counted in optimiser steps (the official recipe is
given in iterations, not epochs).

One optimiser step consumes ``accumulate`` micro-batches of ``batch_size`` images on every rank
(effective batch = batch_size · accumulate · world size, REFERENCE §1 uses 128). The order of
images is a function of (seed, epoch) alone and the augmentation of an image a function of (seed,
epoch, index) alone (:class:`~dsod_depth.data.loader.DetectionDataset`), so a run resumed from a
checkpoint replays exactly the batches the uninterrupted run would have seen; with the model,
optimiser, scaler and RNG states restored, the result is bit-identical on CPU.

The run folder (:mod:`dsod_depth.engine.run_dir`) is created only once every input has been
checked (the store opens with the modality's groups, the model builds, init weights load), and the
trainer holds its lock for as long as it writes. A ``stop`` callback, polled after every step, ends
the run early at a step boundary with a checkpoint of that step (:class:`RunStopped`), from which a
resume is exact: the path of Ctrl-C in sweeps and of SLURM's time-limit and preemption signals.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from dsod_depth.config import ExperimentConfig, LossConfig, dump_config, to_dict
from dsod_depth.data.loader import DetectionDataset, collate, worker_init_fn
from dsod_depth.detection.loss import MultiBoxLoss
from dsod_depth.engine import distributed as dist_utils
from dsod_depth.engine.checkpoint import (
    capture_rng_state,
    dataset_inference_record,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from dsod_depth.engine.device import amp_dtype_for, select_device
from dsod_depth.engine.evaluator import evaluate
from dsod_depth.engine.logging import MetricsLogger
from dsod_depth.engine.model_setup import build_model_for, optimiser_for
from dsod_depth.engine.run_dir import RunDir, RunExists, run_lock
from dsod_depth.engine.schedule import set_learning_rate
from dsod_depth.errors import KitError
from dsod_depth.fileio import write_text_atomic


class RunStopped(KitError):
    """The run was asked to stop (``stop`` callback) and saved a checkpoint of its last step."""


def init_comment(info: dict[str, Any]) -> str:
    """YAML comment lines for a run's ``config.yaml`` naming where ``init: transfer:RUN_DIR`` came from
    (the transfer run and its teacher; the checkpoint keeps the same under ``init_source``); "" otherwise."""
    source = info.get("init_source")
    if not source:
        return ""
    teacher = source["teacher"]
    return (
        f"# model.init: the student of transfer run {source['transfer_run']}, distilled from the "
        f"{teacher['modality']} {teacher['model']} teacher {teacher['source']}\n"
    )


def build_loss(config: LossConfig) -> MultiBoxLoss:
    """The MultiBox loss of a config's ``loss`` section (defaults: the Caffe layer of DSOD/SSD)."""
    return MultiBoxLoss(
        neg_pos_ratio=config.neg_pos_ratio,
        iou_threshold=config.iou_threshold,
        weights={"loss_loc": config.loc_weight},
    )


@dataclass
class TrainState:
    step: int = 0  # optimiser steps done
    best_map: float = -1.0
    best_step: int = -1


def micro_batches(
    dataset: DetectionDataset,
    *,
    batch_size: int,
    seed: int,
    start: int,
    info: dist_utils.DistInfo,
    num_workers: int,
) -> Iterator[tuple[torch.Tensor, list[dict[str, Any]]]]:
    """Endless stream of this rank's micro-batches, starting after ``start`` micro-batches.

    Epoch e visits a permutation drawn from (seed, e); rank r takes every world-size-th image of
    it; incomplete last batches are dropped so every rank does the same number of steps.
    """
    per_rank = len(dataset) // info.world_size
    per_epoch = per_rank // batch_size
    if per_epoch == 0:
        raise KitError(
            f"the training split has {len(dataset)} images, fewer than one batch of {batch_size} per rank; "
            "lower train.batch_size"
        )
    epoch, offset = divmod(start, per_epoch)
    while True:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        mine = order[info.rank :: info.world_size][: per_epoch * batch_size].view(per_epoch, batch_size)
        batches = mine[offset:].tolist()
        dataset.set_epoch(epoch)
        loader = DataLoader(
            dataset, batch_sampler=batches, num_workers=num_workers, collate_fn=collate,
            worker_init_fn=worker_init_fn, pin_memory=torch.cuda.is_available(),
        )  # fmt: skip
        yield from loader
        epoch, offset = epoch + 1, 0


class Trainer:
    """Holds what a run needs; :meth:`run` is the loop. Built by :func:`train`."""

    def __init__(self, config: ExperimentConfig, run_dir: Path, *, progress: bool = True) -> None:
        """Builds data, model and optimiser and checks them; writes nothing (see :meth:`open_run`)."""
        self.config, self.folder, self.progress = config, RunDir(run_dir), progress
        self.device = select_device(config.train.device)
        self.info = dist_utils.init_distributed(self.device.type)
        if self.device.type == "cuda" and self.info.enabled:
            self.device = torch.device("cuda", self.info.local_rank)
        self.amp_dtype = amp_dtype_for(config, self.device)
        torch.manual_seed(config.train.seed)
        data = config.data
        augment = {"expand_prob": data.expand_prob, "max_expand": data.max_expand}
        self.train_set = DetectionDataset(
            data.store, data.train_split, data.modality, data.input_size, train=data.augment,
            seed=config.train.seed, augment_options=augment,
        )  # fmt: skip
        self.test_set = DetectionDataset(
            data.store, data.test_split, data.modality, data.input_size, train=False
        )
        self.model = build_model_for(config, self.train_set).to(self.device)
        if config.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if config.train.sync_bn and self.info.enabled:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.priors = self.model.priors.to(self.device)
        self.inference = dataset_inference_record(
            self.model.info["build"], self.train_set, postprocess=asdict(config.postprocess)
        )
        self.net: torch.nn.Module = self.model
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if config.train.compile:
            self.net = torch.compile(self.net)
        self.optimiser = optimiser_for(self.model, config.optim)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.criterion = build_loss(config.loss)
        self.logger: MetricsLogger | None = None  # made by open_run, once the folder is ours
        self.state = TrainState()
        self._saved_step = -1  # step of the newest checkpoint on disk, -1 = none

    # ------------------------------------------------------------------ checkpoints

    @property
    def last_path(self) -> Path:
        return self.folder.last

    def open_run(self, *, resume: bool) -> None:
        """Start writing the (locked) run folder: a fresh run gets its ``config.yaml`` and an empty
        log (refused with :class:`RunExists` when the folder holds a trained run); then the logger."""
        if self.info.is_main and not resume:
            if self.folder.last.exists():
                raise RunExists(
                    f"{self.folder} already holds a run; resume it with `dsod-depth train --resume "
                    f"{self.folder}` or choose another --out"
                )
            self.folder.metrics_log.unlink(missing_ok=True)
            write_text_atomic(self.folder.config, init_comment(self.model.info) + dump_config(self.config))
        self.logger = MetricsLogger(self.folder.path, enabled=self.info.is_main)

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.state.step,
            "best_map": self.state.best_map,
            "best_step": self.state.best_step,
            "rng": capture_rng_state(),
            "config": to_dict(self.config),
            "class_names": list(self.train_set.class_names),
            "in_channels": self.train_set.in_channels,
            "modality": self.train_set.modality,
            "kind": "detector",
            "inference": self.inference,
            "init_source": self.model.info.get("init_source"),
            # Results depend on the CPU thread count (reduction order); resume warns when it changes.
            "cpu_threads": torch.get_num_threads(),
        }

    def save(self, path: Path) -> None:
        if self.info.is_main:
            save_checkpoint(path, self.checkpoint_state())

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimiser.load_state_dict(checkpoint["optimiser"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.state = TrainState(checkpoint["step"], checkpoint["best_map"], checkpoint["best_step"])
        restore_rng_state(checkpoint["rng"])
        threads = checkpoint.get("cpu_threads")
        if threads is not None and threads != torch.get_num_threads() and self.device.type == "cpu":
            warnings.warn(
                f"{self.folder} was trained with {threads} CPU threads and resumes with "
                f"{torch.get_num_threads()}; the result will not be bit-identical to an uninterrupted "
                "run (use the same thread count, e.g. sweep --threads-per-run, for that)",
                stacklevel=2,
            )
        self.logger.truncate_after(self.state.step)

    # ------------------------------------------------------------------ loop

    def set_lr(self) -> float:
        return set_learning_rate(self.optimiser, self.config.optim, self.state.step, self.config.train.iters)

    def train_step(self, batches: Iterator) -> dict[str, float]:
        """One optimiser step over ``accumulate`` micro-batches; returns the averaged losses."""
        accumulate = self.config.optim.accumulate
        self.net.train()
        self.optimiser.zero_grad(set_to_none=True)
        keys = ("loss", "loss_loc", "loss_conf", "num_pos")
        totals = dict.fromkeys(keys, 0.0)
        for micro in range(accumulate):
            images, targets = next(batches)
            images = images.to(self.device, non_blocking=True)
            if self.config.train.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            sync = micro == accumulate - 1 or not self.info.enabled
            context = self.net.no_sync() if not sync else contextlib.nullcontext()
            with context:
                with torch.autocast(
                    self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
                ):
                    loc, conf = self.net(images)
                losses = self.criterion(loc, conf, self.priors, targets)
                # One device-to-host copy per micro-batch for the finiteness check and the log.
                values = dict(zip(keys, torch.stack([losses[k].detach().float() for k in keys]).tolist()))
                self.check_finite(values["loss"])
                self.scaler.scale(losses["loss"] / accumulate).backward()
            for key in keys:
                totals[key] += values[key] / accumulate
        if self.config.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimiser)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimiser)
        self.scaler.update()
        return totals

    def check_finite(self, loss: float) -> None:
        """Stop the run (without saving the broken weights) when this rank's ``loss`` or another
        rank's is NaN or infinite."""
        bad = not math.isfinite(loss)
        if self.info.enabled:
            flag = torch.tensor(float(bad), device=self.device)
            torch.distributed.all_reduce(flag)
            bad = flag.item() > 0
        if bad:
            last = f"{self.last_path} (step {self._saved_step})" if self._saved_step >= 0 else "none yet"
            raise KitError(
                f"the loss became {loss} at step {self.state.step + 1}; stopped without "
                f"saving. Last good checkpoint: {last}. Lower optim.lr, add optim.warmup_iters "
                "or set optim.grad_clip"
            )

    def stop_requested(self, stop: Callable[[], bool] | None) -> bool:
        """``stop()`` of this rank, or of any rank under DDP (all stop at the same step)."""
        asked = bool(stop()) if stop is not None else False
        if self.info.enabled and stop is not None:
            flag = torch.tensor(float(asked), device=self.device)
            torch.distributed.all_reduce(flag)
            asked = flag.item() > 0
        return asked

    def evaluate(self) -> dict[str, Any]:
        split = self.config.data.test_split
        metrics = evaluate(
            self.model, self.test_set, self.folder.eval_dir(split), metric=self.config.train.eval_metric,
            device=self.device, batch_size=max(self.config.train.batch_size, 8), amp_dtype=self.amp_dtype,
            progress=self.progress, postprocess_config=self.config.postprocess,
        )  # fmt: skip
        return metrics

    def maybe_evaluate(self, final: bool) -> None:
        every = self.config.train.eval_every
        if not (final or (every > 0 and self.state.step % every == 0)):
            return
        if self.info.is_main:
            metrics = self.evaluate()
            record = {"step": self.state.step, f"eval/{metrics['metric']}_map": metrics["map"]}
            self.logger.log(record)
            if metrics["map"] > self.state.best_map:
                self.state.best_map, self.state.best_step = metrics["map"], self.state.step
                self.save(self.folder.best)
        dist_utils.barrier(self.info)

    def run(self, *, resume: bool = False, stop: Callable[[], bool] | None = None) -> TrainState:
        """Train to ``train.iters`` (after :meth:`open_run`). ``stop`` is polled after every step;
        when it returns True on any rank the run saves ``last.pt`` at that step and raises
        :class:`RunStopped`."""
        cfg = self.config.train
        if resume:
            self.restore(load_checkpoint(self.last_path))
            self._saved_step = self.state.step
        batches = micro_batches(
            self.train_set, batch_size=cfg.batch_size, seed=cfg.seed,
            start=self.state.step * self.config.optim.accumulate, info=self.info,
            num_workers=self.config.data.num_workers,
        )  # fmt: skip
        bar = tqdm(total=cfg.iters, initial=self.state.step, desc="train", unit="step",
                   disable=not (self.progress and self.info.is_main))  # fmt: skip
        window_start, window_images = time.perf_counter(), 0
        while self.state.step < cfg.iters:
            lr = self.set_lr()
            losses = self.train_step(batches)
            self.state.step += 1
            window_images += cfg.batch_size * self.config.optim.accumulate * self.info.world_size
            bar.update(1)
            bar.set_postfix(loss=f"{losses['loss']:.3f}")
            if self.state.step % cfg.log_every == 0 or self.state.step == cfg.iters:
                losses = dist_utils.all_reduce_mean(losses, self.info, self.device)
                elapsed = time.perf_counter() - window_start
                self.logger.log({
                    "step": self.state.step, **{k: round(v, 6) for k, v in losses.items()}, "lr": lr,
                    "images_per_s": round(window_images / max(elapsed, 1e-9), 3),
                    "processes": self.info.world_size,  # effective batch = batch · accumulate · processes
                })  # fmt: skip
                window_start, window_images = time.perf_counter(), 0
            final = self.state.step == cfg.iters
            self.maybe_evaluate(final)
            if final or self.state.step % cfg.checkpoint_every == 0:
                self.save(self.last_path)
                self._saved_step = self.state.step
            if not final and self.stop_requested(stop):
                if self._saved_step != self.state.step:
                    self.save(self.last_path)
                    self._saved_step = self.state.step
                bar.close()
                self.logger.close()
                raise RunStopped(
                    f"{self.folder} stopped at step {self.state.step:,}/{cfg.iters:,} with a checkpoint of "
                    f"that step; resume it with `dsod-depth train --resume {self.folder}`"
                )
        bar.close()
        self.logger.close()
        return self.state


def train(
    config: ExperimentConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop: Callable[[], bool] | None = None,
    on_acquired: Callable[[RunDir], None] | None = None,
) -> TrainState:
    """Train one run into ``run_dir`` (fresh, or resumed from its ``checkpoints/last.pt``).

    Every input is checked before the folder is created or touched; then the folder is locked for
    the rest of the run (:func:`~dsod_depth.engine.run_dir.run_lock`; ``on_acquired`` is called
    once it is). Under torchrun rank 0 locks and prepares the folder and the other ranks wait for it.
    ``stop``: see :meth:`Trainer.run`.
    """
    run = RunDir(run_dir)
    if not config.data.store:
        raise KitError("no prepared store given: set data.store in the config or pass --data STORE")
    if math.prod((config.train.batch_size, config.optim.accumulate, config.train.iters)) <= 0:
        raise KitError("train.batch_size, optim.accumulate and train.iters must be positive")
    if config.data.num_workers < 0:
        raise KitError(f"data.num_workers must be 0 or more, got {config.data.num_workers}")
    if resume and not run.last.is_file():
        raise KitError(
            f"{run} has no checkpoints/last.pt to resume from; start the run with `dsod-depth train`"
        )
    info = dist_utils.DistInfo()
    try:
        trainer = Trainer(config, run.path, progress=progress)  # checks the inputs; writes nothing
        info = trainer.info
        with contextlib.ExitStack() as stack:
            failure = ""
            if info.is_main:
                try:
                    stack.enter_context(run_lock(run, create=not resume, on_acquired=on_acquired))
                    trainer.open_run(resume=resume)
                except KitError as err:
                    if not info.enabled:
                        raise
                    failure = str(err)
            failure = dist_utils.broadcast_object(failure, info)  # every rank stops, or none
            if failure:
                raise KitError(failure)
            if not info.is_main:
                trainer.open_run(resume=resume)
            return trainer.run(resume=resume, stop=stop)
    finally:
        if info.enabled:
            dist_utils.shutdown_distributed()
