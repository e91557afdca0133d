"""Atomic file output shared by every writer of the kit (checkpoints, JSON, tables, images, stores).

Hand-written because the standard library has no "write then rename into place" helper: a
reader must never see a half-written file, an interrupted run must leave none behind, and the
result should have the usual permissions (``mkstemp`` alone makes files private).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dsod_depth.errors import KitError

# The temporary names of atomic_output: ``.<name>.<8 mkstemp characters>.tmp<suffix>``.
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp[^/]*$")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, move it onto ``path``.

    The temporary name keeps ``path``'s extension (writers such as Pillow or Open3D pick the format
    by it). On success the file is flushed to disk (fsync), given ``0o666`` less the umask and
    renamed over ``path``; on any failure it is removed and an existing ``path`` stays as it was.
    An OS failure becomes a :class:`KitError` naming the file. Parent folders are created.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise KitError(f"cannot write {path}: {err.strerror or err}") from None
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)  # reading the umask means setting it; put it straight back
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as err:
        raise KitError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_output`."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def temporaries(folder: str | os.PathLike) -> list[Path]:
    """The temporary files of :func:`atomic_output` below ``folder`` (sorted; none for no folder)."""
    return sorted(p for p in Path(folder).rglob(".*.tmp*") if p.is_file() and _TEMPORARY.match(p.name))


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left below ``folder`` (SIGKILL skips the
    clean-up of :func:`atomic_output`); returns them. Call it only while no other process can be
    writing there (e.g. holding the run lock). A missing folder has none."""
    stale = temporaries(folder)
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
