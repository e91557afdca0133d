"""Supervision transfer (Gupta, Hoffman and Malik, "Cross Modal Distillation for Supervision Transfer",
CVPR 2016): a network for depth-like inputs learns, on paired unlabelled RGB-D frames, to reproduce
the feature maps an RGB network computes on the paired colour image. ``init: transfer:RUN_DIR`` then
starts a detector from the student's weights (:mod:`dsod_depth.engine.init`).

**Student**: the detector of the config (``model.name`` for ``data.modality``, initialised as
``model.init`` says — normally ``scratch``); its ``features`` module (backbone + prediction structure)
learns, its detection heads are not used. **Teacher**: :mod:`dsod_depth.engine.teacher`, frozen, in
eval mode. **Frames**: the store's training split, labels unused; the teacher reads its channel groups
of the same frame (re-normalised with the teacher's own statistics), resized to the teacher's input
size where that differs. Each pair is flipped left-right together with probability 1/2 (a function of
seed, step and micro-batch, so a resumed run sees the same flips).

**Loss**: for every matched layer (:mod:`dsod_depth.models.taps`; default ``backbone.second``, the
deepest backbone map) the student's map passes a 1×1 adaptation convolution (only where the channel
counts differ), is resized bilinearly to the teacher map's size (only where the strides differ), and
is compared by mean squared error with the teacher's map **standardised per channel**: (t − μ_c) / σ_c,
with μ_c and σ_c the channel's mean and standard deviation over the teacher's maps of the first
``stat_frames`` training frames, computed once before step 0 and kept in the checkpoint (σ_c floored
at 1 % of the median channel's σ, so near-constant channels are not amplified). Standardised, the loss
of a student that predicts each channel's mean is ≈ 1 whatever the teacher's scale; the layers'
losses are averaged.

The loop is the trainer's: same optimiser rule and schedule (``optim``), same data order
(:func:`~dsod_depth.engine.trainer.micro_batches`), ``train.iters`` / ``batch_size`` /
``checkpoint_every`` / ``log_every``, a locked run folder, exact resume (bit-identical on CPU), and
``metrics.jsonl`` + TensorBoard with ``loss`` (distillation, training batches) and ``heldout_loss``
(the same loss on the first ``heldout_frames`` frames of the test split, correctly paired, student
in eval mode; at step 0, every ``train.eval_every`` steps and at the end), ``train.amp`` (float16 with loss
scaling) and ``train.channels_last``. One process (CPU or one GPU).

Run folder: ``config.yaml``, ``run_kind`` (``transfer``), ``transfer.json`` (the settings and the
teacher), ``metrics.jsonl``, ``tensorboard/``, ``checkpoints/last.pt``, and ``summary.json`` once
finished. Checkpoint: ``model`` = the student's ``features.*`` tensors (what ``init`` copies),
``adapters``, ``target_stats``, ``optimiser``, ``rng``, ``step``, ``iters``, ``kind`` = ``transfer``,
``modality``, ``in_channels``, ``class_names``, ``config``, ``transfer`` (= transfer.json), ``inference``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from dsod_depth.config import ExperimentConfig, dump_config, to_dict
from dsod_depth.data.loader import DetectionDataset, parse_modality
from dsod_depth.engine.checkpoint import (
    capture_rng_state,
    dataset_inference_record,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from dsod_depth.engine.device import amp_dtype_for, select_device
from dsod_depth.engine.distill import (
    Distiller,
    PairedFrames,
    TeacherView,
    flip_pairs,
    heldout_loss,
    target_stats,
)
from dsod_depth.engine.distributed import DistInfo
from dsod_depth.engine.logging import MetricsLogger
from dsod_depth.engine.model_setup import build_model_for, optimiser_for
from dsod_depth.engine.run_dir import RunDir, read_metrics_log, run_kind, run_lock, write_run_kind
from dsod_depth.engine.schedule import set_learning_rate
from dsod_depth.engine.teacher import Teacher, load_teacher
from dsod_depth.engine.trainer import micro_batches
from dsod_depth.errors import KitError
from dsod_depth.fileio import write_text_atomic
from dsod_depth.models.taps import DEFAULT_LAYERS, check_layers, tap_features

__all__ = ["TransferSettings", "transfer", "read_transfer_settings"]

PAIRINGS = ("paired", "shuffled")


@dataclass(frozen=True)
class TransferSettings:
    """What a transfer run needs beyond the experiment config (kept in the run's ``transfer.json``).

    teacher:            run folder, checkpoint file or ``imagenet:MODEL`` (:func:`load_teacher`).
    layers:             maps to match (:mod:`dsod_depth.models.taps`).
    allow_any_teacher:  accept a teacher that reads something other than RGB.
    pairing:            ``paired``, or ``shuffled``: a control in which each student frame meets the
                        teacher's view of another frame (a fixed permutation), so the pairing is broken.
    stat_frames:        training frames whose teacher maps give the standardisation μ, σ.
    heldout_frames:     test-split frames of the held-out loss.
    """

    teacher: str
    layers: tuple[str, ...] = DEFAULT_LAYERS
    allow_any_teacher: bool = False
    pairing: str = "paired"
    stat_frames: int = 64
    heldout_frames: int = 32

    def check(self) -> None:
        if self.pairing not in PAIRINGS:
            raise KitError(f"pairing must be {' or '.join(PAIRINGS)}, got {self.pairing!r}")
        if self.stat_frames < 1 or self.heldout_frames < 0:
            raise KitError("stat_frames must be ≥ 1 and heldout_frames ≥ 0")


def read_transfer_settings(run: RunDir) -> dict[str, Any]:
    """The run's ``transfer.json`` (settings under ``settings``, the teacher under ``teacher``)."""
    if not run.transfer_record.is_file():
        raise KitError(f"{run} has no transfer.json; it is not a transfer run")
    return json.loads(run.transfer_record.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the run


@dataclass
class _Parts:
    """Everything a transfer run holds, built and checked before its folder is touched."""

    config: ExperimentConfig
    settings: TransferSettings
    teacher: Teacher
    student_frames: DetectionDataset
    train_pairs: PairedFrames
    heldout_pairs: PairedFrames
    distiller: Distiller
    view: TeacherView
    device: torch.device
    build: dict[str, Any]  # the student's architecture (model.info["build"]), for the inference record


def _build(config: ExperimentConfig, settings: TransferSettings) -> _Parts:
    data, device = config.data, select_device(config.train.device)
    student_groups = parse_modality(data.modality)
    student_frames = DetectionDataset(data.store, data.train_split, data.modality, data.input_size)
    teacher = load_teacher(
        settings.teacher, input_size=student_frames.input_size, allow_any=settings.allow_any_teacher
    )
    union = "+".join(dict.fromkeys([*student_groups, *teacher.groups]))
    frames = DetectionDataset(data.store, data.train_split, union, data.input_size)
    test_frames = DetectionDataset(data.store, data.test_split, union, data.input_size)
    partner = None
    if settings.pairing == "shuffled":  # a fixed, seeded permutation: a frame rarely meets itself
        partner = torch.randperm(
            len(frames), generator=torch.Generator().manual_seed(config.train.seed + 1)
        ).tolist()
    train_pairs = PairedFrames(frames, student_groups, teacher.groups, partner)
    heldout_pairs = PairedFrames(test_frames, student_groups, teacher.groups)
    torch.manual_seed(config.train.seed)
    student = build_model_for(config, student_frames)
    layers = check_layers(student.features, settings.layers, who=f"the student {config.model.name}")
    check_layers(teacher.features, layers, who=f"the teacher {teacher.record['model']}")
    view = TeacherView(teacher, frames, layers, device)
    # Channel counts of both sides from one real pair (eval mode: no running statistics change).
    sample_student, sample_teacher = train_pairs[0]
    student.features.eval()
    with torch.no_grad():
        mine = tap_features(student.features, sample_student[None], layers)
        theirs = view(sample_teacher[None].to(device))
    student.features.train()
    adapters = {
        layer: (
            nn.Conv2d(mine[layer].shape[1], theirs[layer].shape[1], 1)
            if mine[layer].shape[1] != theirs[layer].shape[1] else nn.Identity()
        )
        for layer in layers
    }  # fmt: skip
    distiller = Distiller(student.features, adapters, layers).to(device)
    if config.train.channels_last:  # the trainer's layout option, for both networks
        distiller.to(memory_format=torch.channels_last)
        view.features.to(memory_format=torch.channels_last)
    return _Parts(
        config, settings, teacher, student_frames, train_pairs, heldout_pairs, distiller, view, device,
        student.info["build"],
    )  # fmt: skip


def transfer(
    config: ExperimentConfig,
    out_dir: str | Path,
    settings: TransferSettings | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Distil the teacher of ``settings`` into the student of ``config`` (module docstring), into the run
    folder ``out_dir``; ``resume=True`` continues it from ``checkpoints/last.pt`` with the settings of its
    ``transfer.json`` (``settings`` must then be None). Returns the summary (also ``summary.json``).

    Every input is checked before the folder is created: the store and the student's modality, the
    teacher (architecture, modality), the layer names.
    """
    run = RunDir(out_dir)
    if resume:
        if settings is not None:
            raise KitError("a resumed transfer run takes its settings from its transfer.json")
        if not run.last.is_file() or run_kind(run) != "transfer":
            raise KitError(f"{run} holds no transfer run to resume; start one with `dsod-depth transfer`")
        names = {f.name for f in fields(TransferSettings)}
        stored = read_transfer_settings(run)["settings"]
        settings = TransferSettings(
            **{k: tuple(v) if k == "layers" else v for k, v in stored.items() if k in names}
        )
    if settings is None:
        raise KitError("no teacher given: pass --teacher RUN_OR_CHECKPOINT")
    settings.check()
    if not config.data.store:
        raise KitError("no prepared store given: pass --data STORE or set data.store")
    if min(config.train.batch_size, config.optim.accumulate, config.train.iters) <= 0:
        raise KitError("train.batch_size, optim.accumulate and train.iters must be positive")
    if not resume and run.last.exists():
        raise KitError(
            f"{run} already holds a run; resume it with `dsod-depth transfer --resume {run}` or choose "
            "another --out"
        )
    parts = _build(config, settings)
    with run_lock(run, create=not resume):
        return _TransferLoop(run, parts, progress=progress).run(resume=resume)


class _TransferLoop:
    def __init__(self, run: RunDir, parts: _Parts, *, progress: bool) -> None:
        self.run_dir, self.parts, self.progress = run, parts, progress
        config = parts.config
        self.optimiser = optimiser_for(parts.distiller, config.optim)
        self.amp_dtype = amp_dtype_for(config, parts.device)
        # float16 autocast needs loss scaling against underflowing gradients, as in the trainer.
        self.scaler = torch.amp.GradScaler(parts.device.type, enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.record = {
            "settings": {**asdict(parts.settings), "layers": list(parts.settings.layers)},
            "teacher": parts.teacher.record,
            "student": {
                "model": config.model.name, "init": config.model.init,
                "modality": parts.student_frames.modality,
            },
        }  # fmt: skip

    def open(self, resume: bool) -> MetricsLogger:
        run, config = self.run_dir, self.parts.config
        if resume:
            checkpoint = load_checkpoint(run.last)
            self.parts.distiller.features.load_state_dict(
                {k[len("features.") :]: v for k, v in checkpoint["model"].items()}
            )
            self.parts.distiller.adapters.load_state_dict(checkpoint["adapters"])
            self.parts.distiller.target_stats = {k: tuple(v) for k, v in checkpoint["target_stats"].items()}
            self.optimiser.load_state_dict(checkpoint["optimiser"])
            self.scaler.load_state_dict(checkpoint["scaler"])
            self.step = checkpoint["step"]
            restore_rng_state(checkpoint["rng"])
            logger = MetricsLogger(run.path)
            logger.truncate_after(self.step)
            return logger
        write_text_atomic(run.config, dump_config(config))
        write_run_kind(run, "transfer")
        write_text_atomic(run.transfer_record, json.dumps(self.record, indent=2) + "\n")
        run.metrics_log.unlink(missing_ok=True)
        run.summary.unlink(missing_ok=True)
        parts = self.parts
        parts.distiller.target_stats = target_stats(
            parts.view, parts.train_pairs, parts.settings.stat_frames, parts.device
        )
        return MetricsLogger(run.path)

    def checkpoint(self) -> None:
        parts, config = self.parts, self.parts.config
        frames = parts.student_frames
        save_checkpoint(self.run_dir.last, {
            "model": {f"features.{k}": v for k, v in parts.distiller.features.state_dict().items()},
            "adapters": parts.distiller.adapters.state_dict(),
            "target_stats": {k: list(v) for k, v in parts.distiller.target_stats.items()},
            "optimiser": self.optimiser.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(),
            "step": self.step, "iters": config.train.iters, "kind": "transfer",
            "modality": frames.modality, "in_channels": frames.in_channels,
            "class_names": list(frames.class_names), "config": to_dict(config), "transfer": self.record,
            "inference": dataset_inference_record(parts.build, frames, kind="backbone"),
            "cpu_threads": torch.get_num_threads(),
        })  # fmt: skip

    def heldout(self) -> float | None:
        p = self.parts
        return heldout_loss(p.distiller, p.view, p.heldout_pairs, p.settings.heldout_frames, p.device)

    def run(self, *, resume: bool) -> dict[str, Any]:
        parts, config = self.parts, self.parts.config
        cfg, distiller = config.train, parts.distiller
        logger = self.open(resume)
        if self.step == 0:
            logger.log({"step": 0, "heldout_loss": _rounded(self.heldout())})
        batches = micro_batches(
            parts.train_pairs, batch_size=cfg.batch_size, seed=cfg.seed,
            start=self.step * config.optim.accumulate, info=DistInfo(), num_workers=config.data.num_workers,
        )  # fmt: skip
        bar = tqdm(
            total=cfg.iters, initial=self.step, desc="transfer", unit="step", disable=not self.progress
        )
        start, images = time.perf_counter(), 0
        distiller.train()
        while self.step < cfg.iters:
            lr = set_learning_rate(self.optimiser, config.optim, self.step, cfg.iters)
            self.optimiser.zero_grad(set_to_none=True)
            value = 0.0
            for micro in range(config.optim.accumulate):
                student, teacher = next(batches)
                teacher = torch.stack(teacher)  # collate keeps the second items as a list
                student, teacher = student.to(parts.device), teacher.to(parts.device)
                if cfg.channels_last:
                    student = student.contiguous(memory_format=torch.channels_last)
                    teacher = teacher.contiguous(memory_format=torch.channels_last)
                student, teacher = flip_pairs(
                    (cfg.seed * 1_000_003 + self.step) * 64 + micro, student, teacher
                )
                with torch.autocast(
                    parts.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
                ):
                    targets = distiller.standardise(parts.view(teacher))
                    loss = distiller.loss(student, targets)
                current = float(loss.detach())
                if not math.isfinite(current):
                    raise KitError(
                        f"the distillation loss became {current} at step {self.step + 1}; lower optim.lr"
                    )
                self.scaler.scale(loss / config.optim.accumulate).backward()
                value += current / config.optim.accumulate
            if config.optim.grad_clip > 0:
                self.scaler.unscale_(self.optimiser)
                torch.nn.utils.clip_grad_norm_(distiller.parameters(), config.optim.grad_clip)
            self.scaler.step(self.optimiser)
            self.scaler.update()
            self.step += 1
            images += cfg.batch_size * config.optim.accumulate
            bar.update(1)
            final = self.step == cfg.iters
            if self.step % cfg.log_every == 0 or final:
                elapsed = max(time.perf_counter() - start, 1e-9)
                logger.log(
                    {
                        "step": self.step,
                        "loss": round(value, 6),
                        "lr": lr,
                        "images_per_s": round(images / elapsed, 3),
                    }
                )
                start, images = time.perf_counter(), 0
            if final or (cfg.eval_every > 0 and self.step % cfg.eval_every == 0):
                logger.log({"step": self.step, "heldout_loss": _rounded(self.heldout())})
            if final or self.step % cfg.checkpoint_every == 0:
                self.checkpoint()
        bar.close()
        logger.close()
        summary = {
            "steps": self.step, "teacher": parts.teacher.record["source"], "layers": list(distiller.layers),
            "modality": parts.student_frames.modality, "model": config.model.name,
            "heldout_loss": _last_heldout(self.run_dir),
        }  # fmt: skip
        write_text_atomic(self.run_dir.summary, json.dumps(summary, indent=2) + "\n")
        return summary


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _last_heldout(run: RunDir) -> float | None:
    values = [r["heldout_loss"] for r in read_metrics_log(run) if "heldout_loss" in r]
    return values[-1] if values else None
