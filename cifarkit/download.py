"""Downloads with every network wait bounded: `open_url` (the name lookup, the connection and each
read wait at most `DOWNLOAD_TIMEOUT_S`), used for CIFAR-10 (`cifarkit.data`) and pretrained
weights (`cifarkit.weights`).
"""
from __future__ import annotations

import socket
import threading
import urllib.parse
import urllib.request

__all__ = ["DOWNLOAD_TIMEOUT_S", "resolve_host", "open_url"]

#: Seconds allowed for each network wait of a download: the name lookup, the connection, each read.
DOWNLOAD_TIMEOUT_S = 15.0


def resolve_host(host: str, timeout: float) -> None:
    """Look `host` up in a helper thread, so that a dead resolver cannot stall us past `timeout`
    (a name lookup takes no timeout of its own). Raises TimeoutError, or the lookup's OSError."""
    result: dict = {}

    def work():
        try:
            socket.getaddrinfo(host, 443)
            result["ok"] = True
        except OSError as e:  # socket.gaierror is an OSError
            result["error"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"looking up {host} took more than {timeout:g} s")
    if "error" in result:
        raise result["error"]


def open_url(url: str, timeout: float = DOWNLOAD_TIMEOUT_S):
    """`urllib.request.urlopen(url)` with every wait bounded by `timeout` seconds: the name lookup
    (`resolve_host`; skipped behind a proxy, which resolves names itself), the connection and each
    read. Returns the response (a context manager); raises OSError / `urllib.error.URLError`."""
    parts = urllib.parse.urlparse(url)
    if parts.scheme not in urllib.request.getproxies():
        resolve_host(parts.hostname or "", timeout)
    request = urllib.request.Request(url, headers={"User-Agent": "cifarkit"})
    return urllib.request.urlopen(request, timeout=timeout)
