"""How good a conversion model is on rows it never saw, and whether a candidate may replace the current one.

Figures of predictions ``p`` against outcomes ``y`` (0/1) on a held-out window:

- log loss ``-mean(y log p + (1-y) log(1-p))`` (``p`` clipped to ``[1e-6, 1 - 1e-6]``);
- expected calibration error: rows grouped at the ``bins``-quantiles of ``p`` (equal predictions
  always in one group), ``ECE = sum_b n_b / n |mean p_b - mean y_b|`` (quantile groups:
  conversion rates are small, so equal-width bins would put nearly every row in the first);
  with it ``ece_noise = sqrt(r (1-r) B / n)`` (``r`` the window's rate, ``B`` the groups): about
  what sampling alone gives a perfectly calibrated model, so differences below it mean nothing;
- calibration slope and intercept: the logistic regression ``logit P(y) = a + b logit p``
  (Cox 1958); a calibrated model has ``a = 0, b = 1``, ``b < 1`` means overconfident;
- the reliability table those groups make (mean predicted, observed rate, rows).

The gate (``judge``): a candidate replaces the current model only when, on the same window,
its log loss is lower by ``margin`` (relative) and its ECE is not worse than the current's by
more than ``ece_tolerance`` plus its ``ece_noise``. The first model is held to the same test against the base-rate
model (every row predicted at the training rows' conversion rate). Pure: numpy only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

EPS = 1e-6
BINS = 10
LOG_LOSS_MARGIN = 0.002  # a candidate must cut the log loss by 0.2% at least: no churn on noise
ECE_TOLERANCE = 0.01  # ... and may not be worse calibrated by more than 1 point of rate
MIN_ROWS = 50  # fewer held-out rows than this tell nothing: no verdict


class ValidationError(ValueError):
    """Figures asked of unusable data; the message names what is wrong."""


@dataclass(frozen=True)
class Figures:
    rows: int
    conversions: int
    log_loss: float
    ece: float
    slope: float
    intercept: float
    mean_predicted: float
    ece_noise: float
    reliability: tuple[tuple[float, float, int], ...]  # per group: mean predicted, observed rate, rows

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["reliability"] = [list(r) for r in self.reliability]
        return doc


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def calibration_line(p: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """``(intercept, slope)`` of ``logit P(y) = a + b logit p``, by Newton's method with a tiny
    ridge (so a window without a conversion, or with one predicted value, still has an answer)."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    y = np.asarray(y, dtype=np.float64)
    x = np.column_stack([np.ones_like(p), np.log(p / (1.0 - p))])
    w = np.array([0.0, 1.0])
    ridge = np.array([1e-6, 1e-6])
    for _ in range(iterations):
        q = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -35.0, 35.0)))
        grad = x.T @ (y - q) - ridge * (w - np.array([0.0, 1.0]))
        hess = (x.T * (q * (1.0 - q))) @ x + np.diag(ridge)
        step = np.linalg.solve(hess, grad)
        w += step
        if np.max(np.abs(step)) < 1e-9:
            break
    return float(w[0]), float(w[1])


def figures(p, y, bins: int = BINS) -> Figures:
    """The window's figures (module docstring)."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1:
        raise ValidationError(f"predictions and outcomes: one each per row, got {p.shape} and {y.shape}")
    if not len(p):
        raise ValidationError("no rows to validate on")
    if not np.all((p >= 0) & (p <= 1)) or not np.all((y == 0) | (y == 1)):
        raise ValidationError("predictions must be in [0, 1] and outcomes 0 or 1")
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    group_of = np.searchsorted(edges, p, side="right")
    table, ece = [], 0.0
    for g in np.unique(group_of):
        members = group_of == g
        mean_p, rate = float(p[members].mean()), float(y[members].mean())
        table.append((round(mean_p, 6), round(rate, 6), int(members.sum())))
        ece += members.sum() / len(p) * abs(mean_p - rate)
    intercept, slope = calibration_line(p, y)
    overall = float(y.mean())
    noise = math.sqrt(overall * (1.0 - overall) * len(table) / len(p))
    return Figures(int(len(p)), int(y.sum()), log_loss(p, y), float(ece), slope, intercept, float(p.mean()),
                   noise, tuple(table))


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str


def judge(candidate: Figures, current: Figures | None, base: Figures, *, margin: float = LOG_LOSS_MARGIN,
          ece_tolerance: float = ECE_TOLERANCE, min_rows: int = MIN_ROWS) -> Verdict:
    """Whether ``candidate`` replaces ``current`` (None: the first model, held against ``base``,
    the base-rate model); all three figures of the same window."""
    if candidate.rows < min_rows:
        return Verdict(False, f"{candidate.rows} held-out rows, fewer than the {min_rows} a verdict needs")
    against, name = (current, "the current model") if current is not None else (base, "the base-rate model")
    needed = against.log_loss * (1.0 - margin)
    if not candidate.log_loss < needed:
        return Verdict(False, f"log loss {candidate.log_loss:.5f} is not below {name}'s {against.log_loss:.5f} "
                              f"by {margin:.1%} (needed < {needed:.5f})")
    if candidate.ece > against.ece + ece_tolerance + candidate.ece_noise:
        return Verdict(False, f"calibration error {candidate.ece:.4f} is worse than {name}'s {against.ece:.4f} "
                              f"by more than {ece_tolerance} + {candidate.ece_noise:.4f} (sampling noise)")
    gain = 1.0 - candidate.log_loss / against.log_loss if against.log_loss > 0 else math.inf
    return Verdict(True, f"log loss {candidate.log_loss:.5f} against {name}'s {against.log_loss:.5f} "
                         f"({gain:.1%} lower); calibration error {candidate.ece:.4f} against {against.ece:.4f}")


def accuracy_over_time(records: list[dict]) -> list[dict]:
    """The stats' view of a model's versions (``Store.model_records``), oldest first: each one's
    validation figures when it was trained and, once later events came, its live figures on them."""
    out = []
    for r in records:
        v, live = r.get("validation") or {}, r.get("live") or {}
        candidate, against = v.get("candidate") or {}, v.get("current") or v.get("base_rate") or {}
        out.append({"version": r["version"], "status": r.get("status"), "trigger": r.get("trigger"),
                    "trained_at": r.get("trained_at"), "current": r.get("current", False),
                    "validation_log_loss": candidate.get("log_loss"), "validation_ece": candidate.get("ece"),
                    "judged_against_log_loss": against.get("log_loss"),
                    "live_log_loss": live.get("log_loss"), "live_ece": live.get("ece"), "live_rows": live.get("rows"),
                    "live_measured_at": live.get("measured_at")})
    return out
