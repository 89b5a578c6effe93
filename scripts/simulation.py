"""Bernoulli visitors against a policy through the router's own code, many runs at once.

State has shape ``(runs, K)`` and every step is a handful of numpy calls across
all runs, so 60 runs cost little more than one. The simulator drives the
router's own code: ``policy.select`` per visitor when feedback is immediate and
no experiment control is set (a draw from exactly the probabilities
``allocate`` would return), otherwise ``croupier.router.allocation.allocate`` once per
state refresh, with the visitors of the batch drawn from its probabilities, as
the router does between snapshot refreshes. Policies that need history get
bucketed counts through their own ``history_stats``.

Time is counted in visitors: a history bucket of ``bucket`` visitors plays the
part of the router's ``bucket_seconds`` (``bucket_seconds`` says how many
seconds it stands for when the policy's settings are in real seconds).

``croupier-simulate`` (scripts/what_if.py) and the benchmarks in bench/ both run this.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from croupier.router.allocation import allocate
from croupier.router.policies import ArmStats, Policy, sample_arms

_CHUNK = 4096  # visitors whose random numbers are drawn in one call


@dataclass(frozen=True)
class Scenario:
    """True conversion rates, horizon and how feedback reaches the policy."""

    name: str
    rates: tuple[float, ...]
    horizon: int
    batch: int = 1  # visitors between state refreshes (a refresh also falls on every checkpoint and change)
    delay: float = 0.0  # mean conversion delay in visitors (geometric); 0: at once
    rates_after: tuple[float, ...] | None = None  # drift: the rates from change_at on
    change_at: int | None = None
    bucket: int = 1000  # visitors per history bucket
    bucket_seconds: float | None = None  # the time a bucket stands for; default: its visitors

    def __post_init__(self) -> None:
        if self.rates_after is not None and (self.change_at is None or len(self.rates_after) != len(self.rates)):
            raise ValueError("rates_after: needs change_at and one rate per arm")
        if self.delay > 0 and self.batch > 1:
            # the delay's distribution is worked out per refresh, so refreshes must be regular
            for name in ("horizon", "change_at", "bucket"):
                value = getattr(self, name)
                if value is not None and value % self.batch:
                    raise ValueError(f"{name}: must be a multiple of batch ({self.batch}) with a delay")

    def rates_at(self, t: int) -> np.ndarray:
        """The rates visitor ``t`` (0-based) converts with."""
        after = self.rates_after is not None and t >= self.change_at
        return np.asarray(self.rates_after if after else self.rates, dtype=np.float64)


@dataclass(frozen=True)
class Controls:
    """The experiment-level controls ``allocate`` applies (all off: the policy alone)."""

    min_share: float = 0.0
    burn_in: int = 0
    holdout: float = 0.0

    @property
    def off(self) -> bool:
        return self.min_share == 0 and self.burn_in == 0 and self.holdout == 0


@dataclass
class Trace:
    """Per run: cumulative pseudo-regret ``(R, C)`` and pulls ``(R, C, K)`` at each checkpoint,
    and the conversions that actually happened, in all ``(R,)`` and at each checkpoint ``(R, C)``."""

    checkpoints: np.ndarray
    regret: np.ndarray
    pulls: np.ndarray
    conversions: np.ndarray
    seconds: float
    conversions_at: np.ndarray | None = None


class _History:
    """Bucketed counts for policies with ``needs_history``: closed buckets and the current one.

    ``history_stats`` is linear in the counts, so the statistics of closed
    buckets are recomputed once per bucket (with an empty newest bucket) and the
    current bucket's counts are added per step: the same weights as calling
    ``history_stats`` on the full history every time.
    """

    def __init__(self, policy: Policy, runs: int, k: int, bucket: int, prior: float,
                 bucket_seconds: float | None = None):
        self.bucket_seconds = float(bucket if bucket_seconds is None else bucket_seconds)
        n_buckets = max(2, math.ceil(policy.history_seconds / self.bucket_seconds) + 1)
        self.policy, self.bucket, self.prior = policy, bucket, prior
        self.trials = np.zeros((n_buckets, runs, k))
        self.successes = np.zeros((n_buckets, runs, k))
        self.current_trials = np.zeros((runs, k))
        self.current_successes = np.zeros((runs, k))
        self._close()

    def _close(self) -> None:
        self.closed = self.policy.history_stats(self.trials, self.successes, bucket_seconds=self.bucket_seconds,
                                                prior_alpha=self.prior, prior_beta=self.prior)

    def roll(self) -> None:
        self.trials[:-1] = self.trials[1:]
        self.successes[:-1] = self.successes[1:]
        self.trials[-2], self.successes[-2] = self.current_trials, self.current_successes
        self.trials[-1] = self.successes[-1] = 0.0
        self.current_trials[:] = self.current_successes[:] = 0.0
        self._close()

    def stats(self) -> ArmStats:
        c = self.closed
        return ArmStats(c.trials + self.current_trials, c.successes + self.current_successes,
                        c.prior_alpha, c.prior_beta)


def _delay_pmf(mean_delay: float, batch: int, slots: int) -> np.ndarray:
    """P(a conversion arrives j refreshes later), j = 1..slots, for a geometric delay in visitors.

    The last slot takes the tail, so nothing is lost.
    """
    p = 1.0 / max(mean_delay, 1.0)
    edges = np.arange(slots + 1) * batch
    survive = (1.0 - p) ** edges  # P(delay > edge); delays are 1, 2, ... visitors
    pmf = survive[:-1] - survive[1:]
    pmf[-1] += survive[-1]
    return pmf / pmf.sum()


def simulate(policy: Policy, scenario: Scenario, *, runs: int, seed: int,
             checkpoints: np.ndarray, controls: Controls = Controls(),
             prior: float = 1.0, on_step: Callable[[int], None] | None = None) -> Trace:
    """Run ``runs`` independent experiments of ``scenario.horizon`` visitors under ``policy``.

    ``checkpoints`` (increasing visitor counts ending at the horizon) are where the
    cumulative figures are recorded; ``on_step(visitors so far)`` is called after
    every refresh (a progress bar).
    """
    started = time.perf_counter()
    cps = np.asarray(checkpoints, dtype=np.int64)
    if cps[-1] != scenario.horizon or np.any(np.diff(cps) <= 0) or cps[0] <= 0:
        raise ValueError("checkpoints: must increase and end at the horizon")
    if scenario.change_at and scenario.change_at not in cps:
        raise ValueError("checkpoints: must include the change point")
    if scenario.delay > 0 and scenario.batch > 1 and np.any(cps % scenario.batch):
        raise ValueError("checkpoints: must lie on batch boundaries with a delay")
    rng = np.random.default_rng(seed)  # the policy's randomness
    env = np.random.default_rng([seed, 1])  # the visitors'
    k, b = len(scenario.rates), scenario.batch
    rows = np.arange(runs) * k

    pulls = np.zeros((runs, k))
    history = (_History(policy, runs, k, scenario.bucket, prior, scenario.bucket_seconds)
               if policy.needs_history else None)
    if history is None:
        successes = np.zeros((runs, k))
        # the policy sees the pulls themselves: one array, updated in place
        arms = ArmStats(pulls, successes, np.full((runs, k), prior), np.full((runs, k), prior))
        seen_trials, seen_successes = pulls, successes
    else:
        seen_trials, seen_successes = history.current_trials, history.current_successes
    per_visitor = b == 1

    # conversions on their way: slot (step % slots) holds what arrives at that step
    if scenario.delay > 0:
        # delays beyond 8 means (probability e^-8) arrive at the cap instead
        slots = int(8 * scenario.delay) + 2 if per_visitor else max(2, math.ceil(8 * scenario.delay / b) + 2)
        pending = np.zeros((slots, runs * k))
        pmf = None if per_visitor else _delay_pmf(scenario.delay, b, slots - 1)
    else:
        slots, pending, pmf = 0, None, None

    regret = np.zeros((runs, len(cps)))
    pulls_at = np.zeros((runs, len(cps), k))
    conversions_at = np.zeros((runs, len(cps)))
    last_pulls, total_regret, converted_total, c = np.zeros((runs, k)), np.zeros(runs), np.zeros(runs), 0
    pulls_flat = pulls.reshape(-1)
    seen_trials_flat, seen_successes_flat = seen_trials.reshape(-1), seen_successes.reshape(-1)
    t, step = 0, 0
    next_roll = scenario.bucket
    uniforms = delays = None
    rates = scenario.rates_at(0)
    flat_rates = np.tile(rates, runs)
    while t < scenario.horizon:
        if scenario.change_at is not None and t == scenario.change_at:
            rates = scenario.rates_at(t)
            flat_rates = np.tile(rates, runs)
        if history is not None:
            if t >= next_roll:
                history.roll()
                next_roll += scenario.bucket
            arms = history.stats()
        if pending is not None:  # deliver what arrives now
            slot = step % slots
            seen_successes_flat += pending[slot]
            pending[slot] = 0.0
        if per_visitor:
            n = 1
            i = t % _CHUNK
            if i == 0:
                uniforms = env.random((_CHUNK, runs))
                if scenario.delay > 0:
                    delays = np.minimum(env.geometric(1.0 / max(scenario.delay, 1.0), (_CHUNK, runs)), slots - 1)
            if controls.off:
                arm = policy.select(arms, rng)
            else:
                arm = sample_arms(allocate(policy, arms, rng, min_share=controls.min_share,
                                           burn_in=controls.burn_in, holdout=controls.holdout), rng)
            flat = rows + arm
            pulls_flat[flat] += 1.0
            if history is not None:
                seen_trials_flat[flat] += 1.0
            converted = uniforms[i] < flat_rates[flat]
            converted_total += converted
            if pending is None:
                seen_successes_flat[flat] += converted
            else:
                pending[(step + delays[i]) % slots, flat] += converted
        else:
            # a refresh also falls where the figures are recorded, the rates change or a bucket closes
            stops = [b, int(cps[c]) - t, (next_roll - t) if history is not None else b]
            if scenario.change_at is not None and scenario.change_at > t:
                stops.append(scenario.change_at - t)
            n = min(stops)
            probs = allocate(policy, arms, rng, min_share=controls.min_share,
                             burn_in=controls.burn_in, holdout=controls.holdout)
            counts = env.multinomial(n, probs).astype(np.float64)
            conversions = env.binomial(counts.astype(np.int64), rates).astype(np.float64)
            pulls += counts
            converted_total += conversions.sum(axis=-1)
            if history is not None:
                seen_trials += counts
            if pending is None:
                seen_successes += conversions
            else:
                arriving = env.multinomial(conversions.astype(np.int64), pmf)  # (R, K, slots - 1)
                targets = (step + np.arange(1, slots)) % slots
                pending[targets] += np.moveaxis(arriving, -1, 0).reshape(slots - 1, -1)
        t += n
        step += 1
        if t == cps[c]:
            gaps = rates.max() - rates
            total_regret += (pulls - last_pulls) @ gaps
            last_pulls = pulls.copy()
            regret[:, c], pulls_at[:, c], conversions_at[:, c] = total_regret, pulls, converted_total
            c += 1
        if on_step is not None:
            on_step(t)
    return Trace(cps, regret, pulls_at, converted_total, time.perf_counter() - started, conversions_at)
