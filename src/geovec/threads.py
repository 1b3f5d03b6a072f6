"""How many threads torch and BLAS use in a long-running server.

Why: torch and OpenBLAS start one busy-waiting thread per core; on a small machine shared with other work
(another process, the server's own HTTP handling) they fight over the cores, and one query took ~700 ms instead of
~15 ms on 2 busy cores. A batch of a few queries gains little from intra-op threads but much from being split
over processes (``geovec.query.SearchWorkers``), so a server runs one process per usable core (at most
``MAX_SERVER_PROCESSES``), each with one thread per two cores it has (1-8), unless told otherwise.
"""

from __future__ import annotations

import os

from geovec.errors import GeovecInputError

MAX_SERVER_THREADS = 8
MAX_SERVER_PROCESSES = 4  # each holds the model and the index's vectors: memory, not cores, bounds more


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def server_processes(requested: int | None = None) -> int:
    """``requested`` if given, else one per usable core, at most ``MAX_SERVER_PROCESSES``."""
    if requested is not None:
        if requested < 1:
            raise GeovecInputError("--workers", f"must be >= 1, got {requested}")
        return requested
    return min(MAX_SERVER_PROCESSES, usable_cores())


def processes_that_fit(wanted: int, each: int | None, available: int | None) -> int:
    """``wanted`` processes, or fewer (at least 1) where ``available`` bytes of memory cannot hold each extra one at
    ``each`` bytes with a quarter to spare; ``wanted`` where either is unknown."""
    if not each or available is None:
        return wanted
    return max(1, min(wanted, 1 + int(available / (each * 1.25))))


def _kibibytes(path: str, key: str) -> int | None:
    """A ``key: N kB`` line of a Linux /proc file, in bytes (None where there is no such file or line)."""
    try:
        with open(path, encoding="ascii") as lines:
            for line in lines:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> int | None:
    """Memory the OS can give new processes without swapping (Linux's MemAvailable), or None where unknown."""
    return _kibibytes("/proc/meminfo", "MemAvailable")


def resident_memory() -> int | None:
    """This process's resident memory (Linux's VmRSS), or None where unknown."""
    return _kibibytes("/proc/self/status", "VmRSS")


def server_threads(requested: int | None = None, processes: int = 1) -> int:
    """``requested`` if given, else ``OMP_NUM_THREADS`` if set to a number, else half the usable cores each of
    ``processes`` has (1-8)."""
    if requested is not None:
        if requested < 1:
            raise GeovecInputError("--threads", f"must be >= 1, got {requested}")
        return requested
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    return max(1, min(MAX_SERVER_THREADS, usable_cores() // (2 * processes)))


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


def pin_to_cores(share: int, shares: int) -> set[int] | None:
    """Keep the calling thread (and threads it starts) on the ``share``-th of ``shares`` equal parts of the usable
    cores; returns them, or None where there are fewer cores than shares or the OS cannot pin.

    Why: a server's search processes wake together for each batch, and the scheduler often put two of them on one
    core for a whole batch (a batch then took twice as long: p95 77 vs p50 41 ms on 2 cores); pinned, they never
    share one.
    """
    if not hasattr(os, "sched_setaffinity") or not 0 <= share < shares:
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < shares:
        return None
    size = len(cores) // shares
    mine = set(cores[share * size:(share + 1) * size])
    os.sched_setaffinity(0, mine)
    return mine


def sleeping_openmp_threads() -> bool:
    """Let OpenMP threads (torch's, FAISS's) sleep when they have no work instead of spinning
    (``OMP_WAIT_POLICY=PASSIVE``), unless the user chose a policy; returns whether it was set. ``geovec`` calls it
    before any command runs. Why: work alternates between thread pools: an ingest between torch, ONNX Runtime and
    the chip reader thread (on 2 loaded cores: 45-63 CPU ms a chip spinning, 32-37 with PASSIVE), exact search
    between a FAISS kernel for one query and numpy's BLAS for a batch (FAISS's spinning workers made the batch
    1.3-1.4x slower; 1.02x with PASSIVE). OpenMP reads it once, when it loads: call this first.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
