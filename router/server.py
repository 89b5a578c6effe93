"""How the router process runs: uvicorn's options, shared with the load benchmark's null
scorer (bench/null_scorer.py) so that the two are compared on the same server settings,
and its logging."""

from __future__ import annotations

import logging

# How long an idle connection from NGINX is kept, by uvicorn and by the decide listener:
# longer than NGINX's upstream keepalive_timeout (60 s), so NGINX closes first
KEEPALIVE_SECONDS = 75

SERVER_OPTIONS = {
    "access_log": False,  # NGINX logs requests; a log line per decision would cost more than the decision
    "proxy_headers": False,
    "timeout_keep_alive": KEEPALIVE_SECONDS,
    # NGINX parses every header of every decide answer: send only the ones it reads
    "server_header": False,
    "date_header": False,
}


def configure_logging(level: str) -> None:
    """Croupier's log lines, in the parent process and in every uvicorn worker (each worker
    is a fresh interpreter that builds the app itself: croupier.router.app.app_from_env)."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
