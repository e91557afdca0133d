"""Shared fixtures: the real sample files in ../shared/data (skipped cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``$DSOD_SHARED_DATA`` or ``../shared/data`` beside the project root, if it exists."""
    env = os.environ.get("DSOD_SHARED_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    """Folder of real sample data; the test is skipped when it is not there."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("real sample data not found: set DSOD_SHARED_DATA or place it at ../shared/data")
    return path
