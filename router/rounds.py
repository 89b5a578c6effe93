"""The rounds of the router's background loops that talk to Redis (monitor, alert delivery,
retraining): what a failed round does, written once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from croupier.router.store import StoreUnavailable


class Rounds:
    """The rounds of one background loop (monitor, alert delivery, retraining): a round that
    fails never stops the loop. Redis being away is logged once per outage, not once a round;
    anything else is a bug, logged with its traceback. ``count`` sees every failure."""

    def __init__(self, log: logging.Logger, what: str, count: Callable[[BaseException], None] = lambda exc: None):
        self.log = log
        self.what = what
        self.count = count
        self.last_error: str | None = None

    async def run(self, round_: Callable[[], Awaitable[object]]) -> None:
        try:
            await round_()
        except StoreUnavailable as exc:
            if self.last_error is None:
                self.log.warning("%s: Redis is unavailable, trying again later: %s", self.what, exc)
            self.last_error = str(exc)
            self.count(exc)
        except Exception as exc:
            self.log.exception("%s failed", self.what)
            self.count(exc)
        else:
            self.last_error = None
