"""tools/check_open3d.py: the set-up decides from Open3D's own import, after the pip installs."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tools" / "check_open3d.py"

LIBUSB_ERROR = "ImportError: libusb-1.0.so.0: cannot open shared object file: No such file or directory"
INSTALL = ["apt-get", "install", "-y", "-qq", "libusb-1.0-0"]
UPDATE = ["apt-get", "update", "-qq"]


def _load_script():
    spec = importlib.util.spec_from_file_location("check_open3d", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_open3d = _load_script()


class Imports:
    """An import attempt returning the given results in turn (None = success); counts its calls."""

    def __init__(self, *results: str | None):
        self.results = list(results)
        self.calls = 0

    def __call__(self) -> str | None:
        self.calls += 1
        return self.results.pop(0)


class Runner:
    """Records the commands it is given; answers each with the next exit status."""

    def __init__(self, *statuses: int):
        self.statuses = list(statuses)
        self.commands: list[list[str]] = []

    def __call__(self, argv) -> int:
        self.commands.append(list(argv))
        return self.statuses.pop(0)


def _no_tools(name: str) -> None:
    return None


def _apt_only(name: str) -> str | None:
    return "/usr/bin/apt-get" if name == "apt-get" else None


def _run(try_import, *, retry_import=None, which=_no_tools, root=False, platform="linux", runner=None):
    out, err = io.StringIO(), io.StringIO()
    runner = runner if runner is not None else Runner()
    code = check_open3d.check(
        try_import,
        retry_import=retry_import,
        which=which,
        is_root=lambda: root,
        platform=platform,
        runner=runner,
        out=out,
        err=err,
    )
    return code, out.getvalue(), err.getvalue(), runner


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_importable_open3d_passes_without_ldconfig_or_apt(platform):
    runner = Runner()
    code, out, err, _ = _run(Imports(None), which=_no_tools, platform=platform, runner=runner)
    assert code == 0
    assert out == "" and err == ""
    assert runner.commands == []


def test_missing_libusb_as_non_root_prints_the_fix_and_exits_2():
    runner = Runner()
    code, out, err, _ = _run(Imports(LIBUSB_ERROR), which=_apt_only, root=False, runner=runner)
    assert code == 2
    assert runner.commands == []
    lines = _lines(out + err)
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert "libusb-1.0" in lines[0] and "apt-get install libusb-1.0-0" in lines[0]


def test_missing_libusb_as_root_without_apt_get_prints_the_fix_and_exits_2():
    runner = Runner()
    code, out, err, _ = _run(Imports(LIBUSB_ERROR), which=_no_tools, root=True, runner=runner)
    assert code == 2
    assert runner.commands == []
    lines = _lines(out + err)
    assert len(lines) == 1 and "libusb-1.0-0" in lines[0]


def test_missing_libusb_as_root_with_apt_get_installs_it_and_reimports():
    first, retry = Imports(LIBUSB_ERROR), Imports(None)
    runner = Runner(0)
    code, out, err, _ = _run(first, retry_import=retry, which=_apt_only, root=True, runner=runner)
    assert code == 0
    assert runner.commands == [INSTALL]
    assert first.calls == 1 and retry.calls == 1
    assert err == ""


def test_apt_get_install_is_retried_after_one_update():
    retry = Imports(None)
    runner = Runner(100, 0, 0)
    code, _, err, _ = _run(
        Imports(LIBUSB_ERROR), retry_import=retry, which=_apt_only, root=True, runner=runner
    )
    assert code == 0
    assert runner.commands == [INSTALL, UPDATE, INSTALL]
    assert retry.calls == 1
    assert err == ""


@pytest.mark.parametrize("statuses", [(100, 100, 100), (100, 1)])
def test_failing_apt_get_prints_one_line_and_exits_2(statuses):
    retry = Imports(None)
    runner = Runner(*statuses)
    code, out, err, _ = _run(
        Imports(LIBUSB_ERROR), retry_import=retry, which=_apt_only, root=True, runner=runner
    )
    assert code == 2
    assert runner.commands[0] == INSTALL and UPDATE in runner.commands
    assert retry.calls == 0
    lines = _lines(err)
    assert len(lines) == 1
    assert lines[0].startswith("error:") and "libusb-1.0-0" in lines[0]


def test_reimport_still_failing_after_install_exits_2_with_one_line():
    retry = Imports("ImportError: libGL.so.1: cannot open shared object file")
    code, _, err, _ = _run(
        Imports(LIBUSB_ERROR), retry_import=retry, which=_apt_only, root=True, runner=Runner(0)
    )
    assert code == 2
    lines = _lines(err)
    assert len(lines) == 1 and "libGL.so.1" in lines[0]


def test_retry_defaults_to_the_same_import_attempt():
    attempt = Imports(LIBUSB_ERROR, None)
    code, *_ = _run(attempt, which=_apt_only, root=True, runner=Runner(0))
    assert code == 0
    assert attempt.calls == 2


@pytest.mark.parametrize("platform", ["darwin", "win32"])
@pytest.mark.parametrize(
    "error",
    [
        "ModuleNotFoundError: No module named 'open3d'\n  more detail",
        "ImportError: dlopen(pybind.so): Library not loaded: libusb-1.0.0.dylib",
    ],
)
def test_non_linux_import_failure_reports_the_original_error_without_apt(platform, error):
    runner = Runner()
    code, out, err, _ = _run(Imports(error), which=_apt_only, root=True, platform=platform, runner=runner)
    assert code == 2
    assert runner.commands == []
    lines = _lines(out + err)
    assert len(lines) == 1
    assert error.splitlines()[0] in lines[0]


def test_other_linux_import_failure_reports_the_original_error_without_apt():
    runner = Runner()
    error = "ImportError: numpy.core.multiarray failed to import\nsecond line"
    code, out, err, _ = _run(Imports(error), which=_apt_only, root=True, runner=runner)
    assert code == 2
    assert runner.commands == []
    lines = _lines(out + err)
    assert lines == [f"error: cannot import open3d: {error.splitlines()[0]}"]


def test_real_script_passes_with_no_ldconfig_or_apt_get_on_path(tmp_path):
    """The script itself, as make runs it, on a PATH with neither ldconfig nor apt-get (as on a Mac)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    path = str(empty)
    py_bin = os.path.dirname(sys.executable)
    if not any(shutil.which(tool, path=py_bin) for tool in ("ldconfig", "apt-get")):
        path = os.pathsep.join([path, py_bin])
    assert shutil.which("ldconfig", path=path) is None
    assert shutil.which("apt-get", path=path) is None
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    env["PATH"] = path
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == ""


def test_fresh_process_import_reports_the_exception_line(tmp_path):
    """The re-import after apt-get runs in a new interpreter and returns the traceback's last line."""
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'Traceback (most recent call last):' >&2\n"
        "echo '  File \"<string>\", line 1, in <module>' >&2\n"
        f"echo '{LIBUSB_ERROR}' >&2\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    if os.name != "posix":
        pytest.skip("needs a POSIX shell")
    assert check_open3d.import_in_subprocess(str(fake)) == LIBUSB_ERROR
    assert check_open3d.import_in_subprocess(sys.executable) is None
