"""The event loop's lag: how late a task that sleeps a fixed interval wakes up.

Decisions, beacons and /metrics share one loop; anything that holds it (a long
computation, a large reply parsed in one go) delays every decision by as much.
The probe measures that delay as a decision would feel it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class LoopLagProbe:
    def __init__(self, observe: Callable[[float], None], interval: float = 0.1) -> None:
        self.observe = observe
        self.interval = interval
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            slept_at = loop.time()
            await asyncio.sleep(self.interval)
            self.observe(max(0.0, loop.time() - slept_at - self.interval))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="croupier-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
