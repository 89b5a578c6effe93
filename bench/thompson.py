"""Thompson sampling's allocation, quadrature against Monte Carlo: ``python -m bench.thompson``.

Times ``allocate_with_holdout`` for one experiment of three arms, and the
batched allocation of 1,000 experiments of three arms (arrays ``(1000, 3)``,
as a snapshot refresh hands them over), with the exact probabilities
(``croupier.router.policies.best_arm``) and with the Monte Carlo estimate from 4,000
posterior draws the router used before, side by side in one process. Each
figure is the best of several repeats, so other load on the machine inflates
both sides less. Also prints how far the Monte Carlo split strays from the
exact one.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from croupier.router.allocation import allocate_with_holdout
from croupier.router.policies import ArmStats, ThompsonSampling


@dataclass(frozen=True)
class MonteCarloThompson(ThompsonSampling):
    """The former probabilities: the share of ``draws`` joint posterior draws each arm wins."""

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        return self.monte_carlo_probabilities(arms, rng)


def best_of(fn, repeats: int = 5, number: int = 1) -> float:
    """Seconds per call: the fastest of ``repeats`` rounds of ``number`` calls (other load on
    a shared machine inflates the fastest least)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - started) / number)
    return best


def experiments(n: int, rng: np.random.Generator) -> ArmStats:
    """``n`` running experiments of three arms: 100 to 100,000 visitors per arm, rates 1% to 10%."""
    trials = np.floor(10 ** rng.uniform(2, 5, (n, 3)))
    rates = rng.uniform(0.01, 0.1, (n, 1)) * rng.uniform(0.9, 1.1, (n, 3))
    return ArmStats.from_counts(trials, rng.binomial(trials.astype(np.int64), rates))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    old, new = MonteCarloThompson(draws=4000), ThompsonSampling()
    controls = {"min_share": 0.01, "holdout": 0.1}

    one = ArmStats.from_counts([1000.0, 1200.0, 900.0], [50.0, 70.0, 40.0])
    single = [best_of(lambda p=p: allocate_with_holdout(p, one, rng, **controls), args.repeats, 50)
              for p in (old, new)]
    many = experiments(args.experiments, rng)
    batched = [best_of(lambda p=p: allocate_with_holdout(p, many, rng, **controls), max(2, args.repeats // 2), 1)
               / args.experiments for p in (old, new)]

    exact = new.probabilities(many, rng)
    stray = np.abs(old.probabilities(many, rng) - exact)
    print(f"{'allocate_with_holdout, thompson, 3 arms':44s} {'monte carlo (4000)':>19s} {'quadrature':>11s} "
          f"{'old/new':>8s}")
    print(f"{'one experiment, ms':44s} {single[0] * 1e3:19.3f} {single[1] * 1e3:11.3f} "
          f"{single[0] / single[1]:7.1f}x")
    print(f"{f'batched, {args.experiments:,} experiments, ms per experiment':44s} {batched[0] * 1e3:19.4f} "
          f"{batched[1] * 1e3:11.4f} {batched[0] / batched[1]:7.1f}x")
    print(f"{f'a refresh of {args.experiments:,} experiments, ms':44s} {batched[0] * args.experiments * 1e3:19.1f} "
          f"{batched[1] * args.experiments * 1e3:11.1f}")
    print(f"monte carlo split vs exact: mean |error| {stray.mean():.4f}, max {stray.max():.4f} "
          f"(quadrature: below 1e-8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
