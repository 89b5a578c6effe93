"""Alert tests: a real redis-server, routers run in-process (each app with its own event
loop thread), and webhook receivers that are real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from starlette.testclient import TestClient

from croupier.router.app import create_app
from croupier.router.settings import Settings
from croupier.router.store import AssignmentRecord, Store
from croupier.scripts.processes import free_port
from tests.conftest import with_store  # noqa: F401  (the alert tests import it from here)

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "whsec-0123456789abcdef"
# Short intervals so a test sees an alert within a second: the monitor looks every 0.1 s, the
# delivering router polls every 0.05 s, retries start at 0.05 s and never wait past 0.3 s.
FAST = {"refresh_interval": 0.05, "monitor_interval": 0.1, "alert_poll_interval": 0.05, "alert_lease_seconds": 0.6,
        "alert_retry_base": 0.05, "alert_retry_max": 0.3, "alert_timeout": 2.0}


def settings(redis_url: str, **overrides) -> Settings:
    return Settings(redis_url=redis_url, admin_token=TOKEN, secret="s" * 32, **{**FAST, **overrides})


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int  # what the receiver answered

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def delivery(self) -> str:
        return self.headers["X-Croupier-Delivery"]


class Receiver:
    """A webhook receiver on a loopback port: down (connections refused) until ``up``; answers
    ``status`` to every POST, ``delay`` seconds after it came, and records what it got."""

    def __init__(self) -> None:
        self.port = free_port()
        self.status = 200
        self.delay = 0.0  # seconds before it answers
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/croupier"

    def up(self, status: int = 200) -> Receiver:
        self.status = status
        if self._server is None:
            owner = self

            class Handler(BaseHTTPRequestHandler):
                def do_POST(self) -> None:
                    body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    status = owner.status
                    with owner.lock:
                        owner.received.append(Received(dict(self.headers), body, time.time(), status))
                    time.sleep(owner.delay)
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

                def log_message(self, *args) -> None:
                    pass

            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def got(self) -> list[Received]:
        with self.lock:
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made: list[Receiver] = []
    yield _factory(made)
    for r in made:
        r.down()


def _factory(made: list[Receiver]):
    class Make:
        def __call__(self) -> Receiver:
            made.append(Receiver())
            return made[-1]
    return Make()


def verify(secret: str, header: str, body: bytes, tolerance: float = 300) -> bool:
    """A receiver's check of X-Croupier-Signature, as docs/alerts.md shows it."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - timestamp) <= tolerance and hmac.compare_digest(expected, parts["v1"])


class Router:
    """One router app, run in-process with its lifespan (its own event loop thread)."""

    def __init__(self, redis_url: str, **overrides) -> None:
        self.app = create_app(settings(redis_url, **overrides))
        self.client = TestClient(self.app, base_url="http://testserver/api/v1")
        self.client.headers.update(AUTH)

        self.running = False

    def __enter__(self) -> Router:
        self.client.__enter__()
        self.running = True
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """A graceful stop (the app's lifespan ends); stopping twice is stopping once."""
        if self.running:
            self.running = False
            self.client.__exit__(None, None, None)

    @property
    def leading(self) -> bool:
        return self.app.state.delivery.leading

    def metric(self, name: str, **labels) -> float:
        value = self.app.state.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def experiment(exp_id: str = "spring", **extra) -> dict:
    return {"id": exp_id, "path_prefix": f"/{exp_id}/", "variants": [
        {"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}], **extra}


def assign(redis_url: str, exp_id: str, counts: dict[str, int], split=(("a", 0.5), ("b", 0.5))) -> None:
    """Record assignments as a router would: ``counts`` per variant, each with the policy's split."""
    async def work() -> None:
        store = Store(Settings(redis_url=redis_url))
        try:
            now = time.time()
            await store.record_assignments([AssignmentRecord(exp_id, variant, f"v-{variant}-{i}", "new", split, now)
                                            for variant, n in counts.items() for i in range(n)])
        finally:
            await store.close()
    asyncio.run(work())


def raise_alert(redis_url: str, kind: str = "srm", experiment_id: str = "spring", **extra) -> str:
    """Raise an alert as a check would (through the outbox); returns its id."""
    from croupier.router.alerts import Alert, Outbox
    from croupier.router.metrics import Metrics

    alert = Alert(kind, experiment_id, f"{kind} in {experiment_id}", **extra)

    async def work(store: Store) -> None:
        assert await Outbox(store, Metrics(), 1000).raise_alert(alert)
    with_store(redis_url, work)
    return alert.id
