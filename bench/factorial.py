"""A factorial experiment, three ways: ``python -m bench.factorial`` (``make bench-factorial``).

    python -m bench.factorial [--runs 20] [--visitors 200000] [--workers 2]

Four factors of four levels (headline, call to action, image, offer): 256
combinations, one of which a constraint forbids, so 255 arms. True conversion
rates are additive on the logit scale plus one pairwise interaction, between
2% and 6%. Every ``REFRESH`` visitors the policy's split is recomputed, and the
visitors in between are drawn from it, as the router's snapshot does;
conversions are Bernoulli and immediate. Three policies, the same seeds:

- independent arms: Beta-Bernoulli Thompson sampling over the 255 combinations,
  the router's default policy. Each visitor's combination is the argmax of one
  posterior draw, whose distribution is exactly ``best_arm.thompson_probabilities``
  (what ``ThompsonSampling.select`` and ``bench.simulate`` do); the quadrature
  itself costs tens of ms per refresh at 255 arms (printed below), too much for
  40,000 refreshes. No minimum share: the experiment default of 1% per arm is
  impossible for 255 arms (``allocation.apply_floor`` caps it at 1/K, i.e. uniform).
- factorial: ``FactorialThompson.allocate`` with the experiment default
  ``min_share`` of 1% applied per level (``level_floor``).
- even split: uniform over the 255 combinations (a full-factorial A/B test).

Regret is the pseudo-regret against always showing the best combination. The
"most served" combination at 50,000 visitors is the one served most between
visitors 40,000 and 50,000 (what the policy believed then, not what it
explored earlier). The decision cost is the router's own draw from the
precomputed split (``snapshot.Arms.pick`` on a cumulative array) for 255 arms
against 3; the refresh cost (the policy's recomputation, off the decision
path) is printed separately. Ends with ``goal <name>: <figure> (<target>) met|not met``.
"""

from __future__ import annotations

import os

# the policies' matrices are small: a multithreaded BLAS on a busy two-core machine spends
# more time waiting for its threads than computing (measured 20 ms instead of 0.2 ms per fit)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

from bench.goals import print_goals  # noqa: E402
from bench.thompson import best_of  # noqa: E402
from croupier.router.allocation import allocate_with_holdout  # noqa: E402
from croupier.router.experiments import Variant  # noqa: E402
from croupier.router.policies import ArmStats, FactorialThompson, ThompsonSampling  # noqa: E402
from croupier.router.policies.best_arm import thompson_probabilities  # noqa: E402
from croupier.router.policies.factorial import Design, logistic  # noqa: E402
from croupier.router.snapshot import Arms  # noqa: E402

FACTORS = {
    "headline": ("plain", "savings", "urgency", "social-proof"),
    "cta": ("buy-now", "try-free", "see-plans", "start-today"),
    "image": ("product", "people", "illustration", "none"),
    "offer": ("none", "10-percent", "free-shipping", "bundle"),
}
N_LEVELS = (4, 4, 4, 4)
BASE_RATE = 0.03  # the all-control combination
MAIN = ((0.0, 0.10, 0.20, -0.10), (0.0, 0.08, -0.05, 0.15), (0.0, -0.10, 0.04, 0.08), (0.0, 0.12, 0.06, -0.15))
INTERACTION = ((0, 2), (3, 2), 0.16)  # urgency headline with free shipping: better together than apart
EXCLUDED = (3, 2, 1, 3)  # social proof, "see plans", people and a bundle: a constraint forbids it
REFRESH = 100
MIN_SHARE = 0.01  # the experiment default; per level for the factorial policy
AT = 50_000  # "by 50,000 visitors"
WINDOW = 10_000  # the most-served combination is counted over the WINDOW visitors before AT
NEAR = 0.05  # "within 5% of the best rate"
LAST = 0.2  # the share of traffic on the best is measured over the last 20% of visitors
POLICIES = ("independent arms", "factorial", "even split")


def design() -> tuple[np.ndarray, np.ndarray]:
    """The allowed combinations (K, 4) and their true conversion rates (K,)."""
    levels = np.array([c for c in itertools.product(*(range(n) for n in N_LEVELS)) if c != EXCLUDED])
    logit = np.log(BASE_RATE / (1 - BASE_RATE)) + sum(np.asarray(MAIN[f])[levels[:, f]] for f in range(4))
    (f, a), (g, b), effect = INTERACTION
    logit = logit + effect * ((levels[:, f] == a) & (levels[:, g] == b))
    return levels, logistic(logit)


@dataclass
class Marks:
    """Where the run's pulls are recorded: the start and end of the window before AT, the last 20%."""

    window_start: int
    at: int
    last_from: int

    @classmethod
    def for_horizon(cls, visitors: int) -> Marks:
        def on_refresh(t: float) -> int:
            return int(round(t / REFRESH)) * REFRESH

        at = min(AT, on_refresh(visitors / 4))
        return cls(max(0, at - on_refresh(at * WINDOW / AT)), at, on_refresh(visitors * (1 - LAST)))


@dataclass
class Result:
    policy: str
    regret: np.ndarray  # (R,)
    conversions: np.ndarray  # (R,)
    window: np.ndarray  # pulls between window_start and at (R, K)
    last: np.ndarray  # pulls over the last 20% (R, K)
    seconds: float
    refreshes: int = 0
    refresh_seconds: float = 0.0  # the policy's own recomputation, summed


def run(policy: str, runs: int, visitors: int, seed: int, params: dict | None = None) -> Result:
    """``runs`` seeded experiments of ``visitors`` under one policy, vectorised across runs;
    ``params``: the factorial policy's hyperparameters (default: its defaults)."""
    started = time.perf_counter()
    levels, rates = design()
    k = len(rates)
    gaps = rates.max() - rates
    marks = Marks.for_horizon(visitors)
    env = np.random.default_rng(seed)  # the visitors' conversions and draws from a split
    rng = np.random.default_rng([seed, 1])  # the policy's randomness
    trials, successes = np.zeros((runs, k)), np.zeros((runs, k))
    regret, conversions = np.zeros(runs), np.zeros(runs)
    snapshots: dict[int, np.ndarray] = {}
    factorial = FactorialThompson(**(params or {}))
    states = [None] * runs
    refresh_seconds, refreshes = 0.0, 0
    cells = np.arange(runs)[:, None] * k
    for t in range(0, visitors, REFRESH):
        if t in (marks.window_start, marks.at, marks.last_from):
            snapshots[t] = trials.copy()
        if policy == "independent arms":
            draws = rng.beta(1.0 + successes[:, None, :], 1.0 + trials[:, None, :] - successes[:, None, :],
                             size=(runs, REFRESH, k))
            arms = np.argmax(draws, axis=-1)  # (R, REFRESH)
            counts = np.bincount((arms + cells).ravel(), minlength=runs * k).reshape(runs, k).astype(float)
        elif policy == "factorial":
            probs = np.empty((runs, k))
            tick = time.perf_counter()
            for r in range(runs):
                states[r] = factorial.allocate(levels, N_LEVELS, trials[r], successes[r], rng,
                                               min_share=MIN_SHARE, previous=states[r])
                probs[r] = states[r].probs
            refresh_seconds += time.perf_counter() - tick
            refreshes += runs
            counts = env.multinomial(REFRESH, probs).astype(float)
        else:
            counts = env.multinomial(REFRESH, np.full((runs, k), 1.0 / k)).astype(float)
        converted = env.binomial(counts.astype(np.int64), rates).astype(float)
        trials += counts
        successes += converted
        conversions += converted.sum(axis=1)
        regret += counts @ gaps
    snapshots[visitors] = trials.copy()
    return Result(policy, regret, conversions, snapshots[marks.at] - snapshots[marks.window_start],
                  snapshots[visitors] - snapshots[marks.last_from], time.perf_counter() - started,
                  refreshes, refresh_seconds)


def decision_costs(sizes: tuple[int, ...], rounds: int = 100, n: int = 10_000) -> list[float]:
    """Seconds per draw from a precomputed split of each size of arms, as the router's assignment
    does it (``Arms.pick(rand.random())``: a bisection on the cumulative probabilities). The
    sizes take turns, round after round, and each keeps its fastest round: load from other
    processes then inflates neither more than the other."""
    picks = []
    for k in sizes:
        variants = tuple(Variant(id=f"v{i}", upstream=f"v{i}:80") for i in range(k))
        arms = Arms.build(variants, np.random.default_rng(k).dirichlet(np.ones(k)))
        picks.append(arms.pick)
    rand = random.Random(0)
    best = [float("inf")] * len(sizes)
    for _ in range(rounds):
        for i, pick in enumerate(picks):
            started = time.perf_counter()
            for _ in range(n):
                pick(rand.random())
            best[i] = min(best[i], (time.perf_counter() - started) / n)
    return best


def refresh_costs(seed: int) -> dict[str, float]:
    """Seconds per recomputation of one experiment's split, each measured alone: the factorial policy
    (a warm refit after 100 more visitors on 100,000, and a cold one), the 255-arm and the
    3-arm Thompson quadrature."""
    levels, rates = design()
    rng = np.random.default_rng(seed)
    policy = FactorialThompson()
    trials = rng.multinomial(100_000, np.full(len(rates), 1.0 / len(rates))).astype(float)
    successes = rng.binomial(trials.astype(np.int64), rates).astype(float)
    previous = policy.allocate(levels, N_LEVELS, trials, successes, rng, min_share=MIN_SHARE)
    more = trials + rng.multinomial(REFRESH, previous.probs)
    more_successes = successes + rng.binomial((more - trials).astype(np.int64), rates)
    out = {
        "factorial, warm": best_of(lambda: policy.allocate(levels, N_LEVELS, more, more_successes, rng,
                                                           min_share=MIN_SHARE, previous=previous)),
        "factorial, cold": best_of(lambda: policy.allocate(levels, N_LEVELS, more, more_successes, rng,
                                                           min_share=MIN_SHARE)),
        "factorial fit alone, warm": best_of(lambda: policy.posterior(levels, N_LEVELS, more, more_successes,
                                                                      previous=previous)),
        "Thompson quadrature, 255 arms": best_of(lambda: thompson_probabilities(1.0 + successes,
                                                                                1.0 + trials - successes)),
    }
    three = ArmStats.from_counts([3000.0, 3100.0, 2900.0], [120.0, 140.0, 110.0])
    out["Thompson, 3 arms"] = best_of(lambda: allocate_with_holdout(ThompsonSampling(), three, rng), number=20)
    return out


def scale_costs(seed: int) -> dict[str, float]:
    """Seconds per refit and per refresh (refit, pool, floor) of the default policy on 256 and on
    16,384 combinations (4 and 7 factors of 4 levels), each with 100 visitors per combination
    and then 100 more visitors, warm-started from the first fit."""
    out = {}
    policy = FactorialThompson()
    rng = np.random.default_rng(seed)
    for factors in (4, 7):
        n_levels = (4,) * factors
        levels = np.array(list(itertools.product(*(range(n) for n in n_levels))))
        c = len(levels)
        rates = logistic(np.log(BASE_RATE / (1 - BASE_RATE)) + rng.normal(0, 0.1, (factors, 4))[
            np.arange(factors), levels].sum(axis=1))
        trials = np.full(c, 100.0)
        successes = rng.binomial(100, rates).astype(float)
        first = policy.allocate(levels, n_levels, trials, successes, rng, min_share=MIN_SHARE)
        more = trials + rng.multinomial(REFRESH, first.probs)
        more_successes = successes + rng.binomial((more - trials).astype(np.int64), rates)
        repeats = 5 if c < 1000 else 2
        out[f"{c:,} refit, cold"] = best_of(lambda: policy.posterior(levels, n_levels, more, more_successes),
                                            repeats)
        out[f"{c:,} refit, warm"] = best_of(lambda: policy.posterior(levels, n_levels, more, more_successes,
                                                                     previous=first), repeats)
        out[f"{c:,} refresh, warm"] = best_of(lambda: policy.allocate(
            levels, n_levels, more, more_successes, rng, min_share=MIN_SHARE, previous=first), repeats)
    return out


def _mean_sd(x: np.ndarray, digits: int = 0) -> str:
    return f"{x.mean():.{digits}f} ± {x.std(ddof=1) if len(x) > 1 else 0.0:.{digits}f}"


def summarise(result: Result, rates: np.ndarray) -> dict[str, float]:
    best = int(np.argmax(rates))
    served = np.argmax(result.window, axis=1)
    return {
        "last_share": float((result.last[:, best] / result.last.sum(axis=1)).mean()),
        "served_best": float(np.mean(served == best)),
        "served_near": float(np.mean(rates[served] >= (1 - NEAR) * rates[best])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--visitors", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior-scale", type=float, help="the factorial policy's prior_scale (default: its own)")
    parser.add_argument("--temperature", type=float, help="the factorial policy's temperature (default: its own)")
    args = parser.parse_args(argv)
    params = {name: value for name, value in (("prior_scale", args.prior_scale), ("temperature", args.temperature))
              if value is not None}
    if args.visitors % REFRESH or args.visitors < 10 * REFRESH or args.runs < 1:
        parser.error(f"--visitors: a multiple of {REFRESH}, at least {10 * REFRESH}; --runs: at least 1")
    started = time.perf_counter()
    levels, rates = design()
    marks = Marks.for_horizon(args.visitors)
    best = int(np.argmax(rates))
    names = [FACTORS[f][a] for f, a in zip(FACTORS, levels[best])]
    print(f"{len(rates)} combinations of {' x '.join(f'{f} ({len(v)})' for f, v in FACTORS.items())}, rates "
          f"{rates.min():.2%} to {rates.max():.2%}; best {' / '.join(names)} at {rates.max():.2%}; "
          f"{len(Design.build(levels, N_LEVELS).columns)} model coefficients")
    print(f"{args.runs} runs x {args.visitors:,} visitors, split recomputed every {REFRESH}; "
          f"factorial {FactorialThompson(**params).params()}, min_share {MIN_SHARE:g} per level; independent arms "
          f"no minimum share; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    todo = [(p, args.runs, args.visitors, args.seed, params) for p in POLICIES]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = {r.policy: r for r in pool.map(run, *zip(*todo))}
    else:
        results = {r.policy: r for r in itertools.starmap(run, todo)}
    near = f"within {NEAR:.0%}"
    print(f"\n{'policy':<17} {'regret':>16} {'conversions':>18} {'best, last 20%':>15} "
          f"{f'most served {marks.window_start:,}-{marks.at:,}: best':>30} {near:>11} {'secs':>6}")
    summaries = {}
    for name in POLICIES:
        r = results[name]
        s = summaries[name] = summarise(r, rates)
        print(f"{name:<17} {_mean_sd(r.regret):>16} {_mean_sd(r.conversions):>18} {s['last_share']:>15.1%} "
              f"{s['served_best']:>30.0%} {s['served_near']:>11.0%} {r.seconds:>6.0f}")
    fact = results["factorial"]
    print(f"\nfactorial refresh in the simulation: {fact.refresh_seconds / max(fact.refreshes, 1) * 1e3:.2f} ms "
          f"per experiment over {fact.refreshes:,} refreshes, beside the other simulations")
    costs = refresh_costs(args.seed)
    print("refresh cost per experiment, measured alone: "
          + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in costs.items()))
    print("factorial policy at scale: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in scale_costs(args.seed).items()))
    many, few = decision_costs((len(rates), 3))
    print(f"decision (draw from the precomputed split): {len(rates)} arms {many * 1e9:.0f} ns, 3 arms {few * 1e9:.0f} ns;"
          f" with the refresh spread over {REFRESH} visitors: factorial "
          f"{(many + costs['factorial, warm'] / REFRESH) * 1e6:.1f} µs, 3-arm Thompson "
          f"{(few + costs['Thompson, 3 arms'] / REFRESH) * 1e6:.1f} µs")
    independent = results["independent arms"]
    ratio = fact.regret.mean() / independent.regret.mean()
    found = summaries["factorial"]["served_near"]
    goals = [
        ("factorial-regret", f"{fact.regret.mean():.0f} = {ratio:.2f} x independent arms' "
         f"{independent.regret.mean():.0f}", "<= 0.35", ratio <= 0.35),
        ("factorial-best-by-50k", f"most served {marks.window_start:,}-{marks.at:,} is the best or "
         f"{near} of it in {found:.0%} of runs", ">= 90%", found >= 0.9),
        ("decision-cost", f"{many * 1e9:.0f} ns for {len(rates)} arms = {many / few:.2f} x 3 arms' {few * 1e9:.0f} ns",
         "<= 2", many <= 2 * few),
    ]
    print(f"\n{time.perf_counter() - started:.0f} s with {args.workers} worker(s)")
    print_goals(goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
