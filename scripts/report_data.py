"""What a report reads from the running stack: one experiment's registry record, counters, time
buckets, segment counters, event history and alerts, through the store.

Reading only; everything computed from it is ``croupier.scripts.report_stats``'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from croupier.router.experiments import Experiment
from croupier.router.history_source import iter_history
from croupier.router.settings import Settings
from croupier.router.store import EXPERIMENT_ALERTS_KEEP, Store
from croupier.scripts.progress import Progress

PROGRESS_EVERY = 50_000
# Checks that raise alerts about an experiment's traffic or rates, shown on the time charts;
# guardrail breaches come from the event stream, where each is logged with its clearing.
ALERT_KINDS = ("drift", "mix", "srm")


class ReportError(RuntimeError):
    """Why no report can be made (unknown experiment, no data yet); the message says so."""


@dataclass
class Gathered:
    experiment: Experiment
    counters: dict[str, dict[str, float]]
    buckets: dict[int, dict[str, dict[str, float]]]
    segment_counters: dict[str, dict[str, dict[str, float]]]
    entries: list[tuple[str, dict]]
    alerts: list[dict] = field(default_factory=list)
    engagement: dict[str, dict[str, float]] = field(default_factory=dict)  # variant → engagement totals
    max_segments: int = 50
    read_at: float = field(default_factory=time.time)


async def gather(settings: Settings, experiment_id: str, progress: Progress, *,
                 archive_dir: Path | None = None) -> Gathered:
    """Everything the report shows about ``experiment_id``. ``ReportError`` when it is not in the
    registry or has no assignment yet; the store's errors when Redis cannot be reached."""
    store = Store(settings)
    try:
        progress.step(f"reading experiment {experiment_id!r}")
        experiment = await store.get_experiment(experiment_id)
        if experiment is None:
            known = sorted(await store.experiment_ids())
            raise ReportError(f"--experiment: no experiment {experiment_id!r} in the registry"
                              + (f" (experiments: {', '.join(known[:20])}{' ...' if len(known) > 20 else ''})"
                                 if known else " (it is empty)"))
        counters = (await store.counters([experiment_id]))[experiment_id]
        if not any(c.get("trials", 0.0) for c in counters.values()):
            raise ReportError(f"experiment {experiment_id!r} has no visitors yet: nothing to report")
        engagement, _ = await store.engagement_counters(experiment_id)
        buckets = await store.buckets(experiment_id)
        segments = (await store.segment_counters([experiment_id]))[experiment_id]
        total = await store.event_count(experiment_id)
        progress.step(f"reading the event history ({total} entries in the stream)")
        entries: list[tuple[str, dict]] = []
        async for entry in iter_history(store, experiment_id, archive_dir):
            entries.append(entry)
            if len(entries) % PROGRESS_EVERY == 0:
                progress.note(f"{len(entries)} of ~{total}")
        alerts = [a for a in await store.experiment_alerts(experiment_id, EXPERIMENT_ALERTS_KEEP)
                  if a.get("kind") in ALERT_KINDS]
        return Gathered(experiment, counters, buckets, segments, entries, alerts, engagement, settings.max_segments)
    finally:
        await store.close()
