"""Per-frame preparation work: one BLAS/OpenMP thread per frame, frames in order."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from dsod_depth.data.preprocess import _init_worker, processed_frames


def pool_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info()]


class RecordingFrames:
    """Frame source that records the thread counts of the BLAS/OpenMP pools while it runs."""

    def __init__(self, frames):
        self.frames, self.seen = frames, []

    def __call__(self, index):
        self.seen.append(pool_threads())
        return self.frames[index]


def test_in_process_frames_run_on_one_thread_and_restore_the_pools(small_rooms):
    samples = [small_rooms.sample(i) for i in range(3)]
    with threadpool_limits(limits=2):  # what a 2-core machine starts with
        before = pool_threads()
        source = RecordingFrames(samples)
        items = list(processed_frames(source, range(3), ["rgb", "hha"], True, 0, workers=1))
        assert [item.index for item in items] == [0, 1, 2]
        assert source.seen and all(counts and max(counts) == 1 for counts in source.seen)
        assert pool_threads() == before  # the main process keeps its pools between frames
    assert items[0].hha.shape == (*samples[0].depth.shape, 3)
    assert np.array_equal(items[1].depth_mm, np.rint(samples[1].depth * 1000).astype(np.uint16))


def test_worker_processes_limit_their_pools_to_one_thread():
    with threadpool_limits(limits=None):  # restores this process's thread counts afterwards
        with threadpool_limits(limits=2):
            _init_worker(None, ["rgb"], False, 0)
            assert max(pool_threads()) == 1
