"""Catch a framework reaching past this machine (telemetry, a data download at import) during a test.

`outbound()` records every host name looked up and every address connected to that is not loopback, while it
is active. It refuses nothing: libraries swallow such failures (NLTK prints one line, telemetry threads log at
debug), so a test asserts the record is empty instead.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["outbound"]

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "", None}


def _is_local(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def outbound() -> Iterator[list[str]]:
    """The non-loopback look-ups and connections made while active, as ``"dns <host>"`` / ``"connect <addr>"``."""
    seen: list[str] = []
    lookup, connect, connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local(host):
            seen.append(f"dns {host}")
        return lookup(host, *args, **kwargs)

    def remote(sock: socket.socket, address: Any) -> bool:
        return sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0])

    def connecting(sock: socket.socket, address: Any) -> None:
        if remote(sock, address):
            seen.append(f"connect {address[0]}")
        connect(sock, address)

    def connecting_ex(sock: socket.socket, address: Any) -> int:
        if remote(sock, address):
            seen.append(f"connect {address[0]}")
        return connect_ex(sock, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connecting  # type: ignore[method-assign]
    socket.socket.connect_ex = connecting_ex  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        socket.getaddrinfo = lookup
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
