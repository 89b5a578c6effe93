"""This router's reservations of capped variants' units, so that web and channels
decisions respect a capacity without waiting on Redis (``router/capacity.py``).

Decisions take units from the reservation in memory (``take``); a background task
reports the units used and tops each reservation up to ``BLOCK`` in Redis
(``lua/reserve_capacity.lua``), one call per capped variant per interval. A variant
whose reservation is used up is drawn with probability 0 here until the next top-up
(or for good, once the capacity is all used): a router holds no reservation until
its decisions want the variant. A reservation nobody drew from for ``IDLE`` seconds
is given back, so batches and other routers can use the last units;
one of a router that stopped without giving it back counts as free once it expires
(``TTL``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from croupier.router.background import cancel
from croupier.router.capacity import restrict
from croupier.router.experiments import Experiment
from croupier.router.snapshot import Arms

log = logging.getLogger("croupier.capacity")

BLOCK = 20  # units a router holds per capped variant: few left unused when the cap nears
IDLE = 5.0  # seconds without demand after which a reservation is given back
TTL = 30.0  # seconds a reservation lives in Redis unless renewed

Key = tuple[str, str]  # (experiment, variant)


class CapacityLeases:
    def __init__(self, store=None, snapshots=None, interval: float = 0.5, *, block: int = BLOCK, idle: float = IDLE,
                 ttl: float = TTL, clock=time.monotonic) -> None:
        self.store, self.snapshots, self.interval = store, snapshots, interval
        self.block, self.idle, self.ttl, self.clock = block, idle, ttl, clock
        self.router = secrets.token_hex(8)
        self.budget: dict[Key, int] = {}  # units this router may still assign
        self.used: dict[Key, int] = {}  # units assigned since the last report
        self.demand: dict[Key, float] = {}  # when a decision last wanted the variant
        self._narrowed: dict[str, tuple[Arms, frozenset[str], Arms | None]] = {}
        self._task: asyncio.Task | None = None

    # -- the decision path (no I/O) ------------------------------------------

    def split(self, experiment: Experiment, arms: Arms) -> Arms | None:
        """``arms`` without the capped variants this router has no unit of (None: none left)."""
        exp_id, now = experiment.id, None
        full = []
        for v in arms.variants:
            if v.capacity is not None and self.budget.get((exp_id, v.id), 0) <= 0:
                full.append(v.id)
                now = now or self.clock()
                self.demand[(exp_id, v.id)] = now  # wanted: keep asking for units
        if not full:
            return arms
        key = frozenset(full)
        cached = self._narrowed.get(exp_id)
        if cached is not None and cached[0] is arms and cached[1] == key:
            return cached[2]
        narrowed = restrict(arms, key)
        self._narrowed[exp_id] = (arms, key, narrowed)
        return narrowed

    def take(self, exp_id: str, variant_id: str) -> None:
        key = (exp_id, variant_id)
        self.budget[key] = self.budget.get(key, 0) - 1
        self.used[key] = self.used.get(key, 0) + 1
        self.demand[key] = self.clock()

    def give_back(self, exp_id: str, variant_id: str) -> None:
        """A unit taken for an assignment that did not happen (the channels API's claim lost)."""
        key = (exp_id, variant_id)
        self.budget[key] = self.budget.get(key, 0) + 1
        self.used[key] = self.used.get(key, 0) - 1

    # -- the background task -------------------------------------------------

    async def sync(self, release: bool = False) -> None:
        """Report the units used and top every reservation up (or give it back: idle, no longer
        capped, or ``release``)."""
        now = self.clock()
        wanted: dict[Key, tuple[int, int]] = {}  # key → (cap, want)
        if not release and self.snapshots is not None:
            for e in self.snapshots.current.experiments.values():
                if e.status != "running" or not e.capped:
                    continue
                for v in e.variants:
                    if v.capacity is None:
                        continue
                    key = (e.id, v.id)
                    # reserved only while decisions here want the variant: a router without such
                    # traffic leaves every unit to the batches and the other routers
                    last = self.demand.get(key)
                    want = min(self.block, v.capacity) if v.active and last is not None and now - last <= self.idle \
                        else 0
                    wanted[key] = (v.capacity, want)
        for key in set(self.budget) | set(self.used):
            if key not in wanted:
                wanted[key] = (0, 0)  # no longer capped or running: give the rest back
        for (exp_id, variant_id), (cap, want) in wanted.items():
            key = (exp_id, variant_id)
            used = self.used.get(key, 0)
            if want == 0 and used == 0 and self.budget.get(key, 0) == 0:
                self.budget.pop(key, None)
                self.used.pop(key, None)
                continue
            self.used[key] = 0  # decisions during the call below count toward the next report
            try:
                delta = await self.store.reserve_capacity(exp_id, self.router, variant_id, cap, used, want,
                                                          int(self.ttl * 1000))
            except Exception:
                self.used[key] = self.used.get(key, 0) + used
                raise
            self.budget[key] = self.budget.get(key, 0) + delta

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sync()
            except Exception as exc:  # Redis away: decisions keep what they hold; try again
                log.warning("reserving capacity failed: %r", exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="croupier-capacity")

    async def stop(self) -> None:
        """Stop topping up and give every unused unit back (after the decisions stopped)."""
        await cancel(self._task)
        if self.store is not None and (self.budget or self.used):
            try:
                await self.sync(release=True)
            except Exception as exc:
                log.warning("giving capacity back at shutdown failed (it frees itself in %.0f s): %r",
                            self.ttl, exc)
