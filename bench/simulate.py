"""The benchmarks' simulations: the packaged simulator (``croupier.scripts.simulation``, the
router's own policy and allocation code, many runs at once) on a log-spaced grid of checkpoints."""

from __future__ import annotations

import numpy as np

from croupier.router.policies import Policy
from croupier.scripts.simulation import Controls, Scenario, Trace
from croupier.scripts.simulation import simulate as simulate_on

__all__ = ["Controls", "Scenario", "Trace", "checkpoint_grid", "simulate"]


def checkpoint_grid(scenario: Scenario, points: int = 40, must: tuple[int, ...] = ()) -> np.ndarray:
    """Log-spaced visitor counts up to the horizon, on batch boundaries, with ``must`` and the change point."""
    b = scenario.batch
    grid = np.geomspace(max(b, 100), scenario.horizon, points)
    extra = [scenario.horizon, *must] + ([scenario.change_at] if scenario.change_at else [])
    cps = np.concatenate([np.round(grid / b) * b, extra]).astype(np.int64)
    return np.unique(cps[(cps > 0) & (cps <= scenario.horizon)])


def simulate(policy: Policy, scenario: Scenario, *, runs: int, seed: int,
             checkpoints: np.ndarray | None = None, controls: Controls = Controls(), prior: float = 1.0) -> Trace:
    """``croupier.scripts.simulation.simulate`` with the benchmark's grid unless ``checkpoints`` are given."""
    cps = checkpoint_grid(scenario) if checkpoints is None else checkpoints
    return simulate_on(policy, scenario, runs=runs, seed=seed, checkpoints=cps, controls=controls, prior=prior)
