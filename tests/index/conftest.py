"""One real Chroma server (``chroma run`` on a free port, temporary data folder) for the index tests of a session,
started only when a test asks for it."""

import pytest


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """Yields ``host:port`` of the running server."""
    pytest.importorskip("chromadb")
    from geovec.index.chroma import local_server

    with local_server(tmp_path_factory.mktemp("chroma")) as address:
        yield address


@pytest.fixture(autouse=True)
def own_geovec_home(tmp_path, monkeypatch):
    """Each test its own GEOVEC_HOME: a large index measures its kernels and caches the choice there."""
    monkeypatch.setenv("GEOVEC_HOME", str(tmp_path / "geovec-home"))
