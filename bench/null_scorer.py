"""A scorer that decides nothing: the ceiling of the auth_request architecture.

    python -m bench.null_scorer --port N --upstream H:P [--listener]

By default a Starlette app on the router's server settings (uvicorn, router/server.py),
one route that answers 200 with a fixed upstream: the baseline the load benchmark's
goal is measured against. With ``--listener`` the same fixed answer comes from the
router's own decide listener (router/decide_listener.py) on the same event loop
uvicorn runs, so the benchmark can also show what the decision itself costs on top
of that transport.
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from croupier.router.decide_listener import DecideListener
from croupier.router.server import SERVER_OPTIONS


def create_app(upstream: str) -> Starlette:
    headers = {"X-Croupier-Upstream": upstream, "Cache-Control": "no-store"}

    async def decide(request: Request) -> Response:
        return Response(status_code=200, headers=headers)

    return Starlette(routes=[Route("/_croupier/decide", decide), Route("/livez", decide)])


async def serve_listener(port: int, upstream: str) -> None:
    answer = (200, [(b"x-croupier-upstream", upstream.encode()), (b"content-length", b"0")])
    listener = DecideListener(lambda headers: answer, "127.0.0.1", port)
    await listener.start()
    await asyncio.Event().wait()  # until the benchmark stops the process


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--listener", action="store_true", help="answer from the router's decide listener")
    args = parser.parse_args()
    if args.listener:
        uvloop.run(serve_listener(args.port, args.upstream))  # the loop uvicorn picks when uvloop is there
    else:
        uvicorn.run(create_app(args.upstream), host="127.0.0.1", port=args.port, log_level="warning",
                    **SERVER_OPTIONS)


if __name__ == "__main__":
    main()
