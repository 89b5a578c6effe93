"""A variant page on a real uvicorn server, behind a stand-in for the router's beacon.

The stand-in serves the real ``router/static/beacon.js`` and records what the page
posts to ``/_croupier/beacon``; tests choose how it answers (status, delay), so a
browser can exercise the page and beacon.js end to end without Redis or NGINX.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

BEACON_JS = Path(__file__).resolve().parents[2] / "router" / "static" / "beacon.js"


@dataclass
class BeaconRecorder:
    """What the page sent, and how the stand-in answers it."""

    status: int = 204
    convert_delay: float = 0.0  # seconds before answering a convert event; 0 releases a waiting one
    serve_script: bool = True
    events: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # every request the site received

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["body"].get("type") == kind]


def router_stand_in(variant: ASGIApp, recorder: BeaconRecorder) -> ASGIApp:
    async def beacon(request: Request) -> Response:
        body = json.loads(await request.body())
        recorder.events.append({"body": body, "content_type": request.headers.get("content-type"),
                                "cookies": dict(request.cookies), "at": time.monotonic()})
        started = time.monotonic()
        # Re-read each turn, so a test can release a held answer before the server stops.
        while body.get("type") == "convert" and time.monotonic() - started < recorder.convert_delay:
            await asyncio.sleep(0.02)
        return Response(status_code=recorder.status)

    async def script(request: Request) -> Response:
        if not recorder.serve_script:
            return Response("not found", status_code=404)
        return FileResponse(BEACON_JS, media_type="application/javascript")

    app = Starlette(routes=[
        Route("/_croupier/beacon", beacon, methods=["POST"]),
        Route("/_croupier/beacon.js", script),
        Mount("/", app=variant),
    ])

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            recorder.paths.append(scope["path"])
        await app(scope, receive, send)

    return recording


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; no race with other tests
    port = sock.getsockname()[1]
    # A short graceful shutdown: a test may leave a slow beacon request in flight.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
