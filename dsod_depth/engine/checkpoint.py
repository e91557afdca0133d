"""Checkpoints that hold tensors and plain containers only.

Every checkpoint is written atomically (temporary file in the same folder, fsync,
rename), so a run killed at any moment leaves either the previous checkpoint or the
new one, never a torn file. Loading uses ``torch.load(..., weights_only=True)``:
nothing in a checkpoint can execute code, and a file with pickled objects is
refused with a clear error.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsod_depth.errors import KitError
from dsod_depth.fileio import atomic_output


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
