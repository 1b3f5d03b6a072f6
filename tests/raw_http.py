"""HTTP requests written by hand, for what httpx will not send: a Content-Length the body does not fill."""

from __future__ import annotations

import json
import socket


def raw_post(url: str, path: str, head: dict[str, str], body: bytes, timeout: float = 10) -> tuple[int, dict]:
    """POST ``body`` to ``path`` with the ``head`` lines as given; the status and the JSON answer."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Connection: close",
             *(f"{name}: {value}" for name, value in head.items())]
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])
