"""HTTP calls that end by one deadline. requests' timeout bounds each socket read, not the call: a
server sending its headers or body a byte at a time never trips it. Here a timer shuts down the
sockets a call is using once its deadline passes, which ends any read blocked on them, and a call
the timer cut is a timeout however its answer ended."""
from __future__ import annotations

import socket
import threading
import time

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3 import connection, connectionpool

# The calling thread's call in progress.
_current = threading.local()


class _Call:
    def __init__(self):
        self._lock = threading.Lock()
        self._connections: list = []
        self._sockets: list = []
        self._done = False
        self.cut = False

    def sending(self, conn) -> None:
        with self._lock:
            self._connections.append(conn)

    def sent(self, conn) -> None:
        # http.client lets go of the socket of a `Connection: close` answer once its headers are read.
        with self._lock:
            if conn.sock is not None:
                self._sockets.append(conn.sock)
                if self.cut:  # the deadline passed while the name was looked up or the connection made
                    _shut(conn.sock)

    def cut_off(self) -> None:
        """The timer's: under the lock, so never after finish() (the connection may serve another call)."""
        with self._lock:
            if self._done:
                return
            self.cut = True
            for sock in {*self._sockets, *(c.sock for c in self._connections if c.sock is not None)}:
                _shut(sock)

    def finish(self) -> None:
        with self._lock:
            self._done = True


def _shut(sock) -> None:
    # Through an HTTPS proxy to an https:// server the connection holds urllib3's TLS-in-TLS wrapper,
    # which has no shutdown(): the socket under it is shut.
    try:
        getattr(sock, "socket", sock).shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


class _Noted:
    def request(self, *args, **kwargs):
        call = getattr(_current, "call", None)
        if call is not None:
            call.sending(self)
        result = super().request(*args, **kwargs)
        if call is not None:
            call.sent(self)
        return result


class _HTTPConnection(_Noted, connection.HTTPConnection):
    pass


class _HTTPSConnection(_Noted, connection.HTTPSConnection):
    pass


class _HTTPPool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        # Through an HTTP(S) proxy from the environment too (a SOCKS proxy keeps its own connections).
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = POOLS
        return manager


def session() -> requests.Session:
    """A requests session whose calls through `fetch` can be cut at their deadline."""
    made = requests.Session()
    made.mount("http://", _DeadlineAdapter())
    made.mount("https://", _DeadlineAdapter())
    return made


def fetch(http: requests.Session, method: str, url: str, deadline: float, **kwargs):
    """The response and its whole body by `deadline` (time.monotonic()); TimeoutError after it.
    `http` comes from session(); other failures are requests' or urllib3's own errors."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    call = _Call()
    _current.call = call
    timer = threading.Timer(left, call.cut_off)
    timer.daemon = True
    timer.start()
    try:
        response = http.request(method, url, timeout=left, stream=True, **kwargs)
        content = _read_by(response, deadline)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
        if call.cut or time.monotonic() >= deadline:
            raise TimeoutError from None
        raise
    finally:
        call.finish()
        timer.cancel()
        _current.call = None
    if call.cut:  # a socket shut down reads as the answer's end: what came may be cut short
        raise TimeoutError
    return response, content


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
