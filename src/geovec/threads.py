"""How many threads torch and BLAS use in a long-running server.

Why: torch and OpenBLAS start one busy-waiting thread per core; on a small machine shared with other work
(another process, the server's own HTTP handling) they fight over the cores, and one query took ~700 ms instead of
~15 ms on 2 busy cores. A server that batches queries gains little from intra-op threads, so it takes half the
cores it may run on (at least 1, at most 8) unless told otherwise.
"""

from __future__ import annotations

import os

from geovec.errors import GeovecInputError

MAX_SERVER_THREADS = 8


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def server_threads(requested: int | None = None) -> int:
    """``requested`` if given, else ``OMP_NUM_THREADS`` if set to a number, else half the usable cores (1-8)."""
    if requested is not None:
        if requested < 1:
            raise GeovecInputError("--threads", f"must be >= 1, got {requested}")
        return requested
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    return max(1, min(MAX_SERVER_THREADS, usable_cores() // 2))


def use_threads(count: int) -> None:
    """Set torch's intra-op threads and every BLAS/OpenMP pool numpy and torch loaded to ``count``."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(count)
    threadpool_limits(count)


def current_threads() -> int:
    """torch's intra-op thread count (what one query's encoding may use)."""
    import torch

    return torch.get_num_threads()
