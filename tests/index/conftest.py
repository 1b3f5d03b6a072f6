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
