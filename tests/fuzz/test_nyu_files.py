"""``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 / HDF5) read by ``prepare nyudv2``: variables removed, of
wrong shapes or dtypes, holding NaN, and damaged bytes. The parse (header, class names, every frame) returns
or raises KitError; one CLI example per kind leaves no store behind."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import strategies as st

from dsod_depth.data.nyudv2 import NyuFrames, class_ids_from_names, read_labeled_header
from dsod_depth.errors import KitError
from tests.data.fixtures_nyu import build_nyu_source
from tests.fuzz.mutations import assert_clean_outcome, check_examples, example_counts, run_cli

VARIABLES = ("images", "depths", "rawDepths", "labels", "instances", "names")
NUM_FRAMES = 2


@pytest.fixture(scope="module")
def nyu_source(tmp_path_factory) -> Path:
    folder, _ = build_nyu_source(tmp_path_factory.mktemp("nyu"), num_frames=NUM_FRAMES)
    return folder


# One edit of one variable: the file keeps its MATLAB header and every other variable.
VARIABLE_EDITS = st.tuples(
    st.sampled_from(VARIABLES),
    st.sampled_from(["drop", "shape", "frames", "dtype", "nan", "huge", "scalar", "empty"]),
    st.sampled_from([np.float32, np.float64, np.int8, np.int32, np.uint32, np.int64, np.bool_, np.complex64]),
)


def _edit_variable(path: Path, edit: tuple[str, str, type]) -> None:
    var, op, dtype = edit
    with h5py.File(path, "r+") as f:
        data = f[var][()]
        del f[var]
        if op == "drop":
            return
        if op == "shape":  # MATLAB order instead of h5py's (axes not reversed), or a cropped frame
            data = data.swapaxes(-1, -2) if data.ndim >= 2 else data[None]
        elif op == "frames":  # one variable with fewer frames than the others
            data = data[:1] if var != "names" else data[:, :10]
        elif op == "dtype":
            data = data.astype(dtype) if var != "names" else np.zeros(data.shape, dtype)
        elif op == "nan" and var != "names":
            data = data.astype(np.float32)
            data.reshape(-1)[::97] = np.nan
        elif op == "huge" and var != "names":
            data = np.full(data.shape, 2**31 - 1, dtype=np.int64)
        elif op == "scalar":
            data = np.float64(1.0)
        elif op == "empty":
            data = np.zeros((0,) * max(data.ndim, 1), dtype=np.float64)
        f.create_dataset(var, data=data)


def _parse(path: Path) -> None:
    """Everything ``prepare nyudv2`` reads from the labeled file, frame by frame."""
    num_frames, names = read_labeled_header(path)
    frames = NyuFrames(path, np.arange(num_frames), class_ids_from_names(names), "gupta")
    for i in range(len(frames)):
        frames(i).validate(19)


NYU_CASES = st.one_of(st.tuples(st.just("variable"), VARIABLE_EDITS),
                      st.tuples(st.just("bytes"), st.integers(0, 2**32 - 1)))  # fmt: skip


@pytest.mark.parametrize("max_examples", example_counts(25))
def test_labeled_file_parse_returns_or_raises_kit_error(max_examples, nyu_source):
    valid_bytes = (nyu_source / "nyu_depth_v2_labeled.mat").read_bytes()

    def check(case) -> None:
        kind, value = case
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "nyu_depth_v2_labeled.mat"
            if kind == "variable":
                shutil.copy(nyu_source / "nyu_depth_v2_labeled.mat", path)
                _edit_variable(path, value)
            else:  # damaged bytes, drawn reproducibly from the seed (the file is a few MB)
                data = _damage(valid_bytes, value)
                path.write_bytes(data)
            try:
                _parse(path)
            except KitError:
                pass

    check_examples(NYU_CASES, check, max_examples=max_examples,
                   always=[("variable", ("labels", "dtype", np.float32)), ("bytes", 0)])  # fmt: skip


def _damage(data: bytes, seed: int) -> bytes:
    """Truncation, flipped bytes or appended bytes at seeded positions (the HDF5 metadata sits near the
    start and the end of the file, so half the positions are drawn there)."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    op = ("truncate", "flip", "append")[seed % 3]
    if op == "truncate":
        return bytes(out[: int(rng.integers(0, len(out)))])
    if op == "append":
        return bytes(out) + rng.bytes(int(rng.integers(1, 4096)))
    for _ in range(int(rng.integers(1, 16))):
        i = int(rng.integers(0, 8192)) if rng.random() < 0.5 else int(rng.integers(0, len(out)))
        out[i] ^= int(rng.integers(1, 256))
    return bytes(out)


@pytest.mark.parametrize("edit", [("labels", "drop", None), ("labels", "dtype", np.float32)], ids=str)
def test_prepare_command_on_damaged_labeled_file(edit, nyu_source, tmp_path):
    source, out = tmp_path / "source", tmp_path / "store"
    shutil.copytree(nyu_source, source)
    _edit_variable(source / "nyu_depth_v2_labeled.mat", edit)
    code, stderr = run_cli(["prepare", "nyudv2", "--source", source, "--out", out, "--no-progress"])
    if not assert_clean_outcome(code, stderr, [out / "train.h5", out / "test.h5"]):
        assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.merging"))  # no half-written shard
