"""The assignment ledger: a batch of assignments is applied once, however often it is sent.

The recorder hands a batch back whenever its write failed, and a write can fail after
Redis applied it: the reply is lost (redis-py's cluster client closes every connection
when it re-reads the topology), or the batch, which spans experiments, failed part-way on
a cluster (one node away). So each experiment's share of a batch is written as a group
that carries this router's id (``writer``) and a sequence number, and
``record_assignments.lua`` applies a number only once (it keeps, per experiment, the last
number applied for each writer). A group whose outcome is unknown is sent again as it
was, same number, same records, before anything newer of its experiment; records known
written are skipped when their batch comes back.

No Redis here: the store passes the write, which knows the keys and the script.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar


class Record(Hashable, Protocol):
    @property
    def experiment(self) -> str: ...


R = TypeVar("R", bound=Record)

# (experiment id, writer, sequence number, the experiment's records): applies them once
WriteGroup = Callable[[str, str, int, list[R]], Awaitable[object]]

FORGET_AFTER = 200_000  # records remembered as written before the memory is reset


class AssignmentLedger(Generic[R]):
    """What this router wrote of the batches the recorder may hand back."""

    def __init__(self, writer: str | None = None) -> None:
        self.writer = writer or secrets.token_hex(8)  # random per process: a restart never reuses numbers
        self._seq = itertools.count(1)
        # experiment → the group written last without a known outcome
        self.unsettled: dict[str, tuple[int, list[R]]] = {}
        # groups written whose batch may still come back; kept as the lists they were written
        # as, so a flush that went through never hashes its records (a record's hash is not
        # cached and covers every field: hashing each four times cost ~1.5 µs a decision)
        self._written: list[list[R]] = []
        self._written_count = 0

    async def apply(self, records: list[R], write: WriteGroup[R]) -> None:
        """Write a batch, one group per experiment, all at once. Raises the first failure
        (the batch is then to be handed back as it is); returns once all of it is written."""
        # writes whose outcome is unknown go first, as they were, so each is applied once
        retried = list(self.unsettled.items())
        outcomes = await asyncio.gather(*(self._write(write, exp_id, seq, group) for exp_id, (seq, group) in retried),
                                        return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        # an experiment whose older write is still unsettled waits for it: its newer records
        # stay in the batch, which fails with the older write's error and comes back
        blocked = {exp_id for (exp_id, _), o in zip(retried, outcomes) if isinstance(o, BaseException)}
        by_experiment: defaultdict[str, list[R]] = defaultdict(list)
        for r in self._new(records):
            by_experiment[r.experiment].append(r)
        groups = [(exp_id, next(self._seq), group) for exp_id, group in by_experiment.items()
                  if exp_id not in blocked]
        outcomes = await asyncio.gather(*(self._write(write, *g) for g in groups), return_exceptions=True)
        failures += [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
        self._batch_done(records, [group for _, _, group in groups])

    async def _write(self, write: WriteGroup[R], experiment_id: str, seq: int, records: list[R]) -> None:
        self.unsettled[experiment_id] = (seq, records)  # before the call: it may be cancelled
        await write(experiment_id, self.writer, seq, records)
        self.unsettled.pop(experiment_id, None)
        if self._written_count > FORGET_AFTER:  # records the recorder dropped never come back
            self._written, self._written_count = [], 0
        self._written.append(records)
        self._written_count += len(records)

    def _new(self, records: list[R]) -> list[R]:
        if not self._written and not self.unsettled:  # nothing in doubt: every record is new
            return records
        skip = {r for group in self._written for r in group}
        skip.update(r for _, group in self.unsettled.values() for r in group)
        return [r for r in records if r not in skip]

    def _batch_done(self, records: list[R], groups: list[list[R]]) -> None:
        """The recorder drops a batch once ``apply`` returned: nothing of it comes back.
        ``groups``: the lists of the batch's records written by this call."""
        mine = {id(group) for group in groups}  # alive in the caller: their ids are theirs
        rest = [group for group in self._written if id(group) not in mine]
        if rest:  # records of an earlier batch written on a retry: drop those that came back in this one
            done = set(records)
            rest = [kept for group in rest if (kept := [r for r in group if r not in done])]
        self._written, self._written_count = rest, sum(map(len, rest))
