"""Regret benchmark of the router's policies: ``python -m bench.policies`` (``make bench-policies``).

Simulates Bernoulli visitors against every policy in ``croupier.router.policies``,
vectorised across runs (see ``bench.simulate``), prints one table per scenario
and draws the regret curves into ``bench/out/policies.png`` (scripts/charts.py, the
reports' plotting code). It ends with one line per goal of the
policy engine: ``goal <name>: <figure> met`` or ``... not met``.

Regret is the pseudo-regret ``sum_k (mu* - mu_k) n_k`` (expected conversions
lost to the oracle that always plays the best arm); "lost vs oracle" and "lost
vs A/B" use the conversions that actually happened. ``C`` is the Lai-Robbins
constant ``sum_k (mu* - mu_k) / KL(mu_k, mu*)``: no consistent policy has
regret below ``(1 - o(1)) C ln T`` (Lai & Robbins 1985).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from bench.simulate import Controls, Scenario, Trace, checkpoint_grid, simulate
from croupier.router.policies import POLICIES, bernoulli_kl, make_policy
from croupier.scripts import charts

SLOPE_FROM = 30_000  # the slope of regret against ln T is measured from here to the horizon
REFRESH = 100  # visitors per state refresh in "router mode"
TAKEOVER_SHARE = 0.8  # "most traffic" in the drift goal
DRIFT_BOUND = 60_000  # visitors after the change within which the non-stationary policy must take over
STUCK_SHARE = 0.5  # plain Thompson sampling is stuck if the new best gets less in the same span
HALF_LIFE = 20_000  # the non-stationary policies' memory, in visitors (one bucket = 1,000)
WINDOW = 50_000


@dataclass(frozen=True)
class Case:
    """One policy on one scenario."""

    scenario: Scenario
    policy: str
    params: tuple[tuple[str, object], ...] = ()
    feedback: str = "each visitor"
    checkpoints: tuple[int, ...] = ()
    controls: Controls = Controls()

    @property
    def key(self) -> str:
        return f"{self.scenario.name}|{self.policy}|{self.feedback}"


@dataclass
class Result:
    case: Case
    trace: Trace


def lai_robbins(rates) -> float:
    rates = np.asarray(rates, dtype=np.float64)
    best = rates.max()
    worse = rates[rates < best]
    return float(np.sum((best - worse) / bernoulli_kl(worse, best)))


def policy_params(name: str, scenario: Scenario) -> dict:
    """The benchmark's settings: defaults, except what a benchmark has to choose."""
    rates = sorted(scenario.rates, reverse=True)
    # Monte Carlo probabilities (Gaussian and top-two Thompson): noise of the same order as the
    # batch's own; the other Beta policies' are exact
    draws = {"draws": max(100, scenario.batch)}
    return {
        "top_two_thompson": draws,
        "gaussian_thompson": draws,
        # the smallest gap worth detecting, set to the true gap: the best case for it (Auer et al. 2002)
        "decaying_epsilon_greedy": {"d": rates[0] - rates[1]},
        "discounted_thompson": {"half_life": float(HALF_LIFE)},
        "sliding_window_thompson": {"window": float(WINDOW)},
    }.get(name, {})


def _run(case: Case, runs: int) -> Result:
    params = dict(case.params) or policy_params(case.policy, case.scenario)
    policy = make_policy(case.policy, params)
    seed = zlib.crc32(case.key.encode())
    cps = np.asarray(case.checkpoints) if case.checkpoints else checkpoint_grid(case.scenario, must=(SLOPE_FROM,))
    return Result(case, simulate(policy, case.scenario, runs=runs, seed=seed, checkpoints=cps,
                                 controls=case.controls))


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


@dataclass
class Summary:
    regret: tuple[float, float]
    ratio: float
    slope: tuple[float, float] | None
    best_share: float
    lost_oracle: tuple[float, float]
    lost_ab: tuple[float, float]
    seconds: float


def summarise(result: Result) -> Summary:
    sc, tr = result.case.scenario, result.trace
    horizon = sc.horizon
    c = lai_robbins(sc.rates)
    regret = tr.regret[:, -1]
    slope = None
    if SLOPE_FROM in tr.checkpoints and SLOPE_FROM < horizon:
        at = int(np.searchsorted(tr.checkpoints, SLOPE_FROM))
        slope = _mean_se((regret - tr.regret[:, at]) / math.log(horizon / SLOPE_FROM))
    # expected conversions of the oracle and of a fixed uniform split, phase by phase for drift
    phases = [(0, sc.change_at or horizon), (sc.change_at or horizon, horizon)]
    oracle = sum((b - a) * sc.rates_at(a).max() for a, b in phases if b > a)
    uniform = sum((b - a) * sc.rates_at(a).mean() for a, b in phases if b > a)
    best = int(np.argmax(sc.rates_at(horizon - 1)))
    return Summary(
        regret=_mean_se(regret),
        ratio=float(regret.mean() / (c * math.log(horizon))) if c > 0 else float("nan"),
        slope=slope,
        best_share=float(tr.pulls[:, -1, best].mean() / horizon),
        lost_oracle=_mean_se(oracle - tr.conversions),
        lost_ab=_mean_se(uniform - tr.conversions),
        seconds=tr.seconds,
    )


def takeover(result: Result) -> tuple[float | None, float, float]:
    """After the change: visitors until the new best arm gets TAKEOVER_SHARE of an interval's traffic
    (run average), its share of the first DRIFT_BOUND visitors, and of the run's last quarter."""
    sc, tr = result.case.scenario, result.trace
    best = int(np.argmax(sc.rates_after))
    cps = tr.checkpoints
    pulls = tr.pulls.mean(axis=0)  # (C, K)
    delta = np.diff(np.vstack([np.zeros(pulls.shape[1]), pulls]), axis=0)
    share = delta[:, best] / delta.sum(axis=1)
    after = np.nonzero((cps > sc.change_at) & (share >= TAKEOVER_SHARE))[0]
    reached = float(cps[after[0]] - sc.change_at) if len(after) else None

    def share_between(start: int, end: int) -> float:
        i, j = np.searchsorted(cps, [start, min(end, sc.horizon)])
        return float((pulls[j, best] - pulls[i, best]) / (cps[j] - cps[i]))

    within = share_between(sc.change_at, sc.change_at + DRIFT_BOUND)
    late = share_between(sc.horizon - (sc.horizon - sc.change_at) // 2, sc.horizon)
    return reached, within, late


def scenarios(horizon: int) -> tuple[list[Scenario], Scenario]:
    stationary = [
        Scenario("K=10, best 0.5, others 0.4 (Chapelle & Li)", (0.5,) + (0.4,) * 9, horizon),
        Scenario("landing page 0.05 vs 0.04", (0.05, 0.04), horizon),
        Scenario("three arms 0.05 / 0.045 / 0.04", (0.05, 0.045, 0.04), horizon),
    ]
    drift_horizon = (horizon * 2 // 3) // (2 * REFRESH) * 2 * REFRESH
    drift = Scenario("drift: 0.05 / 0.04 swap half way", (0.05, 0.04), drift_horizon, batch=REFRESH,
                     rates_after=(0.04, 0.05), change_at=drift_horizon // 2)
    return stationary, drift


def cases(horizon: int, delay: float) -> list[Case]:
    stationary, drift = scenarios(horizon)
    out = []
    for sc in stationary:
        out.append(Case(sc, "thompson"))
        routed = replace(sc, batch=REFRESH)
        # context-free visitors: a contextual policy would only repeat Thompson sampling here
        # (bench/context.py measures it where visitors have a context)
        out += [Case(routed, name, feedback=f"every {REFRESH}") for name, cls in POLICIES.items()
                if not cls.needs_context]
    for sc in stationary[:2]:
        out.append(Case(replace(sc, batch=REFRESH), "thompson", feedback=f"every {REFRESH}, floor 1%",
                        controls=Controls(min_share=0.01)))
        out.append(Case(replace(sc, batch=1000), "thompson", feedback="every 1000"))
        out.append(Case(replace(sc, batch=REFRESH, delay=delay), "thompson",
                        feedback=f"every {REFRESH}, delay {delay:g}"))
    step = max(REFRESH, drift.horizon // 40 // REFRESH * REFRESH)
    linear = tuple(range(step, drift.horizon + 1, step))
    linear = tuple(sorted(set(linear) | {drift.change_at, drift.horizon}))
    for name in ("thompson", "discounted_thompson", "sliding_window_thompson", "kl_ucb"):
        out.append(Case(drift, name, feedback=f"every {REFRESH}", checkpoints=linear))
    return out


def _fmt(pair: tuple[float, float] | None, digits: int = 0) -> str:
    return "-" if pair is None else f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def print_tables(results: dict[str, Result], out=None) -> None:
    out = out or sys.stdout
    by_scenario: dict[str, list[Result]] = {}
    for r in results.values():
        by_scenario.setdefault(r.case.scenario.name, []).append(r)
    for name, rows in by_scenario.items():
        sc = rows[0].case.scenario
        horizon = sc.horizon
        c = lai_robbins(sc.rates)
        print(f"\n== {name}: T = {horizon:,}, runs = {rows[0].trace.regret.shape[0]}, "
              f"C = {c:.2f}, C ln T = {c * math.log(horizon):.1f}", file=out)
        header = (f"{'policy':26s} {'feedback':22s} {'regret at T':>16s} {'/C lnT':>7s} {'slope vs lnT':>15s} "
                  f"{'best arm':>8s} {'lost vs oracle':>16s} {'lost vs A/B':>16s} {'secs':>5s}")
        print(header, file=out)
        for r in rows:
            s = summarise(r)
            print(f"{r.case.policy:26s} {r.case.feedback:22s} {_fmt(s.regret):>16s} {s.ratio:7.2f} "
                  f"{_fmt(s.slope):>15s} {s.best_share:8.1%} {_fmt(s.lost_oracle):>16s} {_fmt(s.lost_ab):>16s} "
                  f"{s.seconds:5.1f}", file=out)
            if sc.rates_after is not None:
                reached, within, late = takeover(r)
                reach = "never" if reached is None else f"{reached:,.0f} visitors"
                print(f"{'':26s}   -> new best arm: {TAKEOVER_SHARE:.0%} of traffic after {reach}; share of the "
                      f"first {DRIFT_BOUND:,} after the change {within:.1%}, of the last quarter {late:.1%}", file=out)


BOUND = "C ln T (Lai & Robbins)"


def _label(result: Result) -> str:
    return f"{result.case.policy} ({result.case.feedback})"


def figure(results: dict[str, Result]):
    """One panel per scenario: each case's mean regret over the runs (and C ln T, the bound)."""
    by_scenario: dict[str, list[Result]] = {}
    for r in results.values():
        by_scenario.setdefault(r.case.scenario.name, []).append(r)
    labels = dict.fromkeys(_label(r) for rows in by_scenario.values() for r in rows)
    style_of = {**charts.styles(labels), BOUND: {"color": charts.EVENT_COLOUR, "linestyle": ":"}}
    fig, axes = charts.new_figure(width=11.0, height=4.2 * len(by_scenario), nrows=len(by_scenario))
    for ax, (name, rows) in zip(axes[:, 0], by_scenario.items()):
        sc = rows[0].case.scenario
        series = [charts.Series(_label(r), r.trace.checkpoints, r.trace.regret.mean(axis=0)) for r in rows]
        c = lai_robbins(sc.rates)
        stationary = sc.rates_after is None
        if c > 0 and stationary:
            x = series[0].x
            series.append(charts.Series(BOUND, x, c * np.log(x)))
        charts.line_chart(series, title=name, x_label="visitors", y_label="regret (conversions)", log_x=stationary,
                          y_max=3 * c * math.log(sc.horizon) if stationary else None, ax=ax, style_of=style_of)
        ax.set_ylim(bottom=0)  # regret is never negative; the clipped lines would pull the margin below
    return fig


def plot(results: dict[str, Result], path: str) -> None:
    """``figure`` as PNG, or SVG when ``path`` ends in .svg."""
    fig = figure(results)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if path.endswith(".svg"):
        with open(path, "w", encoding="utf-8") as f:
            f.write(charts.svg(fig))
    else:
        with open(path, "wb") as f:
            f.write(charts.png(fig))


def goals(results: dict[str, Result], seconds: float, horizon: int) -> list[tuple[str, str, bool]]:
    stationary, drift = scenarios(horizon)
    out = []
    for sc, tag in ((stationary[0], "K10"), (stationary[1], "0.05v0.04")):
        s = summarise(results[Case(sc, "thompson").key])
        out.append((f"thompson-regret-{tag}", f"regret {_fmt(s.regret, 1)} = {s.ratio:.2f} C ln T (<= 0.6)",
                    s.ratio <= 0.6))
        c = lai_robbins(sc.rates)
        slope = s.slope or (float("nan"), 0.0)
        out.append((f"thompson-slope-{tag}", f"slope {_fmt(slope, 1)} per unit ln T, C = {c:.1f}", slope[0] <= c))
        batched = summarise(results[Case(replace(sc, batch=1000), "thompson", feedback="every 1000").key])
        ratio = batched.regret[0] / s.regret[0]
        out.append((f"batch-1000-{tag}", f"regret {batched.regret[0]:.1f} = {ratio:.2f} x per-visitor (<= 1.3)",
                    ratio <= 1.3))
    linear_key = f"{drift.name}|{{}}|every {REFRESH}"
    ts_reach, ts_within, _ = takeover(results[linear_key.format("thompson")])
    ts_shown = "never" if ts_reach is None else f"after {ts_reach:,.0f}"
    for name in ("discounted_thompson", "sliding_window_thompson"):
        reach, _, _ = takeover(results[linear_key.format(name)])
        ok = (reach is not None and reach <= DRIFT_BOUND and ts_within < STUCK_SHARE
              and (ts_reach is None or ts_reach > DRIFT_BOUND))
        shown = "never" if reach is None else f"after {reach:,.0f} visitors"
        out.append((f"drift-{name}", f"{TAKEOVER_SHARE:.0%} on the new best {shown} (<= {DRIFT_BOUND:,}); "
                    f"thompson {ts_shown}, {ts_within:.1%} on it in those {DRIFT_BOUND:,} (< {STUCK_SHARE:.0%})", ok))
    out.append(("runtime", f"{seconds:.0f} s (< 300)", seconds < 300))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--delay", type=float, default=5000.0, help="mean conversion delay, visitors")
    parser.add_argument("--plot", default="bench/out/policies.png", help="the regret curves: .png or .svg")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    todo = cases(args.horizon, args.delay)
    # the costliest first, so both workers finish together
    todo.sort(key=lambda c: -c.scenario.horizon * len(c.scenario.rates) / c.scenario.batch ** 0.5)
    results: dict[str, Result] = {}
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            for r in pool.map(_run, todo, [args.runs] * len(todo)):
                results[r.case.key] = r
    else:
        for case in todo:
            results[case.key] = _run(case, args.runs)
    ordered = {c.key: results[c.key] for c in cases(args.horizon, args.delay)}
    print_tables(ordered)
    plot(ordered, args.plot)
    seconds = time.perf_counter() - started
    print("\nlost vs A/B: against a fixed uniform split; negative means conversions gained")
    print(f"plot: {args.plot}; {len(todo)} simulations, {seconds:.0f} s with {args.workers} workers")
    for name, figure, ok in goals(ordered, seconds, args.horizon):
        print(f"goal {name}: {figure} {'met' if ok else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
