"""Depth images read by ``dsod-depth hha`` (``read_depth``: 16-bit PNG or PGM through Pillow, ``.npy``)
and raw NYU ``.pgm`` frames (``read_pgm``): damaged files are one error line, never a traceback."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from dsod_depth.data.depth_io import read_depth, read_pgm
from dsod_depth.errors import KitError
from tests.fuzz.mutations import assert_clean_outcome, check_examples, example_counts, mutated_bytes, run_cli

H, W = 12, 16
CAMERA = "14,14,7.5,5.5"  # FX,FY,CX,CY of a 16×12 frame


def _valid_depth_mm() -> np.ndarray:
    rows, cols = np.mgrid[0:H, 0:W]
    return (1000 + 100 * rows + 7 * cols).astype(np.uint16)  # [H, W] millimetres, a tilted plane


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _pgm(array: np.ndarray) -> bytes:
    return f"P5 {array.shape[1]} {array.shape[0]} 65535\n".encode() + array.astype(">u2").tobytes()


VALID = {".png": _png(_valid_depth_mm()), ".npy": _npy(_valid_depth_mm()), ".pgm": _pgm(_valid_depth_mm())}

# Whole arrays of wrong dtypes, shapes (0-d to 3-d, empty) and values (NaN, inf, negative, huge).
ODD_ARRAYS = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64, np.float16,
                           np.float32, np.float64, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
)  # fmt: skip

# PNGs that Pillow writes in other modes: 8-bit, colour, palette, 1-bit, 32-bit integer, float.
ODD_IMAGES = st.sampled_from([
    ("L", np.uint8, (H, W)), ("RGB", np.uint8, (H, W, 3)), ("RGBA", np.uint8, (H, W, 4)),
    ("I;16", np.uint16, (H, W)), ("1", np.bool_, (H, W)), ("LA", np.uint8, (H, W, 2)),
])  # fmt: skip


@st.composite
def depth_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes) of a damaged depth file."""
    kind = draw(st.sampled_from(["bytes", "array", "image"]))
    if kind == "bytes":
        suffix = draw(st.sampled_from(sorted(VALID)))
        return suffix, draw(mutated_bytes(VALID[suffix]))
    if kind == "array":
        return ".npy", _npy(draw(ODD_ARRAYS))
    mode, dtype, shape = draw(ODD_IMAGES)
    values = np.arange(np.prod(shape)).reshape(shape) % (2 if dtype == np.bool_ else 250)
    return ".png", _png(values.astype(dtype))


def _check_read_depth(case: tuple[str, bytes]) -> None:
    suffix, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"depth{suffix}"
        path.write_bytes(data)
        try:
            metres = read_depth(path, 1000.0)
        except KitError:
            return
        assert metres.dtype == np.float64 and metres.ndim == 2 and np.isfinite(metres).all()


# Non-finite values are holes with a counting warning (docs/reliability.md): expected here.
@pytest.mark.filterwarnings("ignore:.*NaN or infinite; read as holes:UserWarning")
@pytest.mark.parametrize("max_examples", example_counts(150))
def test_read_depth_returns_or_raises_kit_error(max_examples):
    check_examples(depth_files(), _check_read_depth, max_examples=max_examples)


def _check_hha_cli(case: tuple[str, bytes]) -> None:
    suffix, data = case
    with tempfile.TemporaryDirectory() as tmp:
        depth, out = Path(tmp) / f"depth{suffix}", Path(tmp) / "hha.png"
        depth.write_bytes(data)
        code, stderr = run_cli(["hha", depth, "--depth-scale", "1000", "--camera", CAMERA, "--out", out])
        if assert_clean_outcome(code, stderr, [out]):
            assert out.is_file()


@pytest.mark.parametrize("max_examples", example_counts(30))
def test_hha_command_on_damaged_depth(max_examples):
    check_examples(depth_files(), _check_hha_cli, max_examples=max_examples)


def _check_read_pgm(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raw.pgm"
        path.write_bytes(data)
        try:
            values = read_pgm(path, byteorder="little")
        except KitError:
            return
        assert values.ndim == 2 and values.dtype in (np.uint8, np.uint16)


@pytest.mark.parametrize("max_examples", example_counts(150))
def test_read_pgm_returns_or_raises_kit_error(max_examples):
    check_examples(mutated_bytes(VALID[".pgm"]), _check_read_pgm, max_examples=max_examples)
