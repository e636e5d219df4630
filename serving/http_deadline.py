"""HTTP calls that end by one deadline. requests' timeout bounds each socket read, not the call: a
server sending its headers or body a byte at a time never trips it. Here a timer shuts down the
sockets a call is using once its deadline passes, which ends any read blocked on them."""
from __future__ import annotations

import socket
import threading
import time

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3 import connection, connectionpool

# The connections the calling thread's current call has sent a request on.
_current = threading.local()


class _Noted:
    def request(self, *args, **kwargs):
        noted = getattr(_current, "connections", None)
        if noted is not None:
            noted.append(self)
        return super().request(*args, **kwargs)


class _HTTPConnection(_Noted, connection.HTTPConnection):
    pass


class _HTTPSConnection(_Noted, connection.HTTPSConnection):
    pass


class _HTTPPool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def session() -> requests.Session:
    """A requests session whose calls through `fetch` can be cut at their deadline."""
    made = requests.Session()
    made.mount("http://", _DeadlineAdapter())
    made.mount("https://", _DeadlineAdapter())
    return made


def _cut(connections: list) -> None:
    for conn in list(connections):
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def fetch(http: requests.Session, method: str, url: str, deadline: float, **kwargs):
    """The response and its whole body by `deadline` (time.monotonic()); TimeoutError after it.
    `http` comes from session(); other failures are requests' or urllib3's own errors."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    noted: list = []
    _current.connections = noted
    timer = threading.Timer(left, _cut, [noted])
    timer.daemon = True
    timer.start()
    try:
        response = http.request(method, url, timeout=left, stream=True, **kwargs)
        return response, _read_by(response, deadline)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
        if time.monotonic() >= deadline:
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()
        _current.connections = None


def _read_by(response, deadline: float) -> bytes:
    chunks = []
    try:
        while chunk := response.raw.read1(64 * 1024, decode_content=True):
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise TimeoutError
    finally:
        response.close()
    return b"".join(chunks)
