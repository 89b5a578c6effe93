"""Prometheus metrics, one registry per app (so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# decisions take tens of microseconds; the buckets must resolve that range
DECISION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
# a refresh takes milliseconds with a few experiments and should stay well under its interval
# (0.5 s by default) with thousands
REFRESH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# NGINX gives a decision 250 ms: a loop late by tens of milliseconds already shows in its p99
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decision_seconds = Histogram(
            "croupier_decision_seconds", "Time to answer a decide subrequest.",
            buckets=DECISION_BUCKETS, registry=self.registry)
        self.decisions = Counter(
            "croupier_decisions", "Decisions by experiment, variant and reason.",
            ["experiment", "variant", "reason"], registry=self.registry)
        self.tokens_rejected = Counter(
            "croupier_tokens_rejected", "Assignment cookies refused, by reason.",
            ["reason"], registry=self.registry)
        self.beacon_events = Counter(
            "croupier_beacon_events", "Beacon events by result (accepted, duplicate, rejected) and reason.",
            ["result", "reason"], registry=self.registry)
        self.assignments_dropped = Counter(
            "croupier_assignments_dropped", "Assignments dropped because the queue was full while Redis was away.",
            registry=self.registry)
        self.assignment_write_failures = Counter(
            "croupier_assignment_write_failures", "Failed writes of a batch of queued assignments (retried), "
            "by error type.", ["error"], registry=self.registry)
        # the snapshot decisions are made from (router/refresh.py) and the loop they are made on
        self.snapshot_age = Gauge(
            "croupier_snapshot_age_seconds", "Seconds since the data of the snapshot decisions use was read "
            "from Redis (+Inf before the first snapshot).", registry=self.registry)
        self.snapshot_refresh_seconds = Histogram(
            "croupier_snapshot_refresh_seconds", "Time to refresh the snapshot: Redis reads and computation.",
            buckets=REFRESH_BUCKETS, registry=self.registry)
        self.snapshot_recomputed = Gauge(
            "croupier_snapshot_recomputed_experiments", "Running experiments whose allocations the last refresh "
            "computed (the others kept theirs: nothing they depend on changed).", registry=self.registry)
        self.snapshot_refresh_failures = Counter(
            "croupier_snapshot_refresh_failures", "Failed snapshot refreshes (the last snapshot stays in use), "
            "by error type.", ["error"], registry=self.registry)
        self.experiments = Gauge(
            "croupier_experiments", "Experiments in the snapshot, by status.", ["status"], registry=self.registry)
        self.event_loop_lag = Histogram(
            "croupier_event_loop_lag_seconds", "How late the event loop that answers decisions woke a task "
            "that slept for a fixed interval: the wait a decision arriving then would have had.",
            buckets=LAG_BUCKETS, registry=self.registry)
        # alerts (router/alerts.py): what the delivering router did, and what the checks found
        self.alerts_raised = Counter(
            "croupier_alerts_raised", "Alerts raised (written to the outbox), by kind.", ["kind"],
            registry=self.registry)
        self.alert_deliveries = Counter(
            "croupier_alert_deliveries", "Attempts to deliver an alert to a webhook, by webhook and outcome: "
            "delivered, retried (failed, tried again later), dropped (given up: too old, or trimmed from the "
            "outbox).", ["webhook", "outcome"], registry=self.registry)
        self.alerts_pending = Gauge(
            "croupier_alerts_pending", "Alerts in the outbox not yet delivered to every webhook (set by the "
            "router holding the alerts lease; 0 on the others).", registry=self.registry)
        self.alert_lease = Gauge(
            "croupier_alert_lease_held", "1 while this router holds the alerts lease (runs the monitor and "
            "delivers alerts).", registry=self.registry)
        self.alert_failures = Counter(
            "croupier_alert_failures", "Failures of the alert tasks (retried at their next round), by task "
            "(delivery, monitor, check, act, archive) and error type.", ["task", "error"], registry=self.registry)
        # set by the monitor's checks (router/monitor.py) on the router holding the lease
        self.srm_p_value = Gauge(
            "croupier_srm_p_value", "Sample-ratio mismatch test of a running experiment: the p-value of its "
            "assignments against the split the policy gave.", ["experiment"], registry=self.registry)
        self.srm_mismatch = Gauge(
            "croupier_srm_mismatch", "1 while a running experiment's sample-ratio test finds a mismatch.",
            ["experiment"], registry=self.registry)
        self.guardrail_breached = Gauge(
            "croupier_guardrail_breached", "1 while a variant breaches one of its experiment's guardrails.",
            ["experiment", "variant"], registry=self.registry)
        self.drift_detected = Gauge(
            "croupier_drift_detected", "1 while drift of a kind (rate, mix) is detected in an experiment.",
            ["experiment", "kind"], registry=self.registry)
        # set by the monitor (router/archive_backlog.py) when CROUPIER_ARCHIVE is on
        self.archive_backlog = Gauge(
            "croupier_archive_backlog_entries", "Entries in the event streams the archiver has not archived yet "
            "(set by the router holding the alerts lease, with CROUPIER_ARCHIVE on; 0 on the others).",
            registry=self.registry)
        self.archive_oldest = Gauge(
            "croupier_archive_oldest_unarchived_seconds", "Age of the oldest stream entry not archived yet "
            "(0: none; set like croupier_archive_backlog_entries).", registry=self.registry)
        # set by the retrainer (router/retrainer.py) on the router holding the retrain lease
        self.model_version = Gauge(
            "croupier_model_version", "The version a training round here made an experiment's current model.",
            ["experiment"], registry=self.registry)
        self.model_trained_at = Gauge(
            "croupier_model_trained_at_seconds", "When the latest training round here ran for an experiment "
            "(epoch seconds).", ["experiment"], registry=self.registry)
        self.model_rounds = Counter(
            "croupier_model_rounds", "Model training rounds, by trigger (schedule, drift) and outcome (accepted, "
            "rejected by the validation gate, skipped: too little data, failed).", ["trigger", "outcome"],
            registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
