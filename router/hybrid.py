"""The conversion model in the product: its stored form, its summary, and the hybrid the snapshot applies.

``croupier-model train`` fits ``croupier.router.model`` on an experiment's event stream and
saves it through the store as a JSON document (``encode``); each router loads it
again (``decode``) when its version changes, and, for an experiment with
``model_weight`` > 0, folds the model's predictions into the bandit's Beta priors
before every allocation (``blend_overall`` for the experiment-wide split,
``blend_segments`` per segment with the segment's context values). Predictions
are cached per stored model, so a refresh costs a dictionary look-up per segment.

The document keeps what prediction needs (the arms, the weights, the Laplace
covariance, the hashed columns, ``bits`` and ``l2``) plus the training contexts'
mix: the model's rate for "a visitor of this experiment" is the mean over that
mix, which is the context-free prediction when the log had no contexts. Pure:
numpy and the standard library.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from croupier.router.model import ConversionModel, ModelError, prior_for, with_model_prior
from croupier.router.policies import ArmStats
from croupier.router.segments import segment_fields

FORMAT = 1
# The covariance is columns^2 floats: 400 columns is 1.3 MB of float64 before base64.
MAX_COLUMNS = 400
MAX_CONTEXTS = 100  # the training mix keeps the most frequent contexts
_CACHE = 4096


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f8").tobytes()).decode()


def _unpack(text: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    try:
        flat = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f8")
    except (ValueError, TypeError):
        raise ModelError(f"{name}: not base64 float64") from None
    if flat.size != int(np.prod(shape)):
        raise ModelError(f"{name}: {flat.size} values, expected {int(np.prod(shape))}")
    return flat.reshape(shape).astype(np.float64)


def _key(context: dict | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in (context or {}).items() if v not in (None, "")))


def training_mix(contexts: Iterable[dict | None] | None, limit: int = MAX_CONTEXTS) -> list[tuple[dict, float]]:
    """The training rows' contexts and their shares: the ``limit`` most frequent, shares summing to 1."""
    counts = Counter(_key(c) for c in (contexts or [None]))
    top = counts.most_common(limit)
    total = sum(n for _, n in top)
    return [(dict(key), n / total) for key, n in top]


@dataclass(frozen=True)
class StoredModel:
    """A model as the store holds it: the fitted model, its version and what it was trained on."""

    model: ConversionModel
    version: int = 0
    trained_at: float = 0.0
    goal: str = ""
    mix: tuple[tuple[dict, float], ...] = (({}, 1.0),)
    # predictions per (context, arms): they only change with the model, which a new version replaces
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def predict(self, context: dict | None, arm_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        key = (_key(context), tuple(arm_ids))
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _CACHE:
                self._cache.clear()
            found = self._cache[key] = self.model.predict_arms(context, list(arm_ids))
        return found

    def overall(self, arm_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each arm's rate for a visitor drawn from the training mix, and its standard deviation
        (the mix's mean of the per-context deviations: a bound, never overconfident)."""
        rate, sd = np.zeros(len(arm_ids)), np.zeros(len(arm_ids))
        for context, share in self.mix:
            r, s = self.predict(context, arm_ids)
            rate += share * r
            sd += share * s
        return rate, sd

    def prior(self, strength: float) -> tuple[float, float]:
        """A new variant's Beta prior (``croupier.router.model.prior_for``), averaged over the training mix."""
        alpha = beta = 0.0
        for context, share in self.mix:
            a, b = prior_for(self.model, context or None, strength)
            alpha, beta = alpha + share * a, beta + share * b
        return alpha, beta

    def summary(self, arm_ids: Sequence[str] | None = None) -> dict[str, Any]:
        ids = list(arm_ids or self.model.arms)
        rate, sd = self.overall(ids)
        return {"version": self.version, "trained_at": self.trained_at, "goal": self.goal, "rows": self.model.rows,
                "columns": len(self.model.weights), "contexts": len(self.mix),
                "arms": {a: {"rate": float(r), "sd": float(s), "seen": a in self.model.arms}
                         for a, r, s in zip(ids, rate, sd)}}


def encode(model: ConversionModel, *, goal: str, trained_at: float,
           contexts: Iterable[dict | None] | None = None) -> dict[str, Any]:
    """The JSON document of a fitted model (the store adds the version)."""
    columns = len(model.weights)
    if columns > MAX_COLUMNS:
        raise ModelError(f"columns: the model has {columns}, more than the {MAX_COLUMNS} a stored model may have; "
                         f"train on fewer context fields (segment_keys)")
    return {"format": FORMAT, "goal": goal, "trained_at": trained_at, "rows": model.rows, "arms": list(model.arms),
            "bits": model.bits, "l2": model.l2, "hashed": [int(h) for h in model.hashed],
            "weights": _pack(model.weights), "covariance": _pack(model.covariance),
            "mix": [[c, s] for c, s in training_mix(contexts)]}


def decode(doc: dict[str, Any], version: int = 0) -> StoredModel:
    """The stored model of a document; ``ModelError`` naming the field when it cannot be read."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelError(f"format: expected {FORMAT}, got {doc.get('format') if isinstance(doc, dict) else doc!r}")
    try:
        arms = tuple(str(a) for a in doc["arms"])
        hashed = np.array([int(h) for h in doc["hashed"]], dtype=np.int64)
        columns = 1 + len(arms) + len(hashed)
        model = ConversionModel(arms, _unpack(doc["weights"], (columns,), "weights"),
                                _unpack(doc["covariance"], (columns, columns), "covariance"), hashed,
                                int(doc["bits"]), float(doc["l2"]), rows=int(doc["rows"]))
        mix = tuple((dict(c), float(s)) for c, s in doc["mix"]) or (({}, 1.0),)
        return StoredModel(model, version, float(doc["trained_at"]), str(doc["goal"]), mix)
    except KeyError as exc:
        raise ModelError(f"{exc.args[0]}: missing from the stored model") from None
    except (TypeError, ValueError) as exc:
        raise ModelError(f"stored model: {exc}") from None


def blend_overall(stats: ArmStats, arm_ids: Sequence[str], stored: StoredModel, weight: float) -> ArmStats:
    """The experiment-wide arms with the model's rates (over the training mix) folded into their priors."""
    return with_model_prior(stats, *stored.overall(arm_ids), weight=weight)


def blend_segments(stats: ArmStats, segments: Sequence[str], arm_ids: Sequence[str], stored: StoredModel,
                   weight: float) -> ArmStats:
    """Per-segment arms ``(S, K)``, each with the model's prediction for its segment's context
    (``device=mobile`` reads as ``{"device": "mobile"}``, as the training join read it)."""
    predictions = [stored.predict(segment_fields(s), arm_ids) for s in segments]
    rate = np.array([r for r, _ in predictions]).reshape(stats.trials.shape)
    sd = np.array([s for _, s in predictions]).reshape(stats.trials.shape)
    return with_model_prior(stats, rate, sd, weight=weight)
