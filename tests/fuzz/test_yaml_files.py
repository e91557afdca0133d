"""Experiment config YAML (``load_config``, read by ``train``) and matrix YAML (``load_matrix``, read by
``sweep``): damaged files are one error line, never a traceback."""

from __future__ import annotations

import tempfile
import types
from pathlib import Path

import pytest
import yaml
from hypothesis import strategies as st

from dsod_depth.config import load_config
from dsod_depth.errors import KitError
from dsod_depth.experiments.matrix import load_matrix
from tests.conftest import REPO_ROOT
from tests.fuzz.mutations import (
    assert_clean_outcome,
    check_examples,
    example_counts,
    mutated_bytes,
    mutated_tree,
    run_cli,
)  # fmt: skip

CONFIG = yaml.safe_load((REPO_ROOT / "experiments/configs/synthrooms/rgb_scratch.yaml").read_text())
MATRIX = {
    "name": "fuzz",
    "output": "OUT",  # replaced by a folder of the example's temporary directory
    "config": str(REPO_ROOT / "experiments/configs/{dataset}/{modality}_{init}.yaml"),
    "datasets": {"synthrooms": "runs/data/synthrooms"},
    "modalities": ["rgb", "depth"],
    "inits": ["scratch", "imagenet"],
    "seeds": [0, 1],
    "set": ["train.iters=10"],
}


def _as_text(tree) -> bytes:
    return yaml.safe_dump(tree, sort_keys=False).encode()  # NaN as .nan, huge integers as digits


def damaged_yaml(valid) -> st.SearchStrategy[bytes]:
    """A structurally edited tree, or the valid text with its bytes damaged."""
    return st.one_of(mutated_tree(valid).map(_as_text), mutated_bytes(_as_text(valid)))


# Found by these tests: bytes that are not UTF-8 escaped both loaders as UnicodeDecodeError; a NUL byte
# gave a two-line error; an integer beyond float64 in a float field escaped as OverflowError.
NOT_UTF8 = b"name: \xff\xfe\n"
CONFIG_REGRESSIONS = [NOT_UTF8, _as_text(CONFIG) + b"\x00",
                      _as_text({**CONFIG, "optim": {**CONFIG["optim"], "lr": 10**400}})]  # fmt: skip


def _check_load_config(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(text)
        try:
            load_config(path)
        except KitError:
            pass


@pytest.mark.parametrize("max_examples", example_counts(200))
def test_load_config_returns_or_raises_kit_error(max_examples):
    check_examples(
        damaged_yaml(CONFIG), _check_load_config, max_examples=max_examples, always=CONFIG_REGRESSIONS
    )


@pytest.mark.parametrize("max_examples", example_counts(40))
def test_train_command_on_damaged_config(max_examples, monkeypatch):
    import dsod_depth.engine.trainer as trainer

    trained = []

    def fake_train(config, run_dir, *, resume, progress):  # the parsed config is all this test needs
        trained.append(config)
        return types.SimpleNamespace(step=0, best_step=-1, best_map=0.0)

    monkeypatch.setattr(trainer, "train", fake_train)

    def check(text: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path, run_dir = Path(tmp) / "config.yaml", Path(tmp) / "run"
            path.write_bytes(text)
            code, stderr = run_cli(["train", path, "--out", run_dir, "--no-progress"])
            assert_clean_outcome(code, stderr, [run_dir])

    check_examples(damaged_yaml(CONFIG), check, max_examples=max_examples, always=CONFIG_REGRESSIONS)
    assert trained  # some examples parse: the property is not vacuous


def _check_load_matrix(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "matrix.yaml"
        path.write_bytes(text)
        try:
            load_matrix(path)
        except KitError:
            pass


@pytest.mark.parametrize("max_examples", example_counts(200))
def test_load_matrix_returns_or_raises_kit_error(max_examples):
    check_examples(damaged_yaml(MATRIX), _check_load_matrix, max_examples=max_examples, always=[NOT_UTF8])


def _check_sweep_cli(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "matrix.yaml", Path(tmp) / "OUT"
        path.write_bytes(text.replace(b"OUT", str(out).encode()))
        code, stderr = run_cli(["sweep", path, "--dry-run", "--no-progress"])
        assert_clean_outcome(code, stderr, [out])
        assert not out.exists()  # a dry run writes nothing, success or not


@pytest.mark.parametrize("max_examples", example_counts(20))
def test_sweep_dry_run_on_damaged_matrix(max_examples):
    check_examples(damaged_yaml(MATRIX), _check_sweep_cli, max_examples=max_examples, always=[NOT_UTF8])
