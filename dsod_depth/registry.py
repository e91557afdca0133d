"""A small name → object registry used for detectors, backbones, datasets and encoders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from dsod_depth.errors import KitError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; registering a name twice raises.

    Example::

        ENCODERS = Registry("encoder")

        @ENCODERS.register("hha")
        def encode_hha(depth, raw_depth, intrinsics): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise KitError(f"unknown {self.kind} {name!r}; choose one of: {known}") from None

    def list(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
