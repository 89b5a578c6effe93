"""Context-aware policies on simulated visitors whose conversion rates depend on their context.

    python -m bench.context [--runs 20] [--horizon 40000] [--batch 500]

Visitors differ in device, traffic source, returning or not, country and time
of day. Mobile visitors convert best on variant b, desktop visitors on c,
tablet visitors on a (3-8%); the source scales every arm alike, the other
fields are noise. Three policies see the same visitors (common random numbers,
``runs`` seeded runs at once, state refreshed every ``batch`` visitors as the
router's snapshot is):

- context-free Thompson sampling (the router's default: ``allocate_with_holdout``),
- the segmented bandit on ``segment_keys = ["device"]`` (``croupier.router.segments.shrunk_stats``
  with the moment-fitted strength, then ``allocate_with_holdout``, as
  ``croupier.router.snapshot.compute_segment_arms`` does),
- linear Thompson sampling (``LinearThompson.posterior_pool`` per refresh, each
  visitor drawing one pool member, on ``croupier.router.context.feature_indices``).

Regret is against the context-aware oracle (the best arm for each visitor's
context), in expected conversions. Ends with ``goal <name>: <figure> met|not met``.
The experiment controls (minimum share, burn-in, holdout) are off for all three.
It also prints what reading a context costs per decision (``ContextReader.read``).
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from croupier.router.allocation import allocate_with_holdout
from croupier.router.context import Context, ContextReader, feature_indices
from croupier.router.policies import ArmStats, ThompsonSampling, sample_arms
from croupier.router.policies.contextual import LinearThompson
from croupier.router.segments import moment_strength, shrunk_stats


def pool_choice(pool: np.ndarray, features: np.ndarray, mask: np.ndarray, member: np.ndarray) -> np.ndarray:
    """A contextual policy's choice for many simulated visitors at once (the router draws one
    visitor at a time): ``pool`` (..., P, K, d); ``features`` (..., N, F) indices
    with ``mask`` (..., N, F) 1 where an index is used (visitors may have fewer than F distinct
    features); ``member`` (..., N) the pool member each visitor draws. Returns arms (..., N)."""
    chosen = np.take_along_axis(pool, member[..., :, None, None], axis=-3)  # (..., N, K, d)
    k = pool.shape[-2]
    index = np.broadcast_to(features[..., :, None, :], (*features.shape[:-1], k, features.shape[-1]))
    picked = np.take_along_axis(chosen, index, axis=-1) * mask[..., :, None, :]
    return np.argmax(picked.sum(axis=-1), axis=-1)


ARMS = ("a", "b", "c")
DEVICES = {"mobile": 0.55, "desktop": 0.38, "tablet": 0.07}
RATES = {"mobile": (0.030, 0.060, 0.035), "desktop": (0.040, 0.035, 0.070), "tablet": (0.050, 0.040, 0.045)}
SOURCES = {"search": (0.40, 1.0), "social": (0.25, 0.8), "direct": (0.25, 1.1), "email": (0.10, 1.3)}
RETURNING = {"no": 0.7, "yes": 0.3}
COUNTRIES = ("us", "gb", "de", "fr", "br")
HOURS = (3, 9, 14, 20)  # one hour in each of four dayparts
WEEKDAYS = ("wed", "sat")
DIMENSIONS = 64


class Profiles:
    """Every combination of context fields: its probability, segment, features and true rates."""

    def __init__(self, dimensions: int = DIMENSIONS) -> None:
        rows = list(itertools.product(DEVICES, SOURCES, RETURNING, COUNTRIES, HOURS, WEEKDAYS))
        self.weights = np.array([DEVICES[d] * SOURCES[s][0] * RETURNING[r] / len(COUNTRIES) / len(HOURS)
                                 / len(WEEKDAYS) for d, s, r, *_ in rows])
        self.weights /= self.weights.sum()
        self.rates = np.array([np.array(RATES[d]) * SOURCES[s][1] for d, s, *_ in rows])  # (P, K)
        self.segment = np.array([list(DEVICES).index(d) for d, *_ in rows])
        features = [feature_indices(Context(device=d, source=s, returning=r, country=c, hour=str(h), weekday=w),
                                    dimensions) for d, s, r, c, h, w in rows]
        width = max(map(len, features))
        self.features = np.zeros((len(rows), width), dtype=np.int64)
        self.mask = np.zeros((len(rows), width))
        for p, f in enumerate(features):
            self.features[p, :len(f)] = f
            self.mask[p, :len(f)] = 1.0


def simulate(runs: int, horizon: int, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per policy: conversions and regret of each run, shape ``(runs,)``."""
    profiles = Profiles()
    k, segments = len(ARMS), len(DEVICES)
    rng = np.random.default_rng(seed)
    thompson = ThompsonSampling(draws=2000)
    linear = LinearThompson(dimensions=DIMENSIONS)
    free = np.zeros((2, runs, k))  # trials, successes
    seg = np.zeros((2, runs, segments, k))
    gram, rewards = np.zeros((runs, k, DIMENSIONS, DIMENSIONS)), np.zeros((runs, k, DIMENSIONS))
    names = ("context-free", "segmented", "contextual")
    conversions = {n: np.zeros(runs) for n in names}
    regret = {n: np.zeros(runs) for n in names}
    prior = np.ones(k)
    run_index = np.arange(runs)[:, None]
    for _ in range(horizon // batch):
        who = rng.choice(len(profiles.weights), size=(runs, batch), p=profiles.weights)
        u = rng.random((runs, batch))  # one conversion draw per visitor, shared by the policies
        rates = profiles.rates[who]  # (R, B, K)
        best = rates.max(axis=-1)

        probs, _ = allocate_with_holdout(thompson, ArmStats.from_counts(free[0], free[1]), rng)
        chosen = {"context-free": sample_arms(np.broadcast_to(probs[:, None, :], rates.shape), rng)}

        strength = np.array([moment_strength(seg[0, r], seg[1, r]) for r in range(runs)])
        stats = shrunk_stats(seg[0], seg[1], seg[0].sum(axis=1), seg[1].sum(axis=1), prior, prior, strength)
        seg_probs, _ = allocate_with_holdout(thompson, stats, rng)  # (R, S, K)
        segment = profiles.segment[who]
        chosen["segmented"] = sample_arms(seg_probs[run_index, segment], rng)

        pool = linear.posterior_pool(gram, rewards, rng)  # (R, P, K, d)
        member = rng.integers(linear.pool, size=(runs, batch))
        chosen["contextual"] = pool_choice(pool, profiles.features[who], profiles.mask[who], member)

        for name, arms in chosen.items():
            rate = np.take_along_axis(rates, arms[..., None], axis=-1)[..., 0]
            converted = (u < rate).astype(np.float64)
            conversions[name] += converted.sum(axis=1)
            regret[name] += (best - rate).sum(axis=1)
            if name == "context-free":
                np.add.at(free[0], (run_index, arms), 1.0)
                np.add.at(free[1], (run_index, arms), converted)
            elif name == "segmented":
                np.add.at(seg[0], (run_index, segment, arms), 1.0)
                np.add.at(seg[1], (run_index, segment, arms), converted)
            else:
                update_linear(gram, rewards, arms, profiles.features[who], profiles.mask[who], converted)
    return {"conversions": conversions, "regret": regret}


def update_linear(gram: np.ndarray, rewards: np.ndarray, arms: np.ndarray, features: np.ndarray,
                  mask: np.ndarray, converted: np.ndarray) -> None:
    """``A += x x^T`` for every assignment and ``b += r x`` for every conversion, as the store's
    scripts do, with one bincount over flattened (run, arm, i, j) cells."""
    runs, k, d, _ = gram.shape
    base = (np.arange(runs)[:, None] * k + arms) * d  # (R, B)
    i, j = features[..., :, None], features[..., None, :]
    weight = mask[..., :, None] * mask[..., None, :]
    cells = ((base[..., None, None] + i) * d + j).ravel()
    gram += np.bincount(cells, weights=weight.ravel(), minlength=runs * k * d * d).reshape(gram.shape)
    cells = (base[..., None] + features).ravel()
    rewards += np.bincount(cells, weights=(mask * converted[..., None]).ravel(),
                           minlength=runs * k * d).reshape(rewards.shape)


def context_cost(n: int = 20_000) -> float:
    """Seconds one ``ContextReader.read`` takes on a typical decide subrequest's fields."""
    reader = ContextReader(holds_valid_cookie=lambda header, now: False)
    fields = dict(host="shop.example", uri="/spring/?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
                  user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                             "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                  referer="https://www.google.com/", accept_language="en-GB,en;q=0.9", geo_value="GB;London",
                  cookie_header="_ga=GA1.2.3; session=abc", now=1.7e9)
    started = time.perf_counter()
    for _ in range(n):
        reader.read(**fields)
    read = (time.perf_counter() - started) / n
    ctx = reader.read(**fields)
    started = time.perf_counter()
    for _ in range(n):
        feature_indices(ctx, DIMENSIONS)
    return read, (time.perf_counter() - started) / n


def decide_cost(n: int = 5000) -> dict[str, float]:
    """Seconds ``Decider.decide`` takes for a new visitor (in process, no HTTP): a plain
    experiment, one with ``segment_keys = ["device"]`` and one with the contextual policy."""
    import random

    from croupier.router.assign import Assigner
    from croupier.router.decide import Decider
    from croupier.router.experiments import parse_experiment
    from croupier.router.metrics import Metrics
    from croupier.router.recorder import AssignmentRecorder
    from croupier.router.settings import Settings
    from croupier.router.snapshot import Snapshot, SnapshotKeeper, compute_arms, compute_contextual, compute_segment_arms

    rng = np.random.default_rng(0)
    variants = [{"id": v, "upstream": f"{v}:80"} for v in ARMS]
    experiments = [parse_experiment({"id": name, "path_prefix": f"/{name}/", "variants": variants, **extra})
                   for name, extra in (("plain", {}), ("segmented", {"segment_keys": ["device"]}),
                                       ("contextual", {"policy": "linear_thompson",
                                                       "policy_params": {"dimensions": DIMENSIONS}}))]
    keeper = SnapshotKeeper(store=None, refresh_interval=1, rng=rng)
    counts = {v: {"trials": 1000.0, "conv:signup": 50.0} for v in ARMS}
    keeper.current = Snapshot.build(
        experiments, {e.id: compute_arms(e, {}, rng) for e in experiments}, {}, 1,
        segments={"segmented": compute_segment_arms(experiments[1], {}, {"device=mobile": counts}, rng, 50)},
        contextual={"contextual": compute_contextual(experiments[2], {}, {}, rng)})
    recorder = AssignmentRecorder(store=None, metrics=Metrics(), flush_interval=1, max_pending=n)
    settings = Settings(secret="s" * 32)
    decider = Decider(settings, Assigner(settings, keeper, recorder, Metrics(), random.Random(0)))
    agents = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1",
              "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36")
    headers = {b"referer": b"https://www.google.com/", b"accept-language": b"en-GB,en;q=0.9",
               b"x-croupier-geo": b"GB;London"}
    out = {}
    for e in experiments:
        started = time.perf_counter()
        for i in range(n):
            decider.decide("shop.example", f"/{e.id}/?utm_source=x{i % 7}", agents[i % 2], {}, 1.7e9, headers)
        out[e.id] = (time.perf_counter() - started) / n
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    profiles = Profiles()
    oracle = float((profiles.weights * profiles.rates.max(axis=1)).sum())
    print(f"{args.runs} runs x {args.horizon} visitors, state refreshed every {args.batch}; "
          f"oracle rate {oracle:.4f}, best single arm "
          f"{float((profiles.weights[:, None] * profiles.rates).sum(axis=0).max()):.4f}")
    result = simulate(args.runs, args.horizon, args.batch, args.seed)
    se = lambda x: float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")  # noqa: E731
    print(f"{'policy':<14} {'conversions':>18} {'regret vs oracle':>20}")
    for name in result["regret"]:
        c, r = result["conversions"][name], result["regret"][name]
        print(f"{name:<14} {c.mean():>10.1f} ± {se(c):<6.1f} {r.mean():>12.1f} ± {se(r):<6.1f}")
    free = result["regret"]["context-free"]
    read, features = context_cost()
    decide = decide_cost()
    elapsed = time.perf_counter() - started
    print(f"context extraction: {read * 1e6:.1f} µs per decision (+ {features * 1e6:.1f} µs for the "
          f"contextual policy's features)")
    print("decide for a new visitor, in process: " + ", ".join(f"{k} {v * 1e6:.1f} µs" for k, v in decide.items()))
    goals = []
    for name in ("segmented", "contextual"):
        saved = free - result["regret"][name]  # paired: the same visitors in every run
        figure = f"regret {result['regret'][name].mean():.0f} vs {free.mean():.0f} context-free " \
                 f"(saves {saved.mean():.0f} ± {se(saved):.0f} conversions, {saved.mean() / free.mean():.0%})"
        goals.append((f"{name} beats context-free", figure,
                      saved.mean() > 3 * se(saved) and saved.mean() > 0.2 * free.mean()))
    goals.append(("runtime bounded", f"{elapsed:.0f} s (limit 180 s)", elapsed < 180))
    for name, figure, ok in goals:
        print(f"goal {name}: {figure} {'met' if ok else 'not met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
