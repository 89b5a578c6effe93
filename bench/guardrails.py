"""Guardrails and drift on simulated visitors: ``python -m bench.guardrails`` (``make bench-guardrails``).

    python -m bench.guardrails [--runs 200] [--workers 2] [--seed 0] [--quick]

Every scenario runs seeded, vectorised across runs, through the router's own
code: Thompson sampling (``make_policy("thompson")``) and
``allocation.allocate_with_holdout`` with the default ``min_share`` of 1%
recompute the split every ``REFRESH`` visitors and the visitors in between are
drawn from it, as the router's snapshot does; ``guardrails.evaluate`` and
``guardrails.cap`` act on that split at every refresh; ``drift.watch`` reruns
``drift.rate_drift`` at the close of every history bucket of ``BUCKET``
visitors over the last ``WINDOW`` buckets, as a router rerunning it each minute
would.

- cap: the variant converts better (6% against 4%) but bounces far more (70%
  against 40%); the guardrail ``bounce_rate`` may rise 0.05 at most. How many
  visitors until it is breached and the variant held at the floor.
- A/A: identical arms, a bounce-rate and an active-time guardrail with no
  tolerance at all (threshold 0), checked at every refresh over a long run:
  the share of runs where either ever fires.
- drift delay: the best arm's rate drops 30% (5% to 3.5%); buckets from the
  change until the detector says so, in visitors.
- false drift alarms: three stationary arms, half as many runs of a million
  visitors each (the split recomputed once per bucket here: the detector sees
  only per-bucket counts, and the quadrature at every 100 visitors would
  dominate the benchmark's time).
- mix shift: mobile visitors go from 30% to 70% of traffic, every device's rate
  unchanged (mobile converts worse). Each run's counts per bucket, device and arm
  are handed, as the store's readers parse them, to the router's own monitor
  checks at the close of every bucket: ``monitor_checks.DriftCheck`` (the rate
  test stratified by device, as the live router runs it) must stay quiet and
  ``monitor_checks.MixDriftCheck`` (PSI) must flag the mix, and never before the
  shift. The unadjusted detector (``drift.watch`` on the arms' totals) is shown
  beside it.

Ends with ``goal <name>: <figure> (<target>) met|not met``; exits 0 either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from bench.goals import print_goals
from croupier.router.allocation import allocate_with_holdout
from croupier.router.drift import PSI_SIGNIFICANT, mix_drift, watch
from croupier.router.engagement import ACTIVE_CAP_SECONDS, ENGAGED_SECONDS
from croupier.router.experiments import parse_experiment
from croupier.router.monitor import Observation
from croupier.router.monitor_checks import DriftCheck, MixDriftCheck
from croupier.router.guardrails import cap, evaluate, parse_guardrails, required_burn_in
from croupier.router.policies import ArmStats, make_policy
from croupier.router.statistics import regularized_gamma_q

REFRESH = 100  # visitors per split recomputation
BUCKET = 1000  # visitors per history bucket: a minute at about 17 visitors a second
WINDOW = 120  # buckets the rate-drift detector looks back
MIN_SHARE = 0.01  # the experiment default, and the floor a breached arm is capped at

CAP_CONVERSION = (0.04, 0.06)
CAP_BOUNCE = (0.40, 0.70)
CAP_GUARDRAIL = {"metric": "bounce_rate", "direction": "increase", "threshold": 0.05}
CAP_WITHIN = 1000  # visitors: the cap goal
AA_GUARDRAILS = [{"metric": "bounce_rate", "threshold": 0}, {"metric": "active_time", "threshold": 0}]
AA_CONVERSION = 0.04
AA_BOUNCE = 0.40  # a view is a bounce when its active time is below ENGAGED_SECONDS
AA_ACTIVE_SIGMA = 1.2  # log-normal active seconds
DRIFT_RATES = (0.05, 0.04, 0.035)
DRIFT_DROP = 0.30
DRIFT_WITHIN = 20_000  # visitors after the change: the median delay goal
FALSE_ALARMS_PER_MILLION = 1.0
DEVICES = ("mobile", "desktop", "tablet")
MIX_BEFORE = (0.3, 0.6, 0.1)
MIX_AFTER = (0.7, 0.6 * 3 / 7, 0.1 * 3 / 7)  # mobile to 70%, the others keep their ratio
DEVICE_RATES = ((0.02, 0.023), (0.05, 0.0575), (0.04, 0.046))  # (device, arm): the variant 15% better everywhere
MIX_WINDOW = 20  # buckets in the reference and in the recent window of the PSI
MIX_EXPERIMENT = {"id": "mix", "path_prefix": "/mix/", "variants": [{"id": "a", "upstream": "127.0.0.1:9101"},
                                                                    {"id": "b", "upstream": "127.0.0.1:9102"}]}
BUCKET_SECONDS = 60  # the bucket starts the checks see
SHARE_OF_RUNS = 0.95


@dataclass(frozen=True)
class Sizes:
    runs: int = 200
    cap_visitors: int = 10_000
    aa_visitors: int = 100_000
    drift_before: int = 40_000
    drift_after: int = 40_000
    stationary_visitors: int = 1_000_000
    mix_before: int = 40_000
    mix_after: int = 40_000


QUICK = Sizes(runs=6, cap_visitors=3000, aa_visitors=5000, drift_before=20_000, drift_after=20_000,
              stationary_visitors=40_000, mix_before=20_000, mix_after=20_000)


def split(policy, trials: np.ndarray, conversions: np.ndarray, rng: np.random.Generator,
          burn_in: int = 0) -> np.ndarray:
    """The router's split for these counts: the policy, burn-in and floor of ``allocate_with_holdout``."""
    probs, _ = allocate_with_holdout(policy, ArmStats.from_counts(trials, conversions), rng, min_share=MIN_SHARE,
                                     burn_in=burn_in)
    return probs


def run_cap(runs: int, visitors: int, seed: int, guarded: bool = True, burn_in: int | None = None) -> dict:
    """``burn_in`` None: the guardrail's ``required_burn_in`` (uniform until both arms have ``min_sample``)."""
    env, rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    policy = make_policy("thompson")
    guardrail = parse_guardrails([CAP_GUARDRAIL])[0]
    burn_in = required_burn_in([guardrail]) if burn_in is None else burn_in
    bounce = np.array(CAP_BOUNCE)
    per_stay = np.array(CAP_CONVERSION) / (1.0 - bounce)  # conversions come from visitors who stay
    trials, conversions, bounces = np.zeros((runs, 2)), np.zeros((runs, 2)), np.zeros((runs, 2))
    capped_at = np.full(runs, -1)
    variant_at_cap = np.zeros(runs)
    over_floor = 0.0  # the largest share a breached variant got above the floor
    breached = np.zeros(runs, dtype=bool)
    for t in range(0, visitors, REFRESH):
        probs = split(policy, trials, conversions, rng, burn_in)
        if guarded:
            breached = evaluate(guardrail, (trials[:, 0], bounces[:, 0]), (trials[:, 1], bounces[:, 1])).breached
            probs = cap(probs, np.stack([np.zeros(runs, dtype=bool), breached], axis=-1), MIN_SHARE)
            if breached.any():
                over_floor = max(over_floor, float((probs[breached, 1] - MIN_SHARE).max()))
            new = breached & (capped_at < 0)
            capped_at[new], variant_at_cap[new] = t, trials[new, 1]
        counts = env.multinomial(REFRESH, probs)
        stayed = counts - env.binomial(counts, bounce)
        converted = env.binomial(stayed, per_stay)
        trials += counts
        bounces += counts - stayed
        conversions += converted
    after = visitors - np.where(capped_at >= 0, capped_at, visitors)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_after = (trials[:, 1] - variant_at_cap) / after
    return {"capped_at": capped_at, "over_floor": over_floor, "breached_at_end": breached,
            "variant_share": trials[:, 1] / visitors, "share_after_cap": share_after,
            "conversions": conversions.sum(axis=1), "bounce_rate": bounces.sum(axis=1) / visitors}


def run_aa(runs: int, visitors: int, seed: int) -> dict:
    env, rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    policy = make_policy("thompson")
    guardrails = parse_guardrails(AA_GUARDRAILS)
    burn_in = required_burn_in(guardrails)
    # log-normal active seconds with AA_BOUNCE of views below ENGAGED_SECONDS
    mu = np.log(ENGAGED_SECONDS) + 0.2533471031357997 * AA_ACTIVE_SIGMA  # Phi^-1(0.6) = 0.2533
    per_stay = AA_CONVERSION / (1.0 - AA_BOUNCE)
    trials, conversions, bounces = np.zeros((runs, 2)), np.zeros((runs, 2)), np.zeros((runs, 2))
    seconds, squares = np.zeros((runs, 2)), np.zeros((runs, 2))
    ever = np.zeros((len(guardrails), runs), dtype=bool)
    for t in range(0, visitors, REFRESH):
        probs = split(policy, trials, conversions, rng, burn_in)
        stats = {"bounce_rate": lambda k: (trials[:, k], bounces[:, k]),
                 "active_time": lambda k: (trials[:, k], seconds[:, k], squares[:, k])}
        breached = np.zeros(runs, dtype=bool)
        for i, g in enumerate(guardrails):
            hit = evaluate(g, stats[g.metric](0), stats[g.metric](1)).breached
            ever[i] |= hit
            breached |= hit
        probs = cap(probs, np.stack([np.zeros(runs, dtype=bool), breached], axis=-1), MIN_SHARE)
        arm = (env.random((runs, REFRESH)) >= probs[:, :1]).astype(int)  # per visitor: 0 or 1
        active = np.minimum(env.lognormal(mu, AA_ACTIVE_SIGMA, (runs, REFRESH)), ACTIVE_CAP_SECONDS)
        bounced = active < ENGAGED_SECONDS
        converted = ~bounced & (env.random((runs, REFRESH)) < per_stay)
        for k in (0, 1):
            on = arm == k
            trials[:, k] += on.sum(axis=1)
            bounces[:, k] += (on & bounced).sum(axis=1)
            conversions[:, k] += (on & converted).sum(axis=1)
            seconds[:, k] += np.where(on, active, 0.0).sum(axis=1)
            squares[:, k] += np.where(on, active * active, 0.0).sum(axis=1)
    return {"ever": ever, "metrics": [g.metric for g in guardrails], "variant_share": trials[:, 1] / visitors,
            "bounce_rate": bounces.sum() / trials.sum()}


def _bucketed(runs: int, visitors: int, seed: int, rates_at, refresh: int = REFRESH,
              mix_at=None) -> tuple[np.ndarray, np.ndarray]:
    """Thompson-routed visitors, counted per bucket: trials and conversions ``(T, R, K)``, or
    ``(T, S, R, K)`` per device when ``mix_at(t)`` gives the device shares."""
    env, rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    policy = make_policy("thompson")
    k = rates_at(0).shape[-1]
    buckets = visitors // BUCKET
    shape = (buckets, len(DEVICES), runs, k) if mix_at else (buckets, runs, k)
    bucket_trials, bucket_conversions = np.zeros(shape), np.zeros(shape)
    trials, conversions = np.zeros((runs, k)), np.zeros((runs, k))
    for t in range(0, visitors, refresh):
        probs = split(policy, trials, conversions, rng)
        counts = env.multinomial(refresh, probs)
        if mix_at:
            by_device = env.multinomial(counts, mix_at(t))  # (R, K, S)
            converted = env.binomial(by_device, rates_at(t).T)
            bucket_trials[t // BUCKET] += np.moveaxis(by_device, -1, 0)
            bucket_conversions[t // BUCKET] += np.moveaxis(converted, -1, 0)
            counts, converted = by_device.sum(axis=-1), converted.sum(axis=-1)
        else:
            converted = env.binomial(counts, rates_at(t))
            bucket_trials[t // BUCKET] += counts
            bucket_conversions[t // BUCKET] += converted
        trials += counts
        conversions += converted
    return bucket_trials, bucket_conversions


def run_drift(runs: int, before: int, after: int, seed: int) -> dict:
    rates = np.array(DRIFT_RATES)
    changed = rates.copy()
    changed[0] *= 1.0 - DRIFT_DROP
    trials, conversions = _bucketed(runs, before + after, seed, lambda t: rates if t < before else changed)
    change_bucket = before // BUCKET
    alarms = watch(trials, conversions, window=WINDOW, start=change_bucket)
    hit = (alarms.first_alarm[:, 0] >= 0) & (alarms.first_direction[:, 0] < 0)
    delay = np.where(hit, (alarms.first_alarm[:, 0] + 1) * BUCKET - before, np.inf)
    located = np.abs(alarms.first_change[hit, 0] - change_bucket)
    share = trials[change_bucket:].sum(axis=0)
    return {"delay": delay, "located": located, "other_alarms": int((alarms.first_alarm[:, 1:] >= 0).sum()),
            "share_after": share[:, 0] / share.sum(axis=1)}


def run_stationary(runs: int, visitors: int, seed: int) -> dict:
    rates = np.array(DRIFT_RATES)
    trials, conversions = _bucketed(runs, visitors, seed, lambda t: rates, refresh=BUCKET)
    alarms = watch(trials, conversions, window=WINDOW)
    return {"alarms": int(alarms.count.sum()), "visitors": runs * visitors, "reruns": trials[1:].size}


def run_mix(runs: int, before: int, after: int, seed: int) -> dict:
    rates = np.array(DEVICE_RATES)
    trials, conversions = _bucketed(runs, before + after, seed, lambda t: rates,
                                    mix_at=lambda t: np.array(MIX_BEFORE if t < before else MIX_AFTER))
    shift = before // BUCKET  # the first bucket after the shift
    width = min(MIX_WINDOW, shift // 2)
    checked = watch_checks(trials, conversions, shift, width)
    plain = watch(trials.sum(axis=1), conversions.sum(axis=1), window=WINDOW)
    devices = trials.sum(axis=-1)  # (T, S, R): views per device, every arm
    reference = devices[:width].sum(axis=0).T  # (R, S)
    shifted = mix_drift(reference, devices[-width:].sum(axis=0).T)
    steady = mix_drift(reference, devices[width:2 * width].sum(axis=0).T)  # both windows before the shift
    return {"psi": shifted.psi, "psi_steady": steady.psi, **checked, "plain_alarm": (plain.count > 0).any(axis=-1)}


def watch_checks(trials: np.ndarray, conversions: np.ndarray, shift: int, width: int) -> dict:
    """The router's drift and mix checks (``monitor_checks``) at the close of every bucket of
    each run, on the counts ``(T, S, R, K)`` shaped as the store's readers give them: bucket
    start → device → variant → counter (``devices``), bucket start → "device" → class →
    assignments (``mix``). Per run: whether the rate check ever alarmed, and whether the mix
    check flagged the mix after ``shift`` / before it."""
    experiment = parse_experiment(MIX_EXPERIMENT)
    ids = [v.id for v in experiment.active_variants]
    conv = f"conv:{experiment.goal}"
    rate_check = DriftCheck(window=WINDOW)
    mix_check = MixDriftCheck(recent=width, reference=width)
    n_buckets, _, runs, _ = trials.shape
    out = {name: np.zeros(runs, dtype=bool) for name in ("rate_alarm", "mix_flagged", "steady_flagged")}
    for r in range(runs):
        devices: dict[int, dict] = {}
        mix: dict[int, dict] = {}
        for t in range(n_buckets):
            start = t * BUCKET_SECONDS
            devices[start] = {d: {v: {"trials": float(trials[t, s, r, k]), conv: float(conversions[t, s, r, k])}
                                  for k, v in enumerate(ids)} for s, d in enumerate(DEVICES)}
            mix[start] = {"device": {d: float(trials[t, s, r].sum()) for s, d in enumerate(DEVICES)}}
            seen = Observation(experiment, {}, {"devices": devices, "mix": mix}, float(start + BUCKET_SECONDS))
            if rate_check.run(seen):
                out["rate_alarm"][r] = True
            if mix_check.run(seen):
                out["mix_flagged" if t >= shift else "steady_flagged"][r] = True
    return out


def _call(job: tuple) -> tuple[str, dict, float]:
    name, fn, args = job
    started = time.perf_counter()
    return name, fn(*args), time.perf_counter() - started


def _pct(x) -> str:
    return f"{np.mean(x):.1%}"


def poisson_upper(count: int, confidence: float = 0.95) -> float:
    """The exact upper confidence bound of a Poisson mean after ``count`` events:
    the ``lam`` with ``P(Poisson(lam) <= count) = 1 - confidence``, i.e. ``Q(count + 1, lam)``."""
    lo, hi = 0.0, 10.0 * (count + 3)
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if regularized_gamma_q(count + 1, mid) > 1 - confidence else (lo, mid)
    return hi


def _quantile(x: np.ndarray, q: float) -> float:
    return float(np.quantile(x, q, method="inverted_cdf"))  # no interpolation: "never" (inf) stays inf


def _visitors(x: float) -> str:
    return "never" if not np.isfinite(x) else f"{x:,.0f}"


def report(results: dict[str, dict], sizes: Sizes, seconds: float) -> list[tuple[str, str, str, bool]]:
    """Print the table; return the goals as ``(name, figure, target, met)``."""
    rows = []
    cap_r, free, eager = results["cap"], results["cap without guardrail"], results["cap without burn-in"]

    def until(result: dict) -> np.ndarray:
        return np.where(result["capped_at"] >= 0, result["capped_at"], np.inf)

    def spread(x: np.ndarray) -> str:
        return " / ".join(_visitors(v) for v in (_quantile(x, 0.5), _quantile(x, 0.95), x.max()))

    capped = until(cap_r)
    rows += [
        ("cap", "visitors until breached and capped: median / 95th pct / max", spread(capped)),
        ("cap", "the same without burn-in (the policy starves control's views)", spread(until(eager))),
        ("cap", "breached variant's share above the 1% floor, worst refresh", f"{cap_r['over_floor']:.1e}"),
        ("cap", "still breached at the end", _pct(cap_r["breached_at_end"])),
        ("cap", "variant's share after the breach", f"{np.nanmean(cap_r['share_after_cap']):.2%}"),
        ("cap", f"variant's share of {sizes.cap_visitors:,} visitors: guarded / unguarded",
         f"{_pct(cap_r['variant_share'])} / {_pct(free['variant_share'])}"),
        ("cap", "bounce rate: guarded / unguarded",
         f"{_pct(cap_r['bounce_rate'])} / {_pct(free['bounce_rate'])}"),
        ("cap", "conversions: guarded / unguarded",
         f"{cap_r['conversions'].mean():.0f} / {free['conversions'].mean():.0f}"),
    ]
    aa = results["A/A"]
    rows += [("A/A", f"runs with a false breach over {sizes.aa_visitors:,} visitors: {m}", _pct(e))
             for m, e in zip(aa["metrics"], aa["ever"])]
    rows.append(("A/A", "runs with a false breach of either", _pct(aa["ever"].any(axis=0))))
    drift = results["drift delay"]
    delay = drift["delay"]
    rows += [
        ("drift delay", "visitors from the change to the alarm: median / 90th pct",
         f"{_visitors(_quantile(delay, 0.5))} / {_visitors(_quantile(delay, 0.9))}"),
        ("drift delay", "runs where the drop was detected (falling) by the end", _pct(np.isfinite(delay))),
        ("drift delay", "change point found: median buckets off",
         f"{np.median(drift['located']):.0f}" if len(drift["located"]) else "-"),
        ("drift delay", "dropped arm's share after the change", _pct(drift["share_after"])),
        ("drift delay", "alarms on the unchanged arms", f"{drift['other_alarms']}"),
    ]
    still = results["false drift alarms"]
    millions = still["visitors"] / 1e6
    per_million = still["alarms"] / millions
    rows += [
        ("false drift alarms", f"alarms in {still['visitors']:,} stationary visitors ({still['reruns']:,} arm reruns)",
         f"{still['alarms']} = {per_million:.3f} per million"),
        ("false drift alarms", "per million visitors, 95% upper bound", f"{poisson_upper(still['alarms']) / millions:.3f}"),
    ]
    mix = results["mix shift"]
    right = mix["mix_flagged"] & ~mix["steady_flagged"] & ~mix["rate_alarm"]
    rows += [
        ("mix shift", "PSI after the shift: median (min)", f"{np.median(mix['psi']):.3f} ({mix['psi'].min():.3f})"),
        ("mix shift", "PSI, two windows before the shift: median (max)",
         f"{np.median(mix['psi_steady']):.4f} ({mix['psi_steady'].max():.4f})"),
        ("mix shift", f"runs with PSI > {PSI_SIGNIFICANT}, first to last window",
         _pct(mix["psi"] > PSI_SIGNIFICANT)),
        ("mix shift", "runs the router's mix check flagged: after the shift / before it (false)",
         f"{_pct(mix['mix_flagged'])} / {_pct(mix['steady_flagged'])}"),
        ("mix shift", "runs with a rate alarm: router's check (by device) / unadjusted",
         f"{_pct(mix['rate_alarm'])} / {_pct(mix['plain_alarm'])}"),
    ]
    print(f"\n{'scenario':<19} {'measure':<72} value")
    for scenario, measure, value in rows:
        print(f"{scenario:<19} {measure:<72} {value}")
    within = float(np.mean(capped <= CAP_WITHIN))
    aa_rate = float(aa["ever"].any(axis=0).mean())
    median_delay = _quantile(delay, 0.5)
    return [
        ("cap", f"breached and held at the floor within {CAP_WITHIN:,} visitors in {within:.1%} of "
         f"{len(capped)} runs", f">= {SHARE_OF_RUNS:.0%}", within >= SHARE_OF_RUNS),
        ("cap-holds", f"a breached variant's share above the floor at most {cap_r['over_floor']:.1e}",
         "0", cap_r["over_floor"] <= 1e-12),
        ("aa-false-breach", f"{aa_rate:.1%} of {aa['ever'].shape[1]} runs "
         f"(bounce_rate {_pct(aa['ever'][0])}, active_time {_pct(aa['ever'][1])})", "<= 5%", aa_rate <= 0.05),
        ("drift-delay", f"median {_visitors(median_delay)} visitors after a {DRIFT_DROP:.0%} drop",
         f"<= {DRIFT_WITHIN:,}", median_delay <= DRIFT_WITHIN),
        ("false-drift-alarms", f"{per_million:.3f} per million visitors ({still['alarms']} in "
         f"{still['visitors']:,})", f"<= {FALSE_ALARMS_PER_MILLION:g}", per_million <= FALSE_ALARMS_PER_MILLION),
        ("mix-shift", f"mix drift and no rate drift in {np.mean(right):.1%} of runs "
         f"(unadjusted detector alarmed in {_pct(mix['plain_alarm'])})", f">= {SHARE_OF_RUNS:.0%}",
         np.mean(right) >= SHARE_OF_RUNS),
        ("runtime", f"{seconds:.0f} s", "< 300", seconds < 300),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="runs per scenario (default 200; 6 with --quick)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of a few seconds")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.runs is not None:
        if args.runs < 1:
            parser.error("--runs: at least 1")
        sizes = replace(sizes, runs=args.runs)
    started = time.perf_counter()
    r, s = sizes.runs, args.seed
    jobs = [  # the longest first, so the workers finish together
        ("false drift alarms", run_stationary, (max(1, r // 2), sizes.stationary_visitors, s + 4)),
        ("drift delay", run_drift, (r, sizes.drift_before, sizes.drift_after, s + 3)),
        ("mix shift", run_mix, (r, sizes.mix_before, sizes.mix_after, s + 5)),
        ("A/A", run_aa, (r, sizes.aa_visitors, s + 2)),
        ("cap", run_cap, (r, sizes.cap_visitors, s + 1)),
        ("cap without guardrail", run_cap, (r, sizes.cap_visitors, s + 1, False)),
        ("cap without burn-in", run_cap, (r, sizes.cap_visitors, s + 1, True, 0)),
    ]
    print(f"{r} runs per scenario; split recomputed every {REFRESH} visitors (Thompson sampling, floor "
          f"{MIN_SHARE:.0%}); buckets of {BUCKET:,} visitors, drift window {WINDOW} buckets")
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            done = list(pool.map(_call, jobs))
    else:
        done = [_call(job) for job in jobs]
    results = {name: result for name, result, _ in done}
    print("seconds per scenario: " + ", ".join(f"{name} {secs:.0f}" for name, _, secs in done))
    goals = report(results, sizes, time.perf_counter() - started)
    print(f"\n{time.perf_counter() - started:.0f} s with {args.workers} worker(s)")
    print_goals(goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
