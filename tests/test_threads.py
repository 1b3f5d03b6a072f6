"""The server picks its own processes and threads, so a small busy machine needs no OMP_NUM_THREADS setting."""

import os
import threading

import pytest

from geovec.errors import GeovecInputError
from geovec.threads import (MAX_SERVER_PROCESSES, MAX_SERVER_THREADS, available_memory, pin_to_cores,
                            processes_that_fit, resident_memory, server_processes, server_threads, usable_cores)


def test_server_runs_a_process_per_core_and_takes_half_the_cores_each_has_unless_told(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert server_processes() == min(MAX_SERVER_PROCESSES, usable_cores())
    assert server_processes(3) == 3
    with pytest.raises(GeovecInputError, match="--workers: must be >= 1"):
        server_processes(0)
    assert server_threads() == max(1, min(MAX_SERVER_THREADS, usable_cores() // 2))
    assert server_threads(processes=2) == max(1, min(MAX_SERVER_THREADS, usable_cores() // 4))
    assert server_threads(3) == 3  # --threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert server_threads() == 5  # a user's explicit setting is respected
    with pytest.raises(GeovecInputError, match="--threads: must be >= 1"):
        server_threads(0)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="the OS cannot pin threads")
def test_pinning_gives_each_share_its_own_cores_and_leaves_other_threads_alone():
    before = os.sched_getaffinity(0)
    shares = min(2, len(before))
    found: list = []

    def pin(share: int) -> None:
        found.append((pin_to_cores(share, shares), os.sched_getaffinity(0)))

    for share in range(shares):
        thread = threading.Thread(target=pin, args=(share,))
        thread.start()
        thread.join()
    assert all(pinned == now for pinned, now in found)  # the thread runs where it was pinned
    assert set().union(*(pinned for pinned, _ in found)) <= before
    assert shares == 1 or not found[0][0] & found[1][0]  # two shares never share a core
    assert os.sched_getaffinity(0) == before  # the calling thread is not moved
    assert pin_to_cores(0, len(before) + 1) is None  # more shares than cores: no pinning


def test_worker_processes_are_only_as_many_as_memory_holds():
    gib = 1 << 30
    assert processes_that_fit(4, each=2 * gib, available=64 * gib) == 4
    assert processes_that_fit(4, each=2 * gib, available=5 * gib) == 3  # 2 more copies fit with a quarter spare
    assert processes_that_fit(4, each=2 * gib, available=gib) == 1  # this process alone, never none
    assert processes_that_fit(4, each=None, available=gib) == 4  # unknown: as asked
    if os.path.exists("/proc/meminfo"):
        assert 0 < resident_memory() < available_memory() + resident_memory()
