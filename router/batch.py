"""Batch assignment of a customer list, one chunk at a time (DESIGN §7: a transport of
the one assignment core).

A chunk (``CHUNK`` customers) is placed and drawn from the same snapshot the web
uses, all at once (``Assigner.draw_many``); one script call then claims each
customer unless they already have an assignment, and takes a unit of a capped
variant with each claim (``lua/claim_customers.lua``). The same records as the
channels API's ``/decide``: a customer keeps whatever either gave them first, so
the same list sent again, or after an interruption, assigns and counts nobody
twice. A customer whose drawn variant was full is drawn again without it (the
logged propensities are those of the narrowed split). New assignments are queued
for the recorder like every other, so they are counted and logged to the event
stream with every arm's probability, their channel and their segment.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from croupier.router.assign import NOWHERE, Assigner, Placement, by_device, fixed_variant
from croupier.router.batch_input import Line, LineError
from croupier.router.capacity import capacities, restrict
from croupier.router.context import Context
from croupier.router.experiments import Experiment, Variant
from croupier.router.snapshot import Arms
from croupier.router.store import AssignmentRecord, CapacityFull, CustomerAssignment, Store, StoreUnavailable
from croupier.router.token import new_visitor_id


@dataclass
class ChunkResult:
    """A chunk's answer (JSON lines, in the input's order) and its figures."""

    text: str = ""
    figures: Counter = field(default_factory=Counter)  # new, returning, errors, full, variant:<id>


@dataclass(slots=True)
class _Pending:
    """One customer being assigned: their line, placement and, once drawn, the split and variant."""

    line: Line
    placement: Placement
    arms: Arms | None = None
    variant: Variant | None = None
    in_holdout: bool = False
    propensity: float = 0.0
    held: CustomerAssignment | None = None
    reason: str = ""


class BatchAssigner:
    def __init__(self, store: Store, core: Assigner) -> None:
        self.store = store
        self.core = core
        self._params: dict[tuple[str, str], tuple[dict, str]] = {}  # variant params as JSON, once
        self.in_flight: set[asyncio.Task] = set()

    async def assign(self, experiment: Experiment, channel: str, lines: list[Line | LineError]) -> ChunkResult:
        """Assign one chunk. Once started it runs to its end, even when its caller is cancelled
        (a client that hung up, a shutdown): claims written without the records of their new
        assignments would be customers assigned but never counted."""
        task = asyncio.ensure_future(self._chunk(experiment, channel, lines))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
        return await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for the chunks under way (at shutdown, before the recorder's last flush)."""
        await asyncio.gather(*self.in_flight, return_exceptions=True)

    async def _chunk(self, experiment: Experiment, channel: str, lines: list[Line | LineError]) -> ChunkResult:
        result = ChunkResult()
        fixed = fixed_variant(experiment)
        answered: dict[int, str] = {}
        good = []
        for line in lines:
            if isinstance(line, LineError):
                answered[line.number] = line.json()
                result.figures["errors"] += 1
            else:
                good.append(line)
        if fixed is not None:  # paused or ended: everyone gets one variant, nothing counted
            variant, reason = fixed
            for line in good:
                answered[line.number] = self._line(experiment, line.customer, variant, 1.0, None, reason)
                result.figures[f"variant:{variant.id}"] += 1
        elif good:
            await self._assign(experiment, channel, good, answered, result.figures)
        result.text = "".join(answered[line.number] for line in lines)
        await self._keep_up()
        return result

    async def _assign(self, experiment: Experiment, channel: str, lines: list[Line],
                      answered: dict[int, str], figures: Counter) -> None:
        core = self.core
        now = time.time()
        issued = int(now)
        if core.uses_context(experiment):
            pending = [_Pending(line, core.place(experiment, line.context or Context())) for line in lines]
        else:  # only the device class, for the traffic-mix counts
            pending = [_Pending(line, by_device(line.context.device) if line.context else NOWHERE) for line in lines]
        base = core.snapshots.current.arms.get(experiment.id)
        caps = capacities(experiment.active_variants)
        full: frozenset[str] = frozenset()
        todo = pending
        while todo:
            self._draw(todo, base, full)
            drawable = [p for p in todo if p.variant is not None]
            for p in todo:
                if p.variant is None:  # no variant left with capacity (or no split yet)
                    answered[p.line.number] = json.dumps({
                        "line": p.line.number, "customer_id": p.line.customer, "field": None,
                        "error": "no variant of the experiment has capacity left" if caps else
                                 "the experiment has no split yet, try again in a second",
                        "reason": "full" if caps else "no_arms"}) + "\n"
                    figures["full" if caps else "errors"] += 1
            claims = [(p.line.customer, CustomerAssignment(p.variant.id, new_visitor_id(), issued, p.propensity, (),
                                                           p.placement.segment, p.placement.features))
                      for p in drawable]
            replies = await self.store.claim_customers(experiment.id, claims, caps)
            todo, newly_full = [], set()
            for p, (_, mine), reply in zip(drawable, claims, replies):
                if reply is CapacityFull:
                    newly_full.add(p.variant.id)
                    todo.append(p)
                elif reply is None:
                    p.held, p.reason = mine, "holdout" if p.in_holdout else "new"
                    core.recorder.add(AssignmentRecord(
                        experiment.id, p.variant.id, mine.visitor, p.reason, p.arms.labels, now,
                        p.placement.segment, p.placement.features, channel, p.placement.device))
                else:
                    p.held, p.reason = reply, "returning"
                    p.variant = experiment.variant(reply.variant)
            full = full | newly_full
        for p in pending:
            if p.held is None:
                continue
            if p.variant is None or not p.variant.active:  # their variant was paused or removed
                p.variant, p.held, p.reason = await self._reassign(experiment, channel, p, now)
                if p.variant is None:
                    answered[p.line.number] = json.dumps({
                        "line": p.line.number, "customer_id": p.line.customer, "field": None,
                        "error": "no variant of the experiment has capacity left", "reason": "full"}) + "\n"
                    figures["full"] += 1
                    continue
            token = core.token(experiment, p.held.visitor, p.variant.id, p.held.issued,
                               Placement(p.held.segment, p.held.features))
            answered[p.line.number] = self._line(experiment, p.line.customer, p.variant, p.held.propensity, token,
                                                 p.reason)
            figures["returning" if p.reason == "returning" else "new"] += 1
            figures[f"variant:{p.variant.id}"] += 1

    def _draw(self, todo: list[_Pending], base: Arms | None, full: frozenset[str]) -> None:
        """Draw a variant for each, from its placement's split without the ``full`` variants;
        customers sharing a split are drawn at once."""
        groups: dict[int, tuple[Arms | None, list[_Pending]]] = {}
        for p in todo:
            arms = p.placement.arms if p.placement.arms is not None else base
            groups.setdefault(id(arms), (arms, []))[1].append(p)
        for arms, members in groups.values():
            narrowed = restrict(arms, full) if arms is not None and full else arms
            if narrowed is None:
                for p in members:
                    p.variant = None
                continue
            index, holdout = self.core.draw_many(narrowed, len(members))
            variants = narrowed.variants
            probabilities = narrowed.probabilities
            for p, i, h in zip(members, index.tolist(), holdout.tolist()):
                p.arms, p.variant, p.in_holdout, p.propensity = narrowed, variants[i], h, probabilities[i]

    async def _reassign(self, experiment: Experiment, channel: str, p: _Pending,
                        now: float) -> tuple[Variant | None, CustomerAssignment, str]:
        """A customer whose variant is no longer active gets a new one exactly as ``/decide``
        gives it (a capped variant's unit from this router's reservation, one compare-and-set
        claim of their record); rare, so one customer at a time."""
        core, old = self.core, p.held
        drawn = core.draw(experiment, p.placement)
        if drawn is None:
            return None, old, "full"
        mine = CustomerAssignment(drawn.variant.id, old.visitor, int(now), dict(drawn.arms.labels)[drawn.variant.id],
                                  (), p.placement.segment, p.placement.features)
        try:
            held, won = await self.store.claim_customer_assignment(experiment.id, p.line.customer, mine, old)
        except StoreUnavailable:
            core.undraw(experiment, drawn)
            raise
        if not won:
            core.undraw(experiment, drawn)
            return experiment.variant(held.variant), held, "returning"
        reason = "holdout" if drawn.in_holdout else "reassigned"
        core.record(experiment, drawn, old.visitor, reason, now, p.placement, channel)
        return drawn.variant, held, reason

    def _line(self, experiment: Experiment, customer: str, variant: Variant, propensity: float, token: str | None,
              reason: str) -> str:
        key = (experiment.id, variant.id)
        cached = self._params.get(key)
        if cached is None or cached[0] is not variant.params:
            cached = self._params[key] = (variant.params, json.dumps(variant.params, separators=(",", ":")))
        # customer ids, variant ids, tokens and reasons hold no character JSON escapes (rules.py)
        return (f'{{"customer_id":"{customer}","variant":"{variant.id}","params":{cached[1]},'
                f'"propensity":{propensity!r},"token":{"null" if token is None else chr(34) + token + chr(34)},'
                f'"reason":"{reason}"}}\n')

    async def _keep_up(self) -> None:
        """Wait while the recorder's queue is over half full: a batch must not outrun the
        writes and make the queue drop assignments."""
        recorder = self.core.recorder
        while len(recorder.pending) > recorder.max_pending // 2:
            await asyncio.sleep(recorder.flush_interval)
