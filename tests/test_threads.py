"""The server picks its own thread count, so a small busy machine needs no OMP_NUM_THREADS setting."""

import pytest

from geovec.errors import GeovecInputError
from geovec.threads import MAX_SERVER_THREADS, server_threads, usable_cores


def test_server_takes_half_the_usable_cores_unless_told(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert server_threads() == max(1, min(MAX_SERVER_THREADS, usable_cores() // 2))
    assert server_threads(3) == 3  # --threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert server_threads() == 5  # a user's explicit setting is respected
    with pytest.raises(GeovecInputError, match="--threads: must be >= 1"):
        server_threads(0)
