"""The demo's budget and the configs of its runs: :class:`DemoSettings`, the detector and pretraining
configs, and the names the demo gives its modalities, inits and folders."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsod_depth.config import DataConfig, ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from dsod_depth.data.synthrooms_defaults import DEFAULT_APPEARANCE_MODEL, DEFAULT_RANDOMNESS
from dsod_depth.errors import KitError

MODALITIES = ("rgb", "depth", "hha", "rgb+hha")  # channel groups fed to the network (config form)
DEPTH_MODALITIES = ("depth", "hha")  # depth-based: no colour at all
PRETRAINED_INIT = "rgb-pretrained"
PRETRAIN_CORPUS_SEED = 2000  # SynthRooms seed of the pretraining corpus (detection: 0, calibration: 1000)
PRETRAIN_FOLDER = "pretrain_rgb_corpus"
TRANSFER_INIT = "transfer"
DETECT_FRAMES = 6  # test frames written as plain files for the README's `detect` example
ABLATIONS = ("appearance",)
ABLATION_MODALITIES = ("rgb", "hha", "rgb+hha")  # the appearance ablation: what colour can change


@dataclass(frozen=True)
class DemoSettings:
    """Budget of one demo run (the defaults are the ~15-minute CPU budget)."""

    num_train: int = 600  # SynthRooms training frames
    num_test: int = 200  # test frames
    frame_size: tuple[int, int] = (320, 240)  # generated frame (width, height)
    input_size: int = 160  # network input side
    pretrain_frames: int = 600  # training frames of the separate pretraining corpus (+ 1/6 as many test)
    pretrain_iters: int = 150
    pretrain_crop: int = 64
    pretrain_batch: int = 64
    iters: int = 300  # optimiser steps per detector
    # The SSD zoom-in/zoom-out augmentation pays off only over long schedules: at 250 steps it cost
    # HHA 0.58 → 0.31 mAP in development runs, so the short budget trains on the frames as they are
    # (resized only) and --full uses the official recipe.
    augment: bool = False
    batch_size: int = 16
    lr: float = 0.05
    seeds: int = 1
    workers: int = 2  # preparation processes
    jobs: int = 2  # detectors trained at the same time (sweep --jobs: each with cpu_count / jobs threads)
    appearance_model: str = DEFAULT_APPEARANCE_MODEL  # SynthRooms appearance (see its CALIBRATION.md)
    appearance_randomness: float = DEFAULT_RANDOMNESS
    ablations: tuple[str, ...] = ()  # "appearance": also train on class-independent appearance
    with_transfer: bool = False  # the supervision-transfer column (demo.transfer)

    @classmethod
    def full(cls, seeds: int = 3) -> DemoSettings:
        """A longer, more faithful run: more frames, 5× the steps, three seeds."""
        return cls(
            num_train=2000, num_test=500, pretrain_frames=2000, pretrain_iters=600, iters=2000, augment=True,
            seeds=seeds,
        )  # fmt: skip


def detector_config(
    settings: DemoSettings, store: Path, modality: str, init: str, seed: int
) -> ExperimentConfig:
    """One detector run of the demo; the sweep replaces ``name``, ``data.store``, ``data.modality``,
    ``model.init`` and ``train.seed`` per cell (the run names are the sweep's, never built here)."""
    return ExperimentConfig(
        name="synthrooms_demo_detector",
        data=DataConfig(
            store=str(store),
            modality=modality,
            input_size=settings.input_size,
            augment=settings.augment,
            num_workers=0,
        ),  # fmt: skip
        model=ModelConfig(name="dsod_tiny", init=init, first_conv="mean"),
        optim=OptimConfig(
            lr=settings.lr,
            schedule="cosine",
            warmup_iters=max(settings.iters // 10, 1),
            warmup_factor=0.05,
            grad_clip=10.0,
        ),  # fmt: skip
        train=TrainConfig(
            iters=settings.iters,
            batch_size=settings.batch_size,
            seed=seed,
            device="cpu",
            log_every=max(settings.iters // 20, 1),
            checkpoint_every=max(settings.iters // 4, 1),
            eval_every=0,
        ),  # fmt: skip
    )


def pretrain_config(settings: DemoSettings, store: Path) -> ExperimentConfig:
    return ExperimentConfig(
        name="synthrooms_pretrain_rgb",
        data=DataConfig(store=str(store), modality="rgb", input_size=settings.pretrain_crop, num_workers=0),
        model=ModelConfig(name="dsod_tiny"),
        optim=OptimConfig(lr=0.05, schedule="cosine", warmup_iters=10, warmup_factor=0.1, weight_decay=5e-4),
        train=TrainConfig(
            iters=settings.pretrain_iters,
            batch_size=settings.pretrain_batch,
            seed=0,
            device="cpu",
            log_every=10,
        ),  # fmt: skip
    )


def appearance_phrase(model: str, randomness: float) -> str:
    """``materials appearance, randomness 0.1`` (how the report and the log name a store's frames)."""
    return f"{model} appearance, randomness {randomness:g}"


def demo_settings(*, full: bool, seeds: int | None, **overrides: Any) -> DemoSettings:
    settings = DemoSettings.full() if full else DemoSettings()
    unknown = set(overrides.get("ablations") or ()) - set(ABLATIONS)
    if unknown:
        raise KitError(f"unknown demo ablation {sorted(unknown)[0]!r}; choose from {', '.join(ABLATIONS)}")
    if seeds is not None:
        if seeds < 1:
            raise KitError(f"--seeds must be at least 1, got {seeds}")
        settings = dataclasses.replace(settings, seeds=seeds)
    return dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
