"""Small SynthRooms frames shared by the data tests (generated once per session: a few ms each)."""

from __future__ import annotations

import pytest

from dsod_depth.data.synthrooms import SynthRooms, SynthRoomsConfig

SMALL = SynthRoomsConfig(width=96, height=72)


@pytest.fixture(scope="session")
def small_rooms() -> SynthRooms:
    return SynthRooms(SMALL, seed=7)


@pytest.fixture(scope="session")
def small_frames(small_rooms):
    return [small_rooms.frame(i) for i in range(12)]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Per-sample tensor work runs on one thread, as in DataLoader workers; it also keeps small ops
    from stalling on OpenMP barriers when the machine is busy."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
