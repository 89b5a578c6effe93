"""A training round with its I/O: read the events, train and judge (``router/model_training.py``), store the version.

Both ``croupier-model train`` and the router's retrainer (``router/retrainer.py``) run
exactly this. The events are read through ``croupier.router.history_source.iter_history``
(the archive, then the stream), keeping only the latest ``max_events`` so a round's
memory and time are bounded whatever the history's length. The candidate is stored as
a new version either way: accepted (the experiment's current model from now on, every
router loading it at its next refresh) or rejected with its figures and the reason.
The acceptance is a compare-and-set on the current version, so a round that was judged
against a model another round replaced meanwhile is stored as rejected instead.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

from croupier.router.history_source import iter_history
from croupier.router.hybrid import StoredModel, decode
from croupier.router.model import ModelError
from croupier.router.model_training import HOLDOUT, train_round
from croupier.router.store import Store

MAX_EVENTS = 200_000


async def current_model(store: Store, experiment_id: str) -> tuple[StoredModel | None, dict | None]:
    """The current model (None: none, or unreadable) and its version's record (None: not kept)."""
    found = await store.load_model(experiment_id)
    if found is None:
        return None, None
    try:
        stored = decode(found[1], found[0])
    except ModelError:
        return None, None  # an unreadable model is no model to compare with: the candidate faces the base rate
    record = next((r for r in await store.model_records(experiment_id) if r["version"] == stored.version), None)
    return stored, record


async def run_round(store: Store, experiment_id: str, *, trigger: str, archive_dir: Path | None = None,
                    max_events: int = MAX_EVENTS, holdout: float = HOLDOUT, l2: float = 1.0, bits: int = 18,
                    force: bool = False, shuffle_labels: bool = False, since_ms: int | None = None,
                    progress: Any = None) -> dict[str, Any]:
    """One round for one experiment; returns the stored version's record (with ``version``,
    ``experiment`` and ``live``). Raises ``ModelError`` naming what is missing."""
    experiment = await store.get_experiment(experiment_id)
    if experiment is None:
        raise ModelError(f"experiment {experiment_id!r} not found in the registry")
    current, current_record = await current_model(store, experiment_id)
    entries: deque[tuple[str, dict]] = deque(maxlen=max_events)
    async for entry in iter_history(store, experiment_id, archive_dir):
        entries.append(entry)
        if progress is not None and len(entries) % 50_000 == 0:
            progress.note(f"{len(entries)} events read")
    if not entries:
        raise ModelError(f"experiment {experiment_id!r} has no events to train on")
    if progress is not None:
        progress.step(f"training on the latest {len(entries)} events of {experiment_id!r}")
    live_after = (current_record or {}).get("data", {}).get("last_ms")
    now = time.time()
    found = train_round(list(entries), experiment.goal, trigger=trigger, current=current, live_after_ms=live_after,
                        reward=experiment.reward, holdout=holdout, l2=l2, bits=bits, force=force,
                        shuffle_labels=shuffle_labels, now=now, since_ms=since_ms)
    record = found.record
    expected = None if force else (current.version if current is not None else 0)
    version, accepted = await store.save_model_version(experiment_id, found.doc, record, accept=found.accepted,
                                                       expected=expected, through=entries[-1][0], attempted=now)
    if version == -1:  # another round replaced the current model while this one was judged against it
        record = {**record, "status": "rejected",
                  "reason": "the current model changed while this one was validated; the next round judges again"}
        version, accepted = await store.save_model_version(experiment_id, None, record, accept=False,
                                                           through=entries[-1][0], attempted=now)
    if found.live is not None:
        await store.record_live_figures(experiment_id, found.live["version"], found.live)
    return {**record, "experiment": experiment_id, "version": version, "current": accepted, "live": found.live,
            "model": decode(found.doc, version).summary()}
