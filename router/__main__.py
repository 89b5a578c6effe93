"""``python -m croupier.router``: run the router on its own, configured by CROUPIER_* variables."""

from __future__ import annotations

import sys

import uvicorn

from croupier.router.server import SERVER_OPTIONS, configure_logging
from croupier.router.settings import Settings, SettingsError


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"croupier: bad setting: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    uvicorn.run(
        "croupier.router.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,  # what the k8s grace period outlasts (tests/deploy)
        **SERVER_OPTIONS,
    )


if __name__ == "__main__":
    main()
