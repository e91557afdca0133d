"""Check that Open3D loads in this Python, after the kit's packages are installed.

``make setup`` runs it with the virtual environment's python once pip has installed everything.
The decision comes from Open3D's own import, not from guessing at system libraries beforehand:

- ``import open3d`` works: exit 0 (macOS, Windows and most Linux machines end here).
- it fails for want of ``libusb-1.0`` (the Linux wheels link against it) on Linux, as root, with
  ``apt-get`` on PATH: install ``libusb-1.0-0`` with apt-get, import again in a fresh process and
  exit 0 when that works.
- anything else: print one line naming the problem and the fix, exit 2.

Usage: ``.venv/bin/python tools/check_open3d.py``
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

ImportAttempt = Callable[[], str | None]
Runner = Callable[[Sequence[str]], int]

APT_PACKAGE = "libusb-1.0-0"
APT_INSTALL = ("apt-get", "install", "-y", "-qq", APT_PACKAGE)
APT_UPDATE = ("apt-get", "update", "-qq")

LIBUSB_HINT = (
    "error: open3d cannot load libusb-1.0 (needed on Linux); install it with your package manager, "
    f"e.g. 'sudo apt-get install {APT_PACKAGE}', then rerun make"
)
APT_FAILED = (
    f"error: open3d cannot load libusb-1.0 (needed on Linux) and 'apt-get install {APT_PACKAGE}' failed; "
    "install it with your package manager, then rerun make"
)


def first_line(message: str) -> str:
    """The first non-blank line of an error message (the whole message when it has one line)."""
    for line in message.splitlines():
        if line.strip():
            return line.strip()
    return message.strip() or "unknown error"


def is_libusb_error(message: str) -> bool:
    """True when an import error is the dynamic loader failing to find libusb-1.0."""
    return "libusb" in message.lower()


def import_in_process() -> str | None:
    """``import open3d`` here; None when it works, else ``'<ExceptionType>: <message>'``."""
    try:
        import open3d  # noqa: F401
    except Exception as exc:  # ImportError, OSError from the loader, or anything the package raises
        return f"{type(exc).__name__}: {exc}"
    return None


def import_in_subprocess(python: str | None = None) -> str | None:
    """``import open3d`` in a fresh interpreter (sees a library installed after this one started)."""
    proc = subprocess.run(
        [python or sys.executable, "-c", "import open3d"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode == 0:
        return None
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    # The traceback's last line is the exception itself ("ImportError: libusb-1.0.so.0: ...").
    return lines[-1] if lines else f"python exited with status {proc.returncode}"


def run_quietly(argv: Sequence[str]) -> int:
    """Run a command with its output hidden and no prompts; return its exit status."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        return subprocess.run(
            list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        ).returncode
    except OSError:
        return 127


def install_libusb(runner: Runner) -> bool:
    """``apt-get install libusb-1.0-0``; on failure refresh the package lists once and try again."""
    if runner(list(APT_INSTALL)) == 0:
        return True
    return runner(list(APT_UPDATE)) == 0 and runner(list(APT_INSTALL)) == 0


def check(
    try_import: ImportAttempt,
    *,
    retry_import: ImportAttempt | None = None,
    which: Callable[[str], str | None] = shutil.which,
    is_root: Callable[[], bool] = lambda: False,
    platform: str = sys.platform,
    runner: Runner = run_quietly,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Exit status of the check: 0 when Open3D imports (possibly after installing libusb), else 2.

    ``try_import``/``retry_import`` return None on success or the error message; ``retry_import``
    (default: ``try_import``) is the attempt made after installing libusb, in a fresh process.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    error = try_import()
    if error is None:
        return 0
    if not (platform.startswith("linux") and is_libusb_error(error)):
        print(f"error: cannot import open3d: {first_line(error)}", file=err)
        return 2
    if not (is_root() and which("apt-get")):
        print(LIBUSB_HINT, file=err)
        return 2
    print(f"installing {APT_PACKAGE} (needed by open3d) with apt-get", file=out)
    if not install_libusb(runner):
        print(APT_FAILED, file=err)
        return 2
    error = (retry_import or try_import)()
    if error is None:
        return 0
    if is_libusb_error(error):
        print(f"error: open3d still cannot load libusb-1.0 after installing {APT_PACKAGE}: "
              f"{first_line(error)}", file=err)
    else:
        print(f"error: cannot import open3d: {first_line(error)}", file=err)
    return 2


def _is_root() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def main() -> int:
    return check(
        import_in_process,
        retry_import=import_in_subprocess,
        which=shutil.which,
        is_root=_is_root,
        platform=sys.platform,
        runner=run_quietly,
    )


if __name__ == "__main__":
    sys.exit(main())
