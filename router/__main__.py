"""``python -m croupier.router``: run the router on its own, configured by CROUPIER_* variables."""

from __future__ import annotations

import os
import sys

# One BLAS thread per process, set before numpy loads: the router's numpy work (a refresh's
# fits and draws, milliseconds) runs beside the loop that answers decisions, and a
# multithreaded BLAS on a small machine spends more on its threads than on arithmetic
# (20 ms against 0.2 ms for a factorial model's Hessian, measured on 2 busy cores).
for _threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

import uvicorn  # noqa: E402

from croupier.router.server import SERVER_OPTIONS, configure_logging  # noqa: E402
from croupier.router.settings import Settings, SettingsError  # noqa: E402


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
