"""The library prints nothing: only the command line (``dsod_depth/cli/``) shows output.

Library code reports through return values, :class:`~dsod_depth.errors.KitError`, ``warnings.warn``
and the ``log`` callables it takes; a ``print`` call anywhere else is output that no caller can
redirect or silence.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dsod_depth"
CLI = PACKAGE / "cli"


def print_calls(source: str) -> list[int]:
    """Line numbers of the calls of the builtin ``print`` (by name, e.g. ``print(x)``) in ``source``."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    )


def test_no_module_outside_the_cli_calls_print():
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if CLI not in path.parents
        for line in print_calls(path.read_text(encoding="utf-8"))
    ]
    assert not found, "print() outside dsod_depth/cli/ (log, warn or return it instead): " + ", ".join(found)


def test_the_check_finds_print_calls():
    source = "import sys\n\ndef f(x):\n    print(x)\n    sys.stdout.write('a')\n    return [print]\n"
    assert print_calls(source) == [4]
    assert print_calls("def g():\n    print('a', file=None, flush=True)\n") == [2]
    assert print_calls("pprint = 1\nlog = print\n") == []
