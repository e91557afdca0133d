"""Hypothesis strategies that damage a valid input file, and the CLI outcome every damaged input must have.

Two kinds of mutation, both drawn from a valid fixture so that most examples are *nearly* valid (the
inputs that reach deep into a parser):

* :func:`mutated_bytes` — truncation, flipped bytes, random bytes appended or inserted, an empty file;
* :func:`mutated_tree` — a JSON/YAML-like tree with one to three structural edits: a key or list item
  dropped, a value replaced by a wrong type, an empty container, a huge, negative or non-finite number.

:func:`run_cli` calls ``dsod_depth.cli.main`` in-process; :func:`assert_clean_outcome` checks the
contract of the CLI (``dsod_depth/cli/``): success, or exactly one ``error: ...`` line and exit code 2 —
never an exception escaping ``main`` and never an output left behind by a failed command.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dsod_depth.cli import main

# Examples per property: the default suite stays under a minute on two cores; `-m slow` runs FACTOR×.
SLOW_FACTOR = 10


def example_counts(default: int) -> list:
    """``parametrize`` values: the bounded default-suite count and a ``slow`` one with more examples."""
    return [pytest.param(default, id="default"), pytest.param(default * SLOW_FACTOR, id="slow",
                                                              marks=pytest.mark.slow)]  # fmt: skip


def check_examples(
    strategy: st.SearchStrategy,
    check: Callable[[Any], None],
    *,
    max_examples: int,
    always: Sequence[Any] = (),
) -> None:
    """Run ``check`` on ``max_examples`` draws of ``strategy`` and on every input of ``always`` (the
    regressions found so far). No example database: a failure is reproduced from the printed seed."""

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.large_base_example])  # fmt: skip
    @given(strategy)
    def run(value: Any) -> None:
        check(value)

    for value in always:
        run = example(value)(run)
    run()


# --------------------------------------------------------------------------- bytes


@st.composite
def mutated_bytes(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with 1–3 byte-level edits (or emptied)."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["truncate", "flip", "append", "insert", "empty"]))
        if op == "empty" or not data:
            data = bytearray()
        elif op == "truncate":
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif op == "flip":
            for _ in range(draw(st.integers(1, 8))):
                i = draw(st.integers(0, len(data) - 1))
                data[i] ^= draw(st.integers(1, 255))
        elif op == "append":
            data += draw(st.binary(min_size=1, max_size=64))
        else:
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


# --------------------------------------------------------------------------- trees

# Values that a reader must not trust: wrong types, empty containers, huge / negative / non-finite
# numbers (10**400 overflows float; JSON and YAML both let NaN and infinity through).
WEIRD_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 10**400, -(10**400), 2**63, 1e308, -1e308, math.nan,
                     math.inf, -math.inf, 0.5, "", "x", "1", "nan", [], {}, [[]], [None], {"": None}]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)  # fmt: skip


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) into a tree of dicts and lists, the root included."""
    out = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out += _paths(value, (*prefix, i))
    return out


def _mutate_once(draw: st.DrawFn, tree: Any) -> Any:
    path = draw(st.sampled_from(_paths(tree)))
    if not path:
        return draw(st.one_of(WEIRD_VALUES, st.just([tree]), st.just({"x": tree})))
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    op = draw(st.sampled_from(["drop", "replace", "empty", "duplicate", "stringify"]))
    if op == "drop":
        del parent[key]
    elif op == "replace":
        parent[key] = draw(WEIRD_VALUES)
    elif op == "empty":
        value = parent[key]
        parent[key] = type(value)() if isinstance(value, (dict, list, str)) else None
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    else:  # a number or structure written as a string, as a hand-edited file might have it
        parent[key] = str(parent[key])
    return tree


@st.composite
def mutated_tree(draw: st.DrawFn, valid: Any) -> Any:
    """A deep copy of ``valid`` (dicts, lists, scalars) with 1–3 structural edits."""
    tree = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        tree = _mutate_once(draw, tree)
    return tree


# --------------------------------------------------------------------------- CLI outcome


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``dsod-depth ARGV`` in-process → (exit code, stderr). An exception escaping ``main`` propagates,
    so hypothesis reports it with the input that caused it."""
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse mistakes exit through _Parser.error
            code = exit_.code
    return code, stderr.getvalue()


def assert_clean_outcome(code: int, stderr: str, outputs: list[Path] = ()) -> bool:
    """Success (code 0), or exit code 2 with exactly one ``error:`` line (other lines may only be
    ``warning:`` lines) and none of ``outputs`` left behind. Returns whether the command succeeded."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    if code == 0:
        assert not any(line.startswith("error:") for line in lines), stderr
        return True
    assert code == 2, (code, stderr)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), stderr
    for path in outputs:
        assert not Path(path).exists(), f"{path} left behind by a failed command: {stderr}"
    return False
