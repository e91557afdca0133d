"""Lazy package exports: names resolved on first use, so importing a package stays light.

Used by packages whose members pull in heavy dependencies (torch, h5py, matplotlib) that the
CLI's start-up and other light imports should not pay for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, table: dict[str, str], names: list[str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for a package: ``table`` maps an exported name to its module."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
