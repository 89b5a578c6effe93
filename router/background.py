"""Stopping the router's background loops (refresh, monitor, alerts, retraining, capacity).

Imports nothing of the router's own: settings.py imports capacity_leases.py, which imports this."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor


async def cancel(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait until it is done.

    Cancel again until it is: redis-py can absorb a cancellation that lands inside a
    command (it catches it to drop the connection), and the loop would then run on while
    its stop waited for it forever."""
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)


def shut(executor: ThreadPoolExecutor | None) -> None:
    """Stop a loop's worker thread without waiting for work it would throw away."""
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)

