"""uvicorn's options for the router, shared with the load benchmark's null scorer
(bench/null_scorer.py), so that the two are compared on the same server settings."""

from __future__ import annotations

SERVER_OPTIONS = {
    "access_log": False,  # NGINX logs requests; a log line per decision would cost more than the decision
    "proxy_headers": False,
    "timeout_keep_alive": 75,  # longer than NGINX's upstream keepalive_timeout, so NGINX closes first
    # NGINX parses every header of every decide answer: send only the ones it reads
    "server_header": False,
    "date_header": False,
}
