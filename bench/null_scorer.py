"""A scorer that decides nothing: the ceiling of the auth_request architecture.

Same framework and server settings as the router, one route that answers 200
with a fixed upstream. ``python -m bench.null_scorer --port N --upstream H:P``.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.server import SERVER_OPTIONS


def create_app(upstream: str) -> Starlette:
    headers = {"X-Croupier-Upstream": upstream, "Cache-Control": "no-store"}

    async def decide(request: Request) -> Response:
        return Response(status_code=200, headers=headers)

    return Starlette(routes=[Route("/_croupier/decide", decide), Route("/livez", decide)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(args.upstream), host="127.0.0.1", port=args.port, log_level="warning", **SERVER_OPTIONS)


if __name__ == "__main__":
    main()
