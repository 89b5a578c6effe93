"""The decide listener over real sockets: what NGINX sends, and what it must refuse."""

from __future__ import annotations

import asyncio
import subprocess

import httpx

from croupier.router.decide_listener import MAX_HEADER_BYTES, DecideListener
from croupier.scripts.processes import free_port, start_redis, start_router

ANSWER = [(b"x-croupier-upstream", b"127.0.0.1:9101"), (b"x-croupier-variant", b"b"), (b"content-length", b"0")]
DECIDE = (b"GET /_croupier/decide HTTP/1.1\r\nHost: shop.example\r\nX-Original-URI: /spring/?a=1\r\n"
          b"Cookie: croupier_demo=v1.x\r\n\r\n")


def run(scenario) -> None:
    """Run ``scenario(listener, port, seen)`` against a started listener; ``seen`` collects the
    headers every answered request arrived with."""
    async def main():
        seen: list[dict[bytes, bytes]] = []

        def respond(headers):
            seen.append(headers)
            return (500, [(b"content-length", b"0")]) if headers.get(b"x-fail") else (200, ANSWER)

        port = free_port()
        listener = DecideListener(respond, "127.0.0.1", port)
        await listener.start()
        try:
            await scenario(listener, port, seen)
        finally:
            await listener.stop()

    asyncio.run(main())


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head[:-4].split(b"\r\n")
    return status, dict(line.split(b": ", 1) for line in lines)


def test_answers_decide_requests_on_one_keepalive_connection():
    async def scenario(listener, port, seen):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(DECIDE)
            status, headers = await read_answer(reader)
            assert status == b"HTTP/1.1 200 OK" and headers == dict(ANSWER)
        # a request arriving in pieces, as TCP may deliver it
        for piece in (DECIDE[:7], DECIDE[7:40], DECIDE[40:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        assert (await read_answer(reader))[0] == b"HTTP/1.1 200 OK"
        assert seen[0] == {b"host": b"shop.example", b"x-original-uri": b"/spring/?a=1",
                           b"cookie": b"croupier_demo=v1.x"}  # names lower-cased, as the decider reads them
        assert len(seen) == 4
        writer.close()
    run(scenario)


def test_head_a_failing_decision_and_a_closing_client():
    async def scenario(listener, port, seen):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(DECIDE.replace(b"GET", b"HEAD"))
        assert (await read_answer(reader))[0] == b"HTTP/1.1 200 OK"
        writer.write(DECIDE.replace(b"\r\n\r\n", b"\r\nX-Fail: 1\r\n\r\n"))
        assert (await read_answer(reader))[0] == b"HTTP/1.1 500 Internal Server Error"  # NGINX fails open
        writer.write(DECIDE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        status, headers = await read_answer(reader)
        assert status == b"HTTP/1.1 200 OK" and headers[b"connection"] == b"close"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and it closed
    run(scenario)


def test_refuses_anything_but_a_decide_request_and_closes():
    bad = {
        b"GET /api/v1/experiments HTTP/1.1\r\nHost: x\r\n\r\n": b"HTTP/1.1 404 Not Found",
        b"POST /_croupier/decide HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi": b"HTTP/1.1 404 Not Found",
        b"NONSENSE\r\n\r\n": b"HTTP/1.1 400 Bad Request",
        b"GET /_croupier/decide HTTP/1.1\r\nCookie: " + b"x" * (MAX_HEADER_BYTES + 1) + b"\r\n\r\n":
            b"HTTP/1.1 400 Bad Request",
        b"GET /_croupier/decide HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n":
            b"HTTP/1.1 400 Bad Request",
    }

    async def scenario(listener, port, seen):
        for request, expected in bad.items():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            status, headers = await read_answer(reader)
            assert status == expected, request[:40]
            assert headers[b"connection"] == b"close"
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        assert seen == []  # none of them reached the decider
    run(scenario)


def test_stop_closes_idle_connections_and_the_socket():
    async def scenario(listener, port, seen):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(DECIDE)
        await read_answer(reader)
        await listener.stop()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the idle keepalive connection
        try:
            await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            pass
        else:
            raise AssertionError("still accepting after stop")
    run(scenario)


def test_a_request_half_received_at_stop_is_answered_then_closed():
    async def scenario(listener, port, seen):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(DECIDE[:30])
        await writer.drain()
        await asyncio.sleep(0.05)
        await listener.stop()
        writer.write(DECIDE[30:])
        status, headers = await read_answer(reader)
        assert status == b"HTTP/1.1 200 OK" and headers[b"connection"] == b"close"
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert len(seen) == 1
    run(scenario)


def test_idle_connections_are_swept():
    async def main():
        port = free_port()
        listener = DecideListener(lambda headers: (200, ANSWER), "127.0.0.1", port, idle_seconds=1.0)
        await listener.start()
        try:
            busy_reader, busy = await asyncio.open_connection("127.0.0.1", port)
            idle_reader, idle = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(20):  # 2 s: the busy connection keeps talking, the idle one does not
                busy.write(DECIDE)
                await read_answer(busy_reader)
                await asyncio.sleep(0.1)
            assert await asyncio.wait_for(idle_reader.read(), 1) == b""  # swept (after 1-1.25 s)
            busy.write(DECIDE)
            assert (await read_answer(busy_reader))[0] == b"HTTP/1.1 200 OK"  # kept
            busy.close()
        finally:
            await listener.stop()

    asyncio.run(main())


def test_every_worker_of_a_router_process_answers_on_the_one_decide_port(tmp_path):
    """CROUPIER_WORKERS processes share the decide port (SO_REUSEPORT): all start, and every
    connection is answered, whichever worker the kernel hands it to."""
    redis_port, router_port, decide_port = free_port(), free_port(), free_port()
    processes = [start_redis(tmp_path, redis_port)]
    try:
        processes.append(start_router(tmp_path, router_port, {
            "CROUPIER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROUPIER_SECRET": "s" * 32,
            "CROUPIER_WORKERS": "2", "CROUPIER_DECIDE_PORT": str(decide_port),
            "CROUPIER_DEFAULT_UPSTREAM": "127.0.0.1:9999"}))
        answers = set()
        for _ in range(40):  # a new connection each time
            response = httpx.get(f"http://127.0.0.1:{decide_port}/_croupier/decide",
                                 headers={"X-Original-URI": "/", "Connection": "close"})
            assert response.status_code == 200
            answers.add(response.headers["x-croupier-upstream"])
        assert answers == {"127.0.0.1:9999"}  # no experiment: the site's default upstream
        listening = subprocess.run(["ss", "-Hltn", "sport", "=", f":{decide_port}"], capture_output=True,
                                   text=True).stdout.splitlines()
        assert len(listening) == 2, listening  # one socket per worker
        log = (tmp_path / "router.log").read_text()
        assert log.count("decide listener on") == 2, log  # each worker logs like the parent
    finally:
        for process in reversed(processes):
            process.stop()
