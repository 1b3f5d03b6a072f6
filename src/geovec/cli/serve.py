"""``geovec serve``: the search API and map page over one index (needs the ``web`` extra)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Optional

import typer

from geovec.config import default_index_path
from geovec.errors import GeovecError, GeovecInputError


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, made before the model loads: a host or port that cannot be served is a
    one-line error within a second, not a uvicorn log line after a minute of loading."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise GeovecInputError("host", f"{host!r} is not an address or a name this machine can resolve ({exc}): "
                                       "give e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart without waiting
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise GeovecInputError("port", f"{port} on {host} is already in use: stop what serves there or choose "
                                           "another with --port") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise GeovecInputError("port", f"{port} needs privileges this user lacks: choose one from 1024 up with "
                                           "--port") from None
        raise GeovecInputError("host", f"cannot listen on {host}:{port} ({exc.strerror}): give an address of this "
                                       "machine, e.g. 127.0.0.1 or 0.0.0.0") from None
    return sock


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the geovec CLI."""

    @app.command("serve")
    def serve_command(
        index: str = typer.Option(str(default_index_path()), "--index",
                                  help="Index folder or chroma://HOST:PORT/COLLECTION to search."),
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 exposes it)."),
        port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
        model_path: Optional[Path] = typer.Option(None, "--model-path",
                                                  help="Override the checkpoint path the index recorded."),
        max_upload_mb: float = typer.Option(10.0, "--max-upload-mb", min=0.001, help="Largest image upload."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes that compute each batch "
                                              "of queries together (default: one per usable core, at most 4)."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch/BLAS threads of each process "
                                              "(default: OMP_NUM_THREADS if set, else 1 per 2 usable cores a "
                                              "process has, 1-8)."),
        max_batch: int = typer.Option(32, "--max-batch", min=1, help="Most concurrent queries embedded together "
                                      "(1: one at a time)."),
        batch_wait_ms: float = typer.Option(5.0, "--batch-wait-ms", min=0.0, help="Longest wait for more "
                                            "queries to join a batch (only while users are concurrent)."),
        query_cache: int = typer.Option(1024, "--query-cache", min=0, help="Query vectors kept for repeated "
                                        "queries (0: none)."),
        precision: str = typer.Option("auto", "--precision", help="Query embedding precision: auto (the "
                                      "fastest quality-checked query pass measured here: transformers or lean, float32 "
                                      "or bfloat16; cached, see geovec kernels), float32 or bfloat16."),
        worker_timeout: Optional[float] = typer.Option(None, "--worker-timeout", min=0.01, help="Seconds a worker "
                                                       "process may take past this process's share of a batch before "
                                                       "it is killed and its share computed here (default: 2)."),
    ) -> None:
        """Serve a map page and JSON search API (POST /api/search, /api/search/image) for an index."""
        sock = listen(host, port)
        try:
            import uvicorn

            from geovec.web import create_app
        except ImportError as exc:
            sock.close()
            raise GeovecError(f"`geovec serve` needs the web extra ({exc.name} is missing): "
                              "pip install 'geovec[web]'") from None
        from geovec.threads import server_processes, server_threads, use_threads

        processes = server_processes(workers)
        threads_each = server_threads(threads, processes)
        use_threads(threads_each)
        try:
            web_app = create_app(index, model_path=model_path, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                                 max_batch=max_batch, max_wait_ms=batch_wait_ms, query_cache=query_cache,
                                 precision=precision, workers=processes,
                                 **({} if worker_timeout is None else {"worker_timeout_s": worker_timeout}))
        except BaseException:
            sock.close()
            raise
        running = web_app.state.web.batcher.stats()["processes"]
        if running < processes:
            typer.echo(f"note: {running} of {processes} processes: the memory available holds no more copies of the "
                       "model and vectors", err=True)
        typer.echo(f"serving {index} ({len(web_app.state.web.searcher.store)} items) at http://{host}:{port}/ "
                   f"with {running} process(es) of {threads_each} thread(s), "
                   f"queries embedded by the {web_app.state.web.searcher.query_pass} pass", err=True)
        typer.echo(web_app.state.web.searcher.query_pass_info()["summary"], err=True)
        kernel = web_app.state.web.searcher.store.exact_kernel()  # measured now, before the first user waits on it
        if kernel is not None:
            typer.echo(kernel["summary"], err=True)
        with sock:  # uvicorn serves the socket bound above (so nothing can take the port meanwhile)
            uvicorn.Server(uvicorn.Config(web_app, host=host, port=port, log_level="warning")).run(sockets=[sock])
