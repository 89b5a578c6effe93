"""Guardrails: a metric a variant must not make worse than control, checked at every refresh. Pure.

An experiment declares up to ``MAX_GUARDRAILS``, e.g.
``{"metric": "bounce_rate", "threshold": 0.05}``: "a variant may raise the
bounce rate by at most 5 points over control". ``evaluate`` compares one
variant with control on the metric's sufficient statistics through the
confidence sequence of ``sequential.py``, so the check can run at every
refresh without inflating false alarms; ``cap`` keeps a breached variant at
most at the floor share whatever the policy says.

A breach needs evidence beyond the tolerated harm, not just a bad estimate:
the whole interval of the harm must lie beyond ``threshold``. Its error rate is
at most ``alpha`` per guardrail and variant over the whole experiment.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from croupier.router.records import InvalidExperiment, check, known_keys
from croupier.router.sequential import Interval, always_valid_p_value, difference_sequence

# metric -> (kind of sufficient statistics, the harmful direction by default)
METRICS = {
    "bounce_rate": ("proportion", "increase"),
    "engaged_rate": ("proportion", "decrease"),
    "active_time": ("mean", "decrease"),
    "conversion_value": ("mean", "decrease"),
    "error_rate": ("proportion", "increase"),
}
DIRECTIONS = ("increase", "decrease")
ACTIONS = ("cap", "pause")
MAX_GUARDRAILS = 8
DEFAULT_MIN_SAMPLE = 200  # views per arm: below it the plug-in variance is too rough to act on
GUARDRAIL_FIELDS = {"metric", "direction", "threshold", "relative", "min_sample", "action", "alpha"}


class GuardrailError(InvalidExperiment):
    """A guardrail declaration is invalid; the message starts with the field."""


@dataclass(frozen=True)
class Guardrail:
    """One declared guardrail; ``direction`` ``""`` takes the metric's harmful direction."""

    metric: str
    direction: str = ""
    threshold: float = 0.0  # tolerated harm: in the metric's unit, or a share of control's value
    relative: bool = False
    min_sample: int = DEFAULT_MIN_SAMPLE
    action: str = "cap"
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise GuardrailError(f"metric: must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.direction == "":
            object.__setattr__(self, "direction", METRICS[self.metric][1])
        if self.direction not in DIRECTIONS:
            raise GuardrailError(f"direction: must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if (isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float))
                or not math.isfinite(self.threshold) or self.threshold < 0):
            raise GuardrailError("threshold: must be a number >= 0")
        if not isinstance(self.relative, bool):
            raise GuardrailError("relative: must be true or false")
        if self.relative and self.direction == "decrease" and self.threshold >= 1:
            # a variant cannot fall 100% or more below control: such a guardrail could never fire
            raise GuardrailError("threshold: a relative decrease must be below 1")
        if isinstance(self.min_sample, bool) or not isinstance(self.min_sample, int) or not 2 <= self.min_sample <= 10**9:
            raise GuardrailError("min_sample: must be an integer in [2, 1000000000]")
        if self.action not in ACTIONS:
            raise GuardrailError(f"action: must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        if (isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float))
                or not 0 < self.alpha <= 0.5):
            raise GuardrailError("alpha: must be a number in (0, 0.5]")

    @property
    def kind(self) -> str:
        """``"proportion"`` (statistics ``(n, k)``) or ``"mean"`` (``(n, sum, sum_sq)``)."""
        return METRICS[self.metric][0]

    @property
    def sign(self) -> float:
        """+1 when a rise is the harm, -1 when a fall is."""
        return 1.0 if self.direction == "increase" else -1.0

    @property
    def ratio(self) -> float:
        """The multiple of control the variant is compared with: ``1 + sign * threshold`` when relative."""
        return 1.0 + self.sign * self.threshold if self.relative else 1.0

    def to_dict(self) -> dict[str, Any]:
        """The declaration with every default filled in (what the registry stores)."""
        return asdict(self)


def parse_guardrails(value: Any, label: str = "guardrails") -> tuple[Guardrail, ...]:
    """An experiment's ``guardrails`` field (a JSON list, or None for none) as ``Guardrail``s.

    Raises ``GuardrailError`` (an ``InvalidExperiment``) whose message starts with
    the field's path, e.g. ``guardrails[0].metric: must be one of ...``.
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        raise GuardrailError(f"{label}: must be a list")
    if len(value) > MAX_GUARDRAILS:
        raise GuardrailError(f"{label}: at most {MAX_GUARDRAILS} guardrails, got {len(value)}")
    out = []
    for i, item in enumerate(value):
        where = f"{label}[{i}]"
        try:
            known_keys(item, GUARDRAIL_FIELDS, where)
            check("metric" in item, f"{where}.metric: is required")
        except InvalidExperiment as exc:
            raise GuardrailError(str(exc)) from None
        try:
            out.append(Guardrail(**item))
        except GuardrailError as exc:
            raise GuardrailError(f"{where}.{exc}") from None
    return tuple(out)


def required_burn_in(guardrails) -> int:
    """The ``burn_in`` an experiment with these guardrails needs: the largest ``min_sample``.

    A bandit that finds the variant converts better starves control (down to
    the floor), and with it the comparison every guardrail rests on: at a 1%
    floor control would wait 20,000 visitors for 200 views. A uniform split
    until both arms have ``min_sample`` views gives each guardrail its first
    verdict before the policy takes over.
    """
    return max((g.min_sample for g in guardrails), default=0)


@dataclass(frozen=True)
class Verdict:
    """One guardrail on one variant at one look (fields broadcast over arrays of looks).

    ``estimate``, ``low`` and ``high``: the confidence sequence for ``variant -
    control`` in the metric's unit, at the guardrail's ``alpha``. ``p_value``: the
    always-valid p-value of "the variant is at most ``threshold`` worse".
    """

    guardrail: Guardrail
    breached: np.ndarray
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_control: np.ndarray
    n_variant: np.ndarray
    p_value: np.ndarray

    @property
    def reason(self):
        """A sentence for an alert or the dashboard (an array of them for arrays of looks)."""
        describe = np.vectorize(self._describe, otypes=[object])
        out = describe(self.breached, self.estimate, self.low, self.high, self.n_control, self.n_variant)
        return out.item() if out.ndim == 0 else out

    def _describe(self, breached, estimate, low, high, n_control, n_variant) -> str:
        g = self.guardrail
        tolerated = f"{g.threshold:.0%} of control" if g.relative else f"{g.threshold:g}"
        if min(n_control, n_variant) < g.min_sample:
            return (f"{g.metric}: waiting for {g.min_sample} views per arm "
                    f"(control {n_control:.0f}, variant {n_variant:.0f})")
        figures = f"variant - control {estimate:+.4g}, interval [{low:.4g}, {high:.4g}]"
        if breached:
            return f"{g.metric}: breached, the {g.direction} is beyond the tolerated {tolerated} ({figures})"
        return f"{g.metric}: within the tolerated {g.direction} of {tolerated} so far ({figures})"


def evaluate(guardrail: Guardrail, control, variant, *, rho: float | None = None) -> Verdict:
    """Whether ``variant`` breaches ``guardrail`` against ``control``.

    ``control`` and ``variant``: the metric's sufficient statistics per arm,
    ``(n, k)`` for a proportion, ``(n, sum, sum_sq)`` for a mean (numbers or
    arrays that broadcast). Breached when both arms have ``min_sample`` views
    and the confidence sequence puts the harm ``sign * (variant - ratio *
    control)`` above the tolerated margin at every value it holds: for an
    absolute threshold, the whole interval of ``variant - control`` lies beyond
    ``threshold`` in the harmful direction; for a relative one, ``variant``
    beyond ``(1 +- threshold) * control``.
    """
    kind = guardrail.kind
    n_control = np.asarray(control[0], dtype=np.float64)
    n_variant = np.asarray(variant[0], dtype=np.float64)
    margin = 0.0 if guardrail.relative else guardrail.threshold
    p_value = always_valid_p_value(kind, control, variant, null=guardrail.sign * margin, ratio=guardrail.ratio,
                                   alternative="greater" if guardrail.sign > 0 else "less",
                                   rho=rho, alpha=guardrail.alpha)
    enough = np.minimum(n_control, n_variant) >= guardrail.min_sample
    interval: Interval = difference_sequence(kind, control, variant, guardrail.alpha, rho=rho)
    return Verdict(guardrail, enough & (p_value < guardrail.alpha), interval.estimate, interval.low,
                   interval.high, n_control, n_variant, p_value)


def cap(probs, breached, floor: float) -> np.ndarray:
    """The split with every breached arm's share cut to ``min(p, floor)``.

    ``probs`` ``(..., K)`` (after ``allocation.apply_floor``), ``breached`` a
    boolean mask of the same shape. The mass taken away goes to the open arms in
    proportion to their shares (evenly if they have none), so a breached arm
    never gets more than ``floor`` whatever the policy says; when every arm but
    control is breached, control takes the rest. ``floor = 0`` shuts breached
    arms out. At least one arm per split must stay open.
    """
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor: must be a number in [0, 1], got {floor!r}")
    probs = np.asarray(probs, dtype=np.float64)
    mask = np.broadcast_to(np.asarray(breached, dtype=bool), probs.shape)
    open_arms = ~mask
    if not open_arms.any(axis=-1).all():
        raise ValueError("breached: every arm of a split is breached; control must stay open")
    capped = np.where(mask, np.minimum(probs, floor), probs)
    removed = (probs - capped).sum(axis=-1, keepdims=True)
    free = np.where(open_arms, probs, 0.0)
    total = free.sum(axis=-1, keepdims=True)
    evenly = open_arms / open_arms.sum(axis=-1, keepdims=True)
    weights = np.where(total > 0, free / np.where(total > 0, total, 1.0), evenly)
    return capped + removed * weights
