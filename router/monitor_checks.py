"""The monitor's checks beyond the sample ratio: guardrails and rate drift.

Each runs on the monitor's worker thread for a running experiment whose counters moved
(``croupier.router.monitor``), returns the alerts whose condition holds, and acts on the
new ones before they are raised:

- ``GuardrailCheck``: every variant against control on each guardrail
  (``croupier.router.guardrail_check``). A new breach is recorded through the store, which
  caps the variant in every router's next split; the alert's episode lasts as long as the
  breach is held, and ends when a marketer clears it.
- ``DriftCheck``: a change in an arm's conversion rate over the recent time buckets
  (``croupier.router.drift.rate_drift``, a change-point test on the mix-adjusted rate, so
  a shift in who visits is not read as the page getting worse). With ``on_drift:
  "forget"`` the arm's evidence from before the change is set aside (its counts then,
  kept in the stats hash and subtracted by ``croupier.router.snapshot.arm_stats``).
"""

from __future__ import annotations

import numpy as np

from croupier.router.alerts import Alert
from croupier.router.drift import rate_drift
from croupier.router.guardrail_check import check as guardrail_breaches
from croupier.router.history import bucket_arrays
from croupier.router.metrics import Metrics
from croupier.router.monitor import Check, Observation, _remove
from croupier.router.store import Store

DRIFT_WINDOW = 360  # time buckets the detector looks back over (6 hours of 60 s buckets)


class GuardrailCheck(Check):
    name = "guardrail"
    kinds = ("guardrail",)
    reads = ("engagement", "breaches")

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._gauged: dict[str, set[str]] = {}

    def run(self, seen: Observation) -> list[Alert]:
        e = seen.experiment
        if not e.guardrails:
            return []
        held = seen.data["breaches"]
        alerts = []
        for variant, doc in held.items():
            if doc.get("state") == "breached":  # the episode lasts until a marketer clears it
                alerts.append(self._alert(e, variant, doc))
        for breach in guardrail_breaches(e, seen.counters, seen.data["engagement"], held, now=seen.now):
            alerts.append(self._alert(e, breach.variant, {**breach.doc, "state": "breached"}))
        self._gauge(e.id, {a.variant for a in alerts})
        return alerts

    @staticmethod
    def _alert(e, variant: str, doc: dict) -> Alert:
        action = "gets no new visitors" if doc.get("action") == "pause" else f"is capped at {e.min_share:.0%}"
        return Alert("guardrail", e.id, f"Guardrail breached in experiment {e.id}: variant {variant} {action}; "
                                        f"{doc.get('reason', doc.get('metric', ''))}",
                     tenant=e.tenant, variant=variant, details=doc)

    async def act(self, store: Store, alerts: list[Alert]) -> None:
        for alert in alerts:  # recorded once: a breach already held is left as it is
            await store.record_breach(alert.experiment, alert.variant, dict(alert.details))

    def _gauge(self, experiment_id: str, breached: set[str]) -> None:
        if self.metrics is None:
            return
        for variant in self._gauged.get(experiment_id, set()) - breached:
            _remove(self.metrics.guardrail_breached, experiment_id, variant)
        for variant in breached:
            self.metrics.guardrail_breached.labels(experiment=experiment_id, variant=variant).set(1)
        self._gauged[experiment_id] = breached

    def forget(self, experiment_id: str) -> None:
        self._gauge(experiment_id, set())
        self._gauged.pop(experiment_id, None)


class DriftCheck(Check):
    name = "drift"
    kinds = ("drift",)
    reads = ("buckets",)

    def __init__(self, metrics: Metrics | None = None, window: int = DRIFT_WINDOW) -> None:
        self.metrics = metrics
        self.window = window

    def run(self, seen: Observation) -> list[Alert]:
        e = seen.experiment
        variants = e.active_variants
        if len(variants) > 64:  # a factorial experiment's combinations: its model watches the levels
            return []
        ids = [v.id for v in variants]
        conv = f"conv:{e.goal}"
        starts, arrays = bucket_arrays(seen.data["buckets"], ids, ["trials", conv])
        starts = list(starts)[-self.window:]
        trials, conversions = arrays["trials"][-self.window:], arrays[conv][-self.window:]
        alerts = []
        if len(starts) >= 2:
            found = rate_drift(trials, conversions)
            for k, vid in enumerate(ids):
                if not bool(found.detected[k]):
                    continue
                at = int(found.change_at[k])
                change = float(found.relative_change[k])
                # the counts the arm had before the change (its lifetime totals but the buckets
                # from the change on): what "forget" sets aside
                since = len(arrays["trials"]) - len(starts) + at
                held = seen.counters.get(vid, {})
                before = {name: max(float(held.get(name, 0.0)) - float(arrays[name][since:, k].sum()), 0.0)
                          for name in ("trials", conv)}
                alerts.append(Alert(
                    "drift", e.id, f"Conversion rate of variant {vid} in experiment {e.id} changed "
                                   f"{change:+.0%} since {_when(starts[at])} "
                                   f"({float(found.rate_before[k]):.2%} -> {float(found.rate_after[k]):.2%})"
                                   + ("; its evidence from before is set aside" if e.on_drift == "forget" else ""),
                    tenant=e.tenant, variant=vid,
                    details={"kind": "rate", "changed_at": int(starts[at]), "direction": int(found.direction[k]),
                             "rate_before": float(found.rate_before[k]), "rate_after": float(found.rate_after[k]),
                             "relative_change": change, "statistic": float(found.statistic[k]),
                             "on_drift": e.on_drift, "before": before}))
        if self.metrics is not None:
            self.metrics.drift_detected.labels(experiment=e.id, kind="rate").set(int(bool(alerts)))
        return alerts

    async def act(self, store: Store, alerts: list[Alert]) -> None:
        for alert in alerts:
            if alert.details.get("on_drift") == "forget":
                await store.forget_evidence(alert.experiment, alert.variant, alert.details["before"])

    def forget(self, experiment_id: str) -> None:
        if self.metrics is not None:
            _remove(self.metrics.drift_detected, experiment_id, "rate")


def _when(bucket_start: int) -> str:
    return np.datetime_as_string(np.datetime64(int(bucket_start), "s"), unit="m") + " UTC"
