"""The monitor's checks beyond the sample ratio: guardrails, rate drift and traffic-mix drift.

Each runs on the monitor's worker thread for a running experiment whose counters moved
(``croupier.router.monitor``), returns the alerts whose condition holds, and acts on the
new ones before they are raised:

- ``GuardrailCheck``: every variant against control on each guardrail
  (``croupier.router.guardrail_check``). A new breach is recorded through the store, which
  caps the variant in every router's next split; the alert's episode lasts as long as the
  breach is held, and ends when a marketer clears it.
- ``DriftCheck``: a change in an arm's conversion rate over the recent time buckets
  (``croupier.router.drift.rate_drift``, a change-point test), stratified by device class:
  trials and conversions are counted per bucket, arm and device, and the test compares each
  side of a change with the rate the window's per-device rates predict for that side's mix,
  so a shift in who visits does not read as a rate change (``MixDriftCheck`` reports it).
  With ``on_drift: "forget"`` the arm's evidence from before the change is set aside (its
  counts then, kept in the stats hash and subtracted by ``croupier.router.snapshot.arm_stats``).
- ``MixDriftCheck``: a change in who visits (the share of each device class among the
  assignments of the recent buckets against the buckets before them,
  ``croupier.router.drift.mix_drift``), raised apart from any rate change, as kind
  ``mix``: more mobile visitors is not the page getting worse. It only informs; nothing
  is set aside.
"""

from __future__ import annotations

import numpy as np

from croupier.router.alerts import Alert
from croupier.router.drift import (DEFAULT_MIN_COUNT, DEFAULT_THRESHOLD, MIN_MIX_VIEWS, PSI_SIGNIFICANT, mix_drift,
                                   rate_drift)
from croupier.router.experiments import Experiment
from croupier.router.guardrail_check import check as guardrail_breaches
from croupier.router.metrics import Metrics
from croupier.router.monitor import Check, Observation, _remove
from croupier.router.settings import Settings
from croupier.router.store import Store

# the defaults of the checks' windows and thresholds are the settings' (CROUPIER_DRIFT_*, CROUPIER_MIX_*)
DRIFT_WINDOW = Settings.drift_window
MIX_RECENT = Settings.mix_recent
MIX_REFERENCE = Settings.mix_reference


def drift_checks(metrics: Metrics | None, settings: Settings | None) -> list[Check]:
    """The drift checks as the settings configure them (their defaults without settings)."""
    if settings is None:
        return [DriftCheck(metrics), MixDriftCheck(metrics)]
    return [DriftCheck(metrics, settings.drift_window, settings.drift_threshold, settings.drift_min_count),
            MixDriftCheck(metrics, settings.mix_recent, settings.mix_reference, settings.mix_threshold,
                          settings.mix_min_views)]


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
    """A change in an arm's conversion rate over the last ``window`` time buckets, adjusted for
    the traffic's mix: trials and conversions are counted per device class (the ``devices``
    reader), and ``drift.rate_drift(stratified=True)`` compares each side of a candidate change
    with what the window's per-device rates predict for that side's own mix. Buckets without a
    visitor are not stored, so a quiet experiment's window reaches further back."""

    name = "drift"
    kinds = ("drift",)
    reads = ("devices",)

    def __init__(self, metrics: Metrics | None = None, window: int = DRIFT_WINDOW,
                 threshold: float = DEFAULT_THRESHOLD, min_count: float = DEFAULT_MIN_COUNT) -> None:
        if window < 2:
            raise ValueError(f"DriftCheck: window ({window}) must be at least 2 buckets")
        self.metrics = metrics
        self.window = window
        self.threshold = threshold
        self.min_count = min_count

    def run(self, seen: Observation) -> list[Alert]:
        e = seen.experiment
        variants = e.active_variants
        if len(variants) > 64:  # a factorial experiment's combinations: its model watches the levels
            return []
        ids = [v.id for v in variants]
        conv = f"conv:{e.goal}"
        starts, arrays = device_arrays(seen.data["devices"], ids, ["trials", conv], self.window)
        trials, conversions = arrays["trials"], arrays[conv]
        alerts = []
        if len(starts) >= 2:
            found = rate_drift(trials, conversions, stratified=True, threshold=self.threshold,
                               min_count=self.min_count)
            for k, vid in enumerate(ids):
                if not bool(found.detected[k]):
                    continue
                at = int(found.change_at[k])
                change = float(found.relative_change[k])
                # the counts the arm had before the change (its lifetime totals but the buckets
                # from the change on, every device's): what "forget" sets aside
                held = seen.counters.get(vid, {})
                before = {name: max(float(held.get(name, 0.0)) - float(arrays[name][at:, :, k].sum()), 0.0)
                          for name in ("trials", conv)}
                alerts.append(Alert(
                    "drift", e.id, f"Conversion rate of variant {vid} in experiment {e.id} changed "
                                   f"{change:+.0%} since {_when(starts[at])} "
                                   f"({float(found.rate_before[k]):.2%} -> {float(found.rate_after[k]):.2%}, "
                                   f"adjusted for the device mix)"
                                   + ("; its evidence from before is set aside" if e.on_drift == "forget" else ""),
                    tenant=e.tenant, variant=vid,
                    details={"kind": "rate", "changed_at": int(starts[at]), "direction": int(found.direction[k]),
                             "rate_before": float(found.rate_before[k]), "rate_after": float(found.rate_after[k]),
                             "relative_change": change, "statistic": float(found.statistic[k]),
                             "threshold": self.threshold, "stratified_by": "device",
                             "on_drift": e.on_drift, "before": before}))
        _flag_drift(self.metrics, e.id, "rate", bool(alerts))
        return alerts

    async def act(self, store: Store, alerts: list[Alert]) -> None:
        for alert in alerts:
            if alert.details.get("on_drift") == "forget":
                await store.forget_evidence(alert.experiment, alert.variant, alert.details["before"])

    def forget(self, experiment_id: str) -> None:
        if self.metrics is not None:
            _remove(self.metrics.drift_detected, experiment_id, "rate")


def device_arrays(buckets: dict[int, dict[str, dict[str, dict[str, float]]]], variant_ids: list[str],
                  counters: list[str], last: int) -> tuple[list[int], dict[str, np.ndarray]]:
    """The last ``last`` buckets' starts (oldest first) and, per counter, an array ``(T, S, K)``
    (``S`` the device classes seen in them, sorted) from ``bucket → device → variant → counter``
    (``store.parse_device_buckets``)."""
    starts = list(buckets)[-last:]
    strata = sorted({device for start in starts for device in buckets[start]})
    arrays = {c: np.zeros((len(starts), len(strata), len(variant_ids))) for c in counters}
    for i, start in enumerate(starts):
        for s, device in enumerate(strata):
            row = buckets[start].get(device)
            if not row:
                continue
            for k, vid in enumerate(variant_ids):
                values = row.get(vid)
                if values:
                    for c in counters:
                        arrays[c][i, s, k] = values.get(c, 0.0)
    return starts, arrays


def _flag_drift(metrics: Metrics | None, experiment_id: str, kind: str, detected: bool) -> None:
    """``croupier_drift_detected``: a series only while drift holds (see SampleRatioCheck)."""
    if metrics is None:
        return
    if detected:
        metrics.drift_detected.labels(experiment=experiment_id, kind=kind).set(1)
    else:
        _remove(metrics.drift_detected, experiment_id, kind)


def _when(bucket_start: int) -> str:
    return np.datetime_as_string(np.datetime64(int(bucket_start), "s"), unit="m") + " UTC"


class MixDriftCheck(Check):
    """The device classes' shares of the assignments in the last ``recent`` time buckets against
    the ``reference`` buckets before them: PSI above ``threshold`` with ``min_views`` assignments
    in each window is a shift (``drift.mix_drift``). Buckets without assignments are not
    stored, so a quiet experiment's windows reach further back, as ``DriftCheck``'s does."""

    name = "mix"
    kinds = ("mix",)
    reads = ("mix",)
    field = "device"

    def __init__(self, metrics: Metrics | None = None, recent: int = MIX_RECENT, reference: int = MIX_REFERENCE,
                 threshold: float = PSI_SIGNIFICANT, min_views: int = MIN_MIX_VIEWS) -> None:
        if recent < 1 or reference < 1:
            raise ValueError(f"MixDriftCheck: recent ({recent}) and reference ({reference}) must be at least 1 bucket")
        self.metrics = metrics
        self.recent = recent
        self.reference = reference
        self.threshold = threshold
        self.min_views = min_views

    def run(self, seen: Observation) -> list[Alert]:
        e = seen.experiment
        buckets = seen.data["mix"]
        starts = list(buckets)[-(self.recent + self.reference):]
        windows = {"reference": starts[:-self.recent], "recent": starts[-self.recent:]}
        alerts = []
        if windows["reference"]:
            counts = {name: self._counts(buckets, window) for name, window in windows.items()}
            categories = sorted(counts["reference"].keys() | counts["recent"].keys())
            if len(categories) >= 2:
                ref, now = ([counts[name].get(c, 0.0) for c in categories] for name in ("reference", "recent"))
                found = mix_drift(ref, now, threshold=self.threshold, min_views=self.min_views)
                if bool(found.shifted):
                    alerts.append(self._alert(e, categories, ref, now, float(found.psi), float(found.js), windows))
        _flag_drift(self.metrics, e.id, "mix", bool(alerts))
        return alerts

    def _counts(self, buckets: dict[int, dict[str, dict[str, float]]], starts: list[int]) -> dict[str, float]:
        out: dict[str, float] = {}
        for start in starts:
            for category, n in buckets[start].get(self.field, {}).items():
                out[category] = out.get(category, 0.0) + n
        return out

    def _alert(self, e: Experiment, categories: list[str], ref: list[float], now: list[float], psi: float,
               js: float, windows: dict[str, list[int]]) -> Alert:
        before = dict(zip(categories, np.asarray(ref) / sum(ref)))
        after = dict(zip(categories, np.asarray(now) / sum(now)))
        moved = max(categories, key=lambda c: after[c] - before[c])  # named by who arrives more
        summary = (f"Traffic mix of experiment {e.id} shifted: {moved} {before[moved]:.0%} -> {after[moved]:.0%} "
                   f"(PSI {psi:.2f})")
        details = {"kind": "mix", "field": self.field, "psi": round(psi, 4), "js": round(js, 4),
                   "threshold": self.threshold, "min_views": self.min_views,
                   "reference": {c: round(float(x), 4) for c, x in before.items()},
                   "recent": {c: round(float(x), 4) for c, x in after.items()},
                   "windows": {name: {"first": int(windows[name][0]), "last": int(windows[name][-1]),
                                      "buckets": len(windows[name]), "views": int(sum(counts))}
                               for name, counts in (("reference", ref), ("recent", now))}}
        return Alert("mix", e.id, summary, tenant=e.tenant, details=details)

    def forget(self, experiment_id: str) -> None:
        if self.metrics is not None:
            _remove(self.metrics.drift_detected, experiment_id, "mix")
