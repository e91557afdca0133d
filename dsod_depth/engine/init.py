"""A detector's starting weights: the one place that reads an initialisation string (``model.init``).

The forms of an init string::

    scratch            the architecture's own initialisation (DSOD's point: no pretrained weights)
    imagenet           torchvision's ImageNet weights (baselines only), loaded by the model factory itself:
                       :mod:`dsod_depth.models.weights` finds the file and adapts the RGB input filters
    pretrained:PATH    a kit checkpoint — a run folder (its ``checkpoints/last.pt``) or a checkpoint file,
                       e.g. from ``dsod-depth pretrain`` — copied wherever name and shape match
    transfer:RUN_DIR   the student of a finished supervision-transfer run (``dsod-depth transfer``,
                       :mod:`dsod_depth.engine.transfer`) for the same modality: its backbone and
                       prediction structure; the detection heads start fresh

Three steps, one function each: :func:`parse_init` checks the string and returns an :class:`Init`;
:func:`factory_options` gives what the detector factory needs for it (before the model is built);
:func:`apply_init` loads the source checkpoint (:func:`load_source`) and copies its weights into the
built model (:func:`transfer_weights`). A kind that reads a checkpoint is one entry of
:data:`SOURCE_PREFIXES` and :data:`FORMS`; ``transfer`` adds its checks (a finished transfer run of the
same modality) in :func:`apply_init` and records the transfer run and its teacher in ``model.info``.

Nothing heavy is imported at module level (torch, the models and the checkpoint reader load when a
function needs them), so the sweep's planning (:mod:`dsod_depth.experiments.naming`) reads
:data:`PRETRAINED_PREFIX` and init strings from here without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from dsod_depth.engine.run_dir import RunDir, checkpoint_folder, resolve_checkpoint, run_kind
from dsod_depth.errors import KitError

if TYPE_CHECKING:
    from collections.abc import Collection

    import torch

__all__ = [
    "init_label",
    "FORMS",
    "PRETRAINED_PREFIX",
    "TRANSFER_PREFIX",
    "SOURCE_PREFIXES",
    "Init",
    "apply_init",
    "factory_options",
    "finished_transfer",
    "load_source",
    "parse_init",
    "transfer_weights",
]

PRETRAINED_PREFIX = "pretrained:"
TRANSFER_PREFIX = "transfer:"
# Kinds whose weights come from a checkpoint: kind → the prefix before the checkpoint's path.
SOURCE_PREFIXES = {"pretrained": PRETRAINED_PREFIX, "transfer": TRANSFER_PREFIX}
# Kinds without a source.
PLAIN_KINDS = ("scratch", "imagenet")
# Every accepted form, as error messages name them.
FORMS = (*PLAIN_KINDS, PRETRAINED_PREFIX + "PATH", TRANSFER_PREFIX + "RUN_DIR")


@dataclass(frozen=True)
class Init:
    """A parsed init string; ``str(init)`` gives the string back."""

    kind: str  # scratch | imagenet | pretrained | transfer
    source: str | None = None  # run folder or checkpoint file of a kind in SOURCE_PREFIXES, else None

    def __str__(self) -> str:
        return self.kind if self.source is None else SOURCE_PREFIXES[self.kind] + self.source


def parse_init(init: str, *, key: str = "model.init") -> Init:
    """Check an init string (module docstring); a :class:`KitError` names ``key`` and every form."""
    if init in PLAIN_KINDS:
        return Init(init)
    for kind, prefix in SOURCE_PREFIXES.items():
        if init.startswith(prefix) and len(init) > len(prefix):
            return Init(kind, init[len(prefix) :])
    forms = ", ".join(FORMS[:-1]) + " or " + FORMS[-1]
    raise KitError(f"{key} must be {forms}, got {init!r}")


def factory_options(
    init: Init, *, model_name: str, accepted: Collection[str], first_conv: str = "mean"
) -> dict[str, Any]:
    """Options for :func:`~dsod_depth.models.build_detector` that ``init`` needs, given the options the
    detector ``model_name`` accepts (:func:`~dsod_depth.models.detector_options`).

    Only ``imagenet`` needs any: the factory loads the ImageNet file itself and adapts the input filters
    with ``first_conv``. Kinds with a source build the bare architecture and load afterwards.
    """
    if init.kind != "imagenet":
        return {}
    if "weights_path" not in accepted:
        raise KitError(
            f"model {model_name!r} has no ImageNet initialisation; use init: scratch, or an ImageNet "
            "baseline (ssd300_vgg16, densenet121_dsod)"
        )
    return {"init": "imagenet", "first_conv": first_conv}


def load_source(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(checkpoint file, its contents) of an init's source: a run folder's ``checkpoints/last.pt``, or the
    file ``path`` itself. Missing or unreadable files are one-line :class:`KitError`\\ s."""
    from dsod_depth.engine.checkpoint import load_checkpoint

    path = Path(path)
    file = resolve_checkpoint(path)[0] if path.is_dir() else path
    return file, load_checkpoint(file)


def apply_init(
    model: torch.nn.Module,
    init: Init,
    *,
    model_name: str,
    first_conv: str = "mean",
    modality: str | None = None,
) -> list[str]:
    """Load ``init``'s source weights into ``model`` (built with :func:`factory_options`); returns the names
    of the copied tensors, ``[]`` for kinds without a source. A source of which nothing fits is an error.

    ``modality`` (the detector's, e.g. ``hha``) must be the student's for ``transfer``.
    """
    if init.source is None:
        return []
    if init.kind == "transfer":
        return _apply_transfer(model, init.source, model_name=model_name, modality=modality)
    _, checkpoint = load_source(init.source)
    copied = transfer_weights(
        model, checkpoint["model"], source_in_channels=checkpoint.get("in_channels"), first_conv=first_conv
    )
    if not copied:
        raise KitError(f"{Path(init.source)}: no tensor matches model {model_name!r} by name and shape")
    return copied


def finished_transfer(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(checkpoint file, checkpoint) of the finished transfer run in folder ``path``; a one-line
    :class:`KitError` when ``path`` holds no transfer run or one that has not reached its last step."""
    from dsod_depth.engine.checkpoint import load_checkpoint

    run = RunDir(path)
    if not run.path.is_dir() or run_kind(run) != "transfer" or not run.last.is_file():
        raise KitError(
            f"transfer:{path} names no finished transfer run (no run_kind 'transfer' and "
            "checkpoints/last.pt there); run `dsod-depth transfer` into that folder first"
        )
    checkpoint = load_checkpoint(run.last)
    if checkpoint.get("kind") != "transfer" or checkpoint["step"] < checkpoint["iters"]:
        raise KitError(
            f"transfer:{path} is not finished (step {checkpoint.get('step')} of {checkpoint.get('iters')}); "
            f"resume it with `dsod-depth transfer --resume {path}`"
        )
    return run.last, checkpoint


def _apply_transfer(
    model: torch.nn.Module, source: str, *, model_name: str, modality: str | None
) -> list[str]:
    """``init: transfer:RUN_DIR``: the finished student's ``features.*`` tensors (adaptation layers are
    kept apart in the checkpoint and never copied); the transfer run and its teacher go to
    ``model.info["init_source"]``."""
    file, checkpoint = finished_transfer(source)
    if modality is not None and checkpoint["modality"] != modality:
        raise KitError(
            f"transfer:{source} distilled a {checkpoint['modality']} student but this detector reads "
            f"{modality}; use the transfer run of the same modality"
        )
    student = checkpoint["transfer"]["student"]["model"]
    if student != model_name:
        raise KitError(
            f"transfer:{source} trained a {student} student but this run builds {model_name}; set "
            f"model.name: {student} or distil into {model_name}"
        )
    copied = transfer_weights(model, checkpoint["model"], source_in_channels=checkpoint["in_channels"])
    if not copied:
        raise KitError(f"{file}: no tensor matches model {model_name!r} by name and shape")
    model.info["init_source"] = {
        "transfer_run": str(file.parent.parent),
        "teacher": checkpoint["transfer"]["teacher"],
    }
    return copied


def transfer_weights(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    *,
    source_in_channels: int | None = None,
    first_conv: str = "mean",
) -> list[str]:
    """Copy every tensor of ``state`` whose name and shape match one of ``model``; returns the copied names.

    Used for ``init: pretrained:PATH``: a detector or backbone trained on another modality or dataset
    gives its weights wherever the shapes agree (a different class count leaves the classifier heads
    at their initial values). When the source read 3 channels (RGB, HHA) and the model reads another
    number, input filters [out, 3, k, k] are adapted with :func:`~dsod_depth.models.adapt_first_conv`
    (strategy ``first_conv``), as for ImageNet weights.
    """
    from dsod_depth.models.weights import adapt_first_conv

    own = model.state_dict()
    target_in = getattr(model, "in_channels", None)
    copied, update = [], {}
    for key, value in state.items():
        if key not in own:
            continue
        mine = own[key]
        if mine.shape == value.shape:
            update[key] = value
        elif (
            value.dim() == 4 and source_in_channels == 3 and value.shape[1] == 3 and target_in is not None
            and mine.shape[1] == target_in and mine.shape[0] == value.shape[0]
            and mine.shape[2:] == value.shape[2:]
        ):  # fmt: skip
            update[key] = adapt_first_conv(value, target_in, first_conv)
        else:
            continue
        copied.append(key)
    model.load_state_dict({**own, **update})
    return copied


def init_label(init: str) -> str:
    """Label of a ``model.init`` value: ``scratch``, ``imagenet``, ``pretrained:NAME`` or ``transfer``.

    Every ``transfer:RUN_DIR`` is labelled ``transfer``: each modality and seed has its own student
    folder, and they are one initialisation (one column of a comparison).

    NAME is the run folder of a kit checkpoint (``.../NAME/checkpoints/last.pt`` → ``NAME``), or the
    file's stem for any other file (``weights/rgb_backbone.pt`` → ``rgb_backbone``), or the folder
    name when PATH is a folder.
    """
    if init.startswith(TRANSFER_PREFIX):
        return "transfer"
    if not init.startswith(PRETRAINED_PREFIX):
        return init
    path = PurePath(init[len(PRETRAINED_PREFIX) :])
    if path.suffix and path.parent.name == "checkpoints" and checkpoint_folder(path).name:
        name = checkpoint_folder(path).name
    elif path.suffix:
        name = path.stem
    else:
        name = path.name
    return PRETRAINED_PREFIX + (name or "checkpoint")
