"""Prometheus metrics, one registry per app (so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

# decisions take tens of microseconds; the buckets must resolve that range
DECISION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
