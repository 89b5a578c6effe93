"""``python -m router``: run the router on its own, configured by CROUPIER_* variables."""

from __future__ import annotations

import logging
import sys

import uvicorn

from router.settings import Settings, SettingsError


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"croupier: bad setting: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(
        "router.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,  # NGINX logs requests; a log line per decision would cost more than the decision
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=75,  # longer than NGINX's upstream keepalive_timeout, so NGINX closes first
        # NGINX parses every header of every decide answer: send only the ones it reads
        server_header=False,
        date_header=False,
    )


if __name__ == "__main__":
    main()
