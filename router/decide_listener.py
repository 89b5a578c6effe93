"""The decide endpoint's own listener: NGINX's decide subrequests over plain HTTP/1.1,
answered without the ASGI machinery.

Every page view of a visitor without a valid pass costs one decide subrequest. Under
uvicorn each request costs a task, a scope and two send coroutines, about twice the
decision itself (profiled: ~25 µs against ~10 µs). The decision never awaits (it reads
the in-memory snapshot and queues the assignment for the recorder), so this listener
answers inside ``data_received``: httptools (the parser uvicorn itself uses) splits the
request, ``Decider.respond`` builds the headers, one write sends them.

It runs on the router's event loop beside the Starlette app (``CROUPIER_DECIDE_PORT``),
sharing its snapshot, recorder and metrics. Only ``GET``/``HEAD /_croupier/decide``
is answered; anything else gets an error and a closed connection. NGINX is the only
client: keepalive connections, one request at a time, no body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httptools

from croupier.router.decide import DECIDE_PATH
from croupier.router.server import KEEPALIVE_SECONDS

log = logging.getLogger("croupier.decide")

PATH = DECIDE_PATH.encode()
MAX_HEADER_BYTES = 64 * 1024  # NGINX forwards the visitor's headers: a few cookies, never this much
Respond = Callable[[dict[bytes, bytes]], tuple[int, list[tuple[bytes, bytes]]]]
_STATUS = {200: b"HTTP/1.1 200 OK\r\n", 500: b"HTTP/1.1 500 Internal Server Error\r\n"}


class DecideProtocol(asyncio.Protocol):
    """One NGINX connection."""

    def __init__(self, respond: Respond, connections: set[DecideProtocol]) -> None:
        self.respond = respond
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.headers: dict[bytes, bytes] = {}
        self.url = b""
        self.size = 0
        self.in_request = False
        self.closing = False  # the listener stops: close once the request in progress is answered
        self.last_active = 0.0  # the event loop's clock at the last data received

    # asyncio

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.loop_time = asyncio.get_running_loop().time
        self.last_active = self.loop_time()
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop_time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(b"400 Bad Request")
        except httptools.HttpParserError:
            self._refuse(b"400 Bad Request")

    def close_when_idle(self) -> None:
        """Shutting down: close now unless a request is half received (then after its answer)."""
        self.closing = True
        if not self.in_request and self.transport is not None:
            self.transport.close()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.headers, self.url, self.size, self.in_request = {}, b"", 0, True

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.size += len(name) + len(value)
        if self.size > MAX_HEADER_BYTES:
            raise ValueError("request headers too large")  # the parser raises HttpParserError
        self.headers[name.lower()] = value

    def on_message_complete(self) -> None:
        self.in_request = False
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.parser.should_upgrade():
            self._refuse(b"400 Bad Request")
            return
        if self.url.split(b"?", 1)[0] != PATH or self.parser.get_method() not in (b"GET", b"HEAD"):
            self._refuse(b"404 Not Found")
            return
        status, headers = self.respond(self.headers)
        keep_alive = self.parser.should_keep_alive() and not self.closing
        parts = [_STATUS[status]]
        parts += [b"%s: %s\r\n" % pair for pair in headers]
        parts.append(b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
        transport.write(b"".join(parts))
        if not keep_alive:
            transport.close()

    def _refuse(self, status: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()


class DecideListener:
    """The listening socket and its connections, started and stopped with the app."""

    def __init__(self, respond: Respond, host: str, port: int, idle_seconds: float = KEEPALIVE_SECONDS) -> None:
        self.respond, self.host, self.port, self.idle_seconds = respond, host, port, idle_seconds
        self.connections: set[DecideProtocol] = set()
        self.server: asyncio.Server | None = None
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # reuse_port: each worker process (CROUPIER_WORKERS) listens on the same port
        self.server = await loop.create_server(lambda: DecideProtocol(self.respond, self.connections),
                                               self.host, self.port, reuse_port=True, backlog=1024)
        self._sweeper = asyncio.create_task(self._sweep())
        log.info("decide listener on %s:%d", self.host, self.port)

    async def _sweep(self) -> None:
        """Close connections idle for longer than ``idle_seconds``. NGINX closes its own first,
        so only a vanished peer (a crashed NGINX, a half-open socket) is ever swept; a timer
        per connection would cost every request, a sweep costs nothing between sweeps."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.idle_seconds / 4)
            cutoff = loop.time() - self.idle_seconds
            for connection in list(self.connections):
                if connection.last_active < cutoff and connection.transport is not None:
                    connection.transport.close()

    async def stop(self) -> None:
        """Stop accepting, then close the idle connections. No request is ever in flight across
        an await here, so nothing answered is cut; NGINX retries a request that meets a closing
        connection on another router (proxy_next_upstream error)."""
        if self.server is None:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.server.close()
        for connection in list(self.connections):
            connection.close_when_idle()
        await self.server.wait_closed()
