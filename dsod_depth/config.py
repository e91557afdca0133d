"""Experiment configuration: frozen dataclasses per component and strict YAML loading.

A config file has four sections (``data``, ``model``, ``optim``, ``train``) plus a
``name``, and two optional ones (``loss``, ``postprocess``) whose defaults are the official DSOD/SSD
values, so a file without them (every config written before they existed) means what it always meant.
Every key is checked: an unknown key or a value of the wrong type is rejected with the file name and
the key's dotted path. ``--set a.b=value`` overrides are parsed as YAML scalars and checked the same
way. The resolved config (:func:`to_dict`) is written into every run directory and checkpoint.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dsod_depth.errors import KitError


@dataclass(frozen=True)
class DataConfig:
    store: str = ""  # folder written by `dsod-depth prepare` (train.h5, test.h5, ...)
    modality: str = "rgb"  # channel groups fed to the network: rgb, depth, hha, rgb_hha, rgb_depth, ...
    input_size: int = 300  # square network input in pixels
    augment: bool = True  # SSD photometric + expand + crop + flip on the training split
    expand_prob: float = 0.5  # probability of the SSD zoom-out ("expand") step
    max_expand: float = 4.0  # largest canvas-to-image ratio of the zoom-out
    train_split: str = "train"
    test_split: str = "test"
    num_workers: int = 2  # DataLoader worker processes per rank


@dataclass(frozen=True)
class ModelConfig:
    name: str = "dsod300"  # a registered detector (dsod300, dsod300_plain, dsod300_small, dsod_tiny, ...)
    init: str = "scratch"  # scratch | imagenet | pretrained:PATH | transfer:RUN_DIR
    first_conv: str = "mean"  # pretrained RGB filters → other channel counts: mean | sum | copy-scaled
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword options of build_detector


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 0.1  # base learning rate for the effective batch (REFERENCE §1: 0.1 at batch 128)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "multistep"  # multistep | cosine
    milestones: tuple[int, ...] = (20_000, 40_000, 60_000, 80_000)  # multistep: iterations where lr ÷ gamma
    gamma: float = 0.1
    warmup_iters: int = 0  # linear warm-up from warmup_factor·lr
    warmup_factor: float = 0.001
    accumulate: int = 1  # gradient accumulation steps per optimiser step
    grad_clip: float = 0.0  # max gradient norm; 0 disables


@dataclass(frozen=True)
class TrainConfig:
    iters: int = 100_000  # optimiser steps
    batch_size: int = 4  # images per step per rank (effective batch = batch_size · accumulate · ranks)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "off"  # off | bf16 | fp16 (CUDA only)
    channels_last: bool = False
    compile: bool = False  # torch.compile the model
    sync_bn: bool = False  # convert BatchNorm to SyncBatchNorm under DDP
    log_every: int = 20  # steps between metrics.jsonl lines
    checkpoint_every: int = 1_000  # steps between checkpoints/last.pt
    eval_every: int = 5_000  # steps between evaluations on the test split; 0 = only at the end
    eval_metric: str = "voc07"  # voc07 | voc12 | coco


@dataclass(frozen=True)
class LossConfig:
    # The MultiBox loss (detection/loss.py); defaults = the Caffe MultiBoxLoss layer of DSOD/SSD.
    loc_weight: float = 1.0  # weight of the smooth-L1 localisation term (the confidence term has 1)
    neg_pos_ratio: float = 3.0  # hard negatives kept per matched default box
    iou_threshold: float = 0.5  # a default box matches a ground-truth box at IoU >= this


@dataclass(frozen=True)
class PostprocessConfig:
    # Keyword arguments of detection.postprocess.postprocess (same names); defaults = Caffe DetectionOutput.
    score_threshold: float = 0.01  # detections scoring below this are dropped
    nms_threshold: float = 0.45  # per-class NMS IoU
    top_k: int = 400  # best default boxes per class that enter NMS
    keep_top_k: int = 200  # detections kept per image after NMS


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)


_CHOICES = {
    "optim.schedule": ("multistep", "cosine"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.amp": ("off", "bf16", "fp16"),
    "train.eval_metric": ("voc07", "voc12", "coco"),
    "model.first_conv": ("mean", "sum", "copy-scaled"),
}

# Numeric limits: (test, what the message asks for); a value outside makes a meaningless loss or no output.
_LIMITS = {
    "loss.loc_weight": (lambda v: v >= 0, ">= 0"),
    "loss.neg_pos_ratio": (lambda v: v >= 0, ">= 0"),
    "loss.iou_threshold": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "postprocess.score_threshold": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "postprocess.nms_threshold": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "postprocess.top_k": (lambda v: v >= 1, ">= 1"),
    "postprocess.keep_top_k": (lambda v: v >= 1, ">= 1"),
}


def _check_value(value: Any, annotation: Any, where: str, source: str) -> Any:
    """Validate one value against a field annotation; returns the (possibly converted) value."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, where, source)
    if annotation is bool:
        if not isinstance(value, bool):
            raise KitError(f"{source}: {where} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise KitError(f"{source}: {where} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise KitError(f"{source}: {where} must be a number, got {value!r}")
        try:
            return float(value)
        except OverflowError:  # YAML integers have no size limit
            raise KitError(f"{source}: {where} is beyond the range of a float, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, str):
            raise KitError(f"{source}: {where} must be a string, got {value!r}")
        return value
    if origin is tuple:
        (item_type, _) = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise KitError(f"{source}: {where} must be a list, got {value!r}")
        return tuple(_check_value(v, item_type, f"{where}[{i}]", source) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise KitError(f"{source}: {where} must be a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"unsupported config annotation {annotation!r} at {where}")


def _build(cls: type, data: Any, where: str, source: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KitError(f"{source}: {where or 'the top level'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            path = f"{where}.{key}" if where else str(key)
            raise KitError(f"{source}: unknown key '{path}' (known keys here: {', '.join(sorted(known))})")
    values = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        values[key] = _check_value(value, hints[key], path, source)
        if path in _CHOICES and values[key] not in _CHOICES[path]:
            raise KitError(f"{source}: {path} must be one of {', '.join(_CHOICES[path])}, got {value!r}")
        if path in _LIMITS and not _LIMITS[path][0](values[key]):
            raise KitError(f"{source}: {path} must be {_LIMITS[path][1]}, got {value!r}")
    return cls(**values)


def to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The config as plain YAML/JSON-friendly containers (tuples become lists)."""

    def plain(obj: Any) -> Any:
        if isinstance(obj, tuple):
            return [plain(v) for v in obj]
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        return obj

    return plain(dataclasses.asdict(config))


def from_dict(data: dict[str, Any], *, source: str = "config") -> ExperimentConfig:
    """Build and validate a config from plain containers (e.g. the copy stored in a checkpoint)."""
    return _build(ExperimentConfig, data, "", source)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise KitError(f"{source}:{line} is not valid YAML ({err.problem}); fix the file") from None
    except yaml.YAMLError as err:
        reason = " ".join(str(err).split())  # PyYAML's messages span lines; the CLI prints one line
        raise KitError(f"{source}: is not valid YAML ({reason}); fix the file") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested dict, returning a new dict."""
    data = yaml.safe_load(yaml.safe_dump(data)) or {}  # deep copy through plain containers
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise KitError(f"--set {item!r}: expected key=value, e.g. --set train.iters=1000")
        value = _parse_yaml(raw, f"--set {key}")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise KitError(f"--set {key}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment config, apply ``--set`` overrides, validate every key."""
    path = Path(path)
    if not path.is_file():
        raise KitError(f"config file {path} not found; pass the path of a YAML config")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KitError(f"{path}: not UTF-8 text; a config must be a YAML file") from None
    data = _parse_yaml(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KitError(f"{path}: the top level must be a mapping of sections (data, model, optim, train)")
    data = apply_overrides(data, overrides or [])
    return from_dict(data, source=str(path))


def dump_config(config: ExperimentConfig) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
