"""Checkpoints that hold tensors and plain containers only.

Every checkpoint is written atomically (temporary file in the same folder, fsync,
rename), so a run killed at any moment leaves either the previous checkpoint or the
new one, never a torn file. Loading uses ``torch.load(..., weights_only=True)``:
nothing in a checkpoint can execute code, and a file with pickled objects is
refused with a clear error.

Every checkpoint also carries an ``inference`` record (:func:`inference_record`): everything needed to
run the network on new frames without the store or the config file — the architecture to rebuild,
the channel groups in input order with their encoder and per-channel normalisation, the input size,
the class names, the run's post-processing settings and the kit version (DESIGN "File formats").
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsod_depth import __version__
from dsod_depth.errors import KitError
from dsod_depth.fileio import atomic_output

INFERENCE_FORMAT = 1
# Depth is rounded to whole millimetres before any encoder sees it, as the prepared store keeps it.
DEPTH_QUANTUM_M = 0.001
# What every inference record holds; a record missing one of them cannot run on new frames.
INFERENCE_FIELDS = ("build", "groups", "input_size", "class_names", "postprocess")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (the folder is created if needed)."""
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by the kit; any problem is one clear :class:`KitError`."""
    path = Path(path)
    if not path.is_file():
        raise KitError(f"checkpoint {path} not found; pass a run directory or a .pt file written by training")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise KitError(
                f"{path} contains pickled Python objects, not only tensors; refusing to load it "
                "(kit checkpoints hold tensors and plain containers only)"
            ) from None
        raise KitError(f"{path} is not a readable checkpoint ({str(err).splitlines()[0]})") from None
    except Exception as err:  # torch.load on garbage raises many types (KeyError, EOFError, ...)
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise KitError(f"{path} is not a readable checkpoint (truncated or corrupt: {first})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise KitError(f"{path} is not a dsod-depth checkpoint (no 'model' state dict inside)")
    return state


def inference_record(
    build: dict[str, Any],
    *,
    groups: list[str],
    mean: dict[str, Any],
    std: dict[str, Any],
    input_size: tuple[int, int],
    class_names: list[str],
    kind: str = "detector",
    postprocess: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The plain record that lets a checkpoint run on new frames (module docstring).

    Args:
        build: the architecture, ``model.info["build"]`` (:func:`~dsod_depth.models.factory.build_spec`).
        groups: channel groups in input order (``["rgb", "hha"]``); ``mean``/``std``: per group the
            per-channel training statistics (sequence or tensor [C_g]).
        input_size: (height, width) of the network input.
        class_names: label i ↔ ``class_names[i]``.
        kind: ``detector`` or ``backbone`` (a pretraining checkpoint, no detection heads).
        postprocess: the run's post-processing settings, keyword arguments of
            :func:`~dsod_depth.detection.postprocess.postprocess` (``dataclasses.asdict`` of the config's
            ``postprocess``); the function's defaults fill what is not given.
    """
    import inspect

    from dsod_depth.detection.postprocess import postprocess as postprocess_fn
    from dsod_depth.encoders import needs_camera, num_channels

    def floats(values: Any) -> list[float]:
        return [float(v) for v in torch.as_tensor(values).reshape(-1).tolist()]

    records = []
    for g in groups:
        encoder = None if g == "rgb" else g
        records.append({
            "name": g,
            "channels": 3 if g == "rgb" else num_channels(g),
            "encoder": encoder,  # None: the colour image itself
            "needs_camera": encoder is not None and needs_camera(encoder),
            # data.transforms.Resize: colour bilinear, depth-like groups nearest (values never mixed).
            "resize": "bilinear" if g == "rgb" else "nearest-exact",
            "mean": floats(mean[g]),
            "std": floats(std[g]),
        })  # fmt: skip
    defaults = {
        k: (list(p.default) if isinstance(p.default, tuple) else p.default)
        for k, p in inspect.signature(postprocess_fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    unknown = sorted(set(postprocess or {}) - set(defaults))
    if unknown:
        raise ValueError(f"not a keyword of postprocess(): {', '.join(unknown)}")
    settings = {**defaults, **(postprocess or {})}
    return {
        "format": INFERENCE_FORMAT,
        "kit_version": __version__,
        "kind": kind,
        "build": build,
        "modality": "+".join(groups),
        "groups": records,
        "depth": {"unit": "metre", "quantum": DEPTH_QUANTUM_M},
        "input_size": [int(input_size[0]), int(input_size[1])],
        "class_names": list(class_names),
        "postprocess": settings,
    }


def dataset_inference_record(
    build: dict[str, Any], dataset: Any, *, kind: str = "detector", postprocess: dict[str, Any] | None = None
) -> dict[str, Any]:
    """:func:`inference_record` of a model trained on ``dataset`` (a
    :class:`~dsod_depth.data.loader.DetectionDataset`: groups, statistics, input size, classes), with
    the run's ``postprocess`` settings (as in :func:`inference_record`)."""
    return inference_record(
        build, groups=list(dataset.groups), mean=dataset.mean, std=dataset.std,
        input_size=dataset.input_size, class_names=list(dataset.class_names), kind=kind,
        postprocess=postprocess,
    )  # fmt: skip


def read_inference_record(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The checkpoint's inference record, checked; a :class:`KitError` names the first missing field.

    Checkpoints written before records existed have none: the error says so and how to recover
    (``--store`` supplies the normalisation; the rest comes from the stored config).
    """
    record = checkpoint.get("inference")
    if not isinstance(record, dict):
        raise KitError(
            f"{path} has no inference record (written by an older dsod-depth); pass --store STORE, the "
            "store it was trained on, to rebuild it from the stored config and the store's statistics"
        )
    for field in INFERENCE_FIELDS:
        if field not in record:
            raise KitError(f"{path}: inference record lacks {field!r}; the checkpoint is incomplete")
    for group in record["groups"]:
        if "mean" not in group or "std" not in group:
            raise KitError(
                f"{path}: inference record has no normalisation for {group.get('name')!r}; pass --store "
                "STORE (the store it was trained on) to read the statistics from"
            )
    return record


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy (legacy global) and torch RNG states as checkpoint-safe containers."""
    np_state = np.random.get_state()  # noqa: NPY002 (the global state third-party code uses)
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
