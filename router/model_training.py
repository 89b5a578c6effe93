"""One training round of the conversion model, as pure computation: split, fit, validate, judge.

The experiment's events (stream entries, oldest first) are joined into rows
(``croupier.router.ope.join_log``: one per assignment, 1 when it converted). The most
recent ``holdout`` share of the rows is held out: the candidate is fitted on the rows
before it (``croupier.router.model.fit``) and never sees it; then the candidate, the
current model and the base-rate model (the training rows' conversion rate for everyone)
are all scored on that same recent window (``croupier.router.model_validation``) and the
gate decides. The most recent conversions may still be on their way, which lowers the
window's rate for every model alike, so the comparison stays fair.

The current model's live figures are its figures on the rows assigned after the last
event its own training read: data it was never fitted nor selected on.

``since_ms`` (a drift round: when the detected change began) leaves out the assignments
before it, so the candidate learns the relationship as it is now, not a mix of before and
after; when too few assignments came since, the whole window is used.

``shuffle_labels`` fits on the training rows with their outcomes permuted: a model that
learnt nothing real, which the gate must reject (a check of the gate, never for use).
Pure: numpy and the standard library; the I/O is ``croupier.router.model_update``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from croupier.router.hybrid import StoredModel, encode
from croupier.router.model import ModelError, fit
from croupier.router.model_validation import Figures, Verdict, figures, judge
from croupier.router.ope import join_log
from croupier.router.reward import Reward

HOLDOUT = 0.2  # the most recent fifth of the rows validates
MIN_TRAIN_ROWS = 100
TRIGGERS = ("schedule", "drift", "manual")


@dataclass(frozen=True)
class Round:
    """What a training round produced: the candidate's document (None when there was nothing to
    fit), its record (figures, verdict, data range) and the current model's live figures."""

    accepted: bool
    reason: str
    doc: dict[str, Any] | None
    record: dict[str, Any]
    live: dict[str, Any] | None = None
    candidate: Figures | None = field(default=None, repr=False)


def entry_ms(entry_id: str) -> int:
    """A stream entry id's milliseconds (``1700000000000-3`` → 1700000000000)."""
    return int(entry_id.partition("-")[0])


def _ts(fields: dict) -> int:
    try:
        return int(fields["ts"])
    except (KeyError, ValueError):
        return -1


def _assign_times(entries: Sequence[tuple[str, dict]]) -> list[int]:
    return sorted(t for t in (_ts(f) for _, f in entries if f.get("type") == "assign") if t >= 0)


def _row_predictions(model, contexts, arms: Sequence[str], actions: np.ndarray) -> np.ndarray:
    """Each row's predicted rate for the arm it was given."""
    if not len(actions):
        return np.zeros(0)
    table = model.predict_log(contexts, list(arms), len(actions))
    return table[np.arange(len(actions)), actions]


def train_round(entries: Sequence[tuple[str, dict]], goal: str, *, trigger: str, current: StoredModel | None = None,
                live_after_ms: int | None = None, reward: Reward | None = None, holdout: float = HOLDOUT,
                l2: float = 1.0, bits: int = 18, force: bool = False, shuffle_labels: bool = False,
                now: float | None = None, seed: int = 0, since_ms: int | None = None) -> Round:
    """Fit a candidate on ``entries`` and judge it against ``current`` (module docstring).

    ``live_after_ms``: the end of the data ``current`` was trained on; its rows after that give
    its live figures. Raises ``ModelError`` when there is too little to fit."""
    if trigger not in TRIGGERS:
        raise ModelError(f"trigger: one of {', '.join(TRIGGERS)}, got {trigger!r}")
    if not 0 < holdout < 1:
        raise ModelError(f"holdout: must be in (0, 1), got {holdout}")
    now = time.time() if now is None else now
    if since_ms is not None:
        recent = [e for e in entries if not (e[1].get("type") == "assign" and _ts(e[1]) < since_ms)]
        if len(_assign_times(recent)) * (1 - holdout) >= MIN_TRAIN_ROWS:
            entries = recent
        else:
            since_ms = None  # too little since the change: the whole window, mix and all
    log, report = join_log(entries, goal, reward=reward)
    n = log.n
    cut = n - max(int(round(n * holdout)), 1)
    if cut < MIN_TRAIN_ROWS:
        raise ModelError(f"{n} assignments: too few to train on ({MIN_TRAIN_ROWS} before the "
                         f"{holdout:.0%} held out are needed)")
    contexts = list(log.contexts) if log.contexts is not None else [None] * n
    rewards = (log.rewards > 0).astype(np.float64)  # the model predicts conversion, whatever the reward weighs
    train_y = rewards[:cut].copy()
    if shuffle_labels:
        np.random.default_rng(seed).shuffle(train_y)
    candidate = fit(contexts[:cut], log.arms, log.actions[:cut], train_y, l2=l2, bits=bits)

    held_ctx, held_actions, held_y = contexts[cut:], log.actions[cut:], rewards[cut:]
    cand = figures(_row_predictions(candidate, held_ctx, log.arms, held_actions), held_y)
    base_rate = float(np.clip(train_y.mean(), 1e-6, 1 - 1e-6))
    base = figures(np.full(len(held_y), base_rate), held_y)
    cur = figures(_row_predictions(current.model, held_ctx, log.arms, held_actions), held_y) \
        if current is not None else None
    verdict = judge(cand, cur, base)
    if force and not verdict.accepted:
        verdict = Verdict(True, f"forced past the gate ({verdict.reason})")

    times = _assign_times(entries)
    aligned = len(times) == n  # join_log skipped no assignment: its rows line up with these times
    live = None
    if current is not None and live_after_ms is not None and aligned:
        later = sum(1 for t in times if t > live_after_ms)
        if later:
            p = _row_predictions(current.model, contexts[n - later:], log.arms, log.actions[n - later:])
            live = {"version": current.version, "measured_at": round(now, 3), "after_ms": live_after_ms,
                    **figures(p, rewards[n - later:]).to_dict()}
    doc = encode(candidate, goal=goal, trained_at=round(now, 3), contexts=contexts[:cut])
    record = {
        "status": "accepted" if verdict.accepted else "rejected", "reason": verdict.reason, "trigger": trigger,
        "trained_at": round(now, 3), "forced": bool(force), "shuffled_labels": bool(shuffle_labels),
        "rows": {"train": cut, "holdout": n - cut, "train_conversions": int(train_y.sum()),
                 "attributed": report.attributed},
        # times of the assignments (their own clock, which live figures compare with), else of the entries
        "data": {"first_id": entries[0][0], "last_id": entries[-1][0],
                 "first_ms": times[0] if aligned else entry_ms(entries[0][0]),
                 "last_ms": times[-1] if aligned else entry_ms(entries[-1][0]),
                 "holdout_from_ms": times[cut] if aligned else None, "events": len(entries),
                 "since_ms": since_ms},
        "validation": {"candidate": cand.to_dict(), "base_rate": base.to_dict(),
                       "current": cur.to_dict() if cur is not None else None,
                       "current_version": current.version if current is not None else None},
        "params": {"holdout": holdout, "l2": l2, "bits": bits},
    }
    return Round(verdict.accepted, verdict.reason, doc, record, live, cand)
