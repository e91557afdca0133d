"""The few places where numpy and torch spell an operation differently.

The geometry kernels (box sums, normals, gravity, HHA) are written once and run
on numpy arrays (the one-thread CPU path) and on torch tensors (batched, any
device) alike: slicing, arithmetic operators and most ufunc names are the same
in both libraries. Running the same sequence of IEEE operations on both is what
makes the two paths give identical results. This module holds the handful of
helpers whose spelling differs; it never imports torch unless a tensor is passed.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np


def is_torch(x: Any) -> bool:
    """True for a ``torch.Tensor`` (checked without importing torch)."""
    return type(x).__module__.split(".", 1)[0] == "torch"


def namespace(x: Any) -> Any:
    """The module whose functions apply to ``x``: ``numpy`` or ``torch``."""
    if is_torch(x):
        import torch

        return torch
    return np


def zeros(like: Any, shape: tuple[int, ...]) -> Any:
    """Zeros of ``shape`` with the dtype (and device) of ``like``."""
    if is_torch(like):
        return like.new_zeros(shape)
    return np.zeros(shape, dtype=like.dtype)


def empty(like: Any, shape: tuple[int, ...]) -> Any:
    """Uninitialised array of ``shape`` with the dtype (and device) of ``like``."""
    if is_torch(like):
        return like.new_empty(shape)
    return np.empty(shape, dtype=like.dtype)


def arange(like: Any, n: int) -> Any:
    """``0, 1, ..., n - 1`` as float values with the dtype (and device) of ``like``."""
    if is_torch(like):
        import torch

        return torch.arange(n, dtype=like.dtype, device=like.device)
    return np.arange(n, dtype=like.dtype)


def as_column(like: Any, values: Any) -> Any:
    """Per-batch scalars ``values`` [B] as an array [B, 1, 1] matching ``like`` (for broadcasting)."""
    if is_torch(like):
        import torch

        return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(-1, 1, 1)
    return np.asarray(values, dtype=like.dtype).reshape(-1, 1, 1)


def _libm(name: str, x: Any, out: Any = None) -> Any:
    """numpy's ``name`` (sqrt, arccos, ...) on an array or tensor, optionally into ``out``.

    torch's vectorised CPU ``sqrt`` is not always correctly rounded (it can be one
    ulp off where numpy and MATLAB are exact), which would make the batched CPU
    path differ from the numpy path; CPU tensors therefore go through numpy
    (zero-copy). CUDA tensors use torch's own function (IEEE sqrt on the GPU).
    """
    if is_torch(x):
        import torch

        if x.device.type == "cpu":
            result = getattr(np, name)(x.detach().numpy(), out=None if out is None else out.numpy())
            return torch.from_numpy(result) if out is None else out
        return getattr(torch, name)(x, out=out)
    return getattr(np, name)(x, out=out)


def sqrt(x: Any, out: Any = None) -> Any:
    """Correctly rounded square root (see :func:`_libm`)."""
    return _libm("sqrt", x, out)


def arccos(x: Any) -> Any:
    """Arc cosine in radians, numpy's implementation on the CPU (see :func:`_libm`)."""
    return _libm("arccos", x)


def sin(x: Any) -> Any:
    """Sine, numpy's implementation on the CPU (see :func:`_libm`)."""
    return _libm("sin", x)


def cos(x: Any) -> Any:
    """Cosine, numpy's implementation on the CPU (see :func:`_libm`)."""
    return _libm("cos", x)


def eigh(a: Any) -> tuple[Any, Any]:
    """Eigen-decomposition of stacked symmetric matrices [..., n, n]; eigenvalues ascending."""
    if is_torch(a):
        import torch

        return torch.linalg.eigh(a)
    return np.linalg.eigh(a)


def amin_per_item(x: Any) -> Any:
    """Minimum over all but the first axis: [B, ...] -> [B]."""
    flat = x.reshape(x.shape[0], -1)  # [B, ...] -> [B, N]
    if is_torch(x):
        return flat.amin(dim=1)
    return flat.min(axis=1)


def clip_nan_low(x: Any, low: float, high: float, out: Any = None) -> Any:
    """``x`` clipped to [low, high] with NaN -> ``low``, in two passes.

    ``fmax``/``fmin`` return the other operand when one is NaN, so this is
    ``where(isnan(x), low, clip(x, low, high))`` without the NaN test.
    """
    if is_torch(x):
        import torch

        bound = torch.tensor(low, dtype=x.dtype, device=x.device)
        out = torch.fmax(x, bound, out=out)
        return torch.fmin(out, bound.fill_(high), out=out)
    out = np.fmax(x, low, out=out)
    return np.fmin(out, high, out=out)


def copy(x: Any) -> Any:
    """A compact (contiguous) copy of an array or tensor, e.g. of a strided view."""
    if is_torch(x):
        import torch

        return x.clone(memory_format=torch.contiguous_format)
    return np.array(x, copy=True, order="C")


def to_float(mask: Any, like: Any) -> Any:
    """A boolean (or integer) array as values of ``like``'s dtype."""
    if is_torch(mask):
        return mask.to(like.dtype)
    return mask.astype(like.dtype)


def quiet() -> contextlib.AbstractContextManager:
    """Silence numpy's floating-point warnings (0/0 -> NaN is part of the algorithm)."""
    return np.errstate(divide="ignore", invalid="ignore")
