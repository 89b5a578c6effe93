"""``croupier-simulate``: what a bandit would do with your traffic, before you launch.

    croupier-simulate scenario.yml --out simulation.html
    croupier-simulate --rates a=0.04,b=0.05,c=0.045 --daily-visitors 5000 --days 30 --out simulation.html
    croupier-simulate scenario.yml --format png --out charts/

Simulates the scenario's seeded runs through the router's own policy and allocation code
(``croupier.scripts.simulation``), prints a short summary and writes a self-contained HTML
report (charts embedded, nothing loaded from elsewhere) or one PNG per chart. The same
scenario and seed give the same figures. Options given with a scenario file override its fields.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from croupier.scripts.progress import Progress
from croupier.scripts.scenario import Scenario, ScenarioError, drift_option, parse_scenario, parse_text, rates_option
from croupier.scripts.simulation import simulate
from croupier.scripts.simulation_summary import BAND, Outcome, band, summarise

TEMPLATES = Path(__file__).with_name("templates")
TEMPLATE = "simulation.html"
OPTION_FIELDS = (  # (option, scenario field, type)
    ("daily_visitors", "daily_visitors", int), ("days", "days", int), ("policy", "policy", str),
    ("min_share", "min_share", float), ("burn_in", "burn_in", int), ("holdout", "holdout", float),
    ("runs", "runs", int), ("seed", "seed", int), ("refresh_visitors", "refresh_visitors", int),
    ("name", "name", str),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="croupier-simulate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="The scenario file's fields are described in docs/simulate.md.")
    p.add_argument("scenario", nargs="?", help="a scenario file: .json, or YAML (.yml/.yaml)")
    p.add_argument("--rates", help="the variants and their guessed conversion rates: a=0.04,b=0.05,c=0.045")
    p.add_argument("--daily-visitors", type=int, help="visitors a day")
    p.add_argument("--days", type=int, help="how many days the experiment runs")
    p.add_argument("--drift", help="from day DAY these variants convert at new rates: DAY:b=0.03[,c=0.05]")
    p.add_argument("--policy", help="the experiment's policy (default thompson), as the router takes it")
    p.add_argument("--policy-params", help="the policy's settings as a JSON object, e.g. '{\"epsilon\": 0.1}'")
    p.add_argument("--min-share", type=float, help="the least share of traffic every variant keeps (default 0.01)")
    p.add_argument("--burn-in", type=int, help="visitors every variant gets before the bandit takes over")
    p.add_argument("--holdout", type=float, help="share of visitors kept on an even split")
    p.add_argument("--runs", type=int, help="how many seeded runs (default 50)")
    p.add_argument("--seed", type=int, help="the first run's seed; the same seed gives the same figures (default 1)")
    p.add_argument("--refresh-visitors", type=int, help="visitors between two allocations (default: see docs)")
    p.add_argument("--name", help="the scenario's name, the report's title")
    p.add_argument("--format", choices=("html", "png"), default="html",
                   help="html: one self-contained report; png: one image per chart in the --out folder")
    p.add_argument("--out", help="the report (default simulation.html) or, with --format png, the folder "
                                 "(default simulation-charts)")
    p.add_argument("--json", help="also write the figures (per run, and median with band over time) to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def scenario_data(args: argparse.Namespace) -> dict:
    """The scenario file's fields, with the options given on the command line over them."""
    data: dict = {}
    if args.scenario:
        path = Path(args.scenario)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"scenario: cannot read {path} ({exc.strerror})") from None
        data = parse_text(text, "json" if path.suffix.lower() == ".json" else "yaml")
        if not isinstance(data, dict):
            raise ScenarioError(f"scenario: {path} must hold a mapping of fields (variants, daily_visitors, ...)")
    elif not (args.rates and args.daily_visitors is not None and args.days is not None):
        raise ScenarioError("scenario: give a scenario file, or --rates, --daily-visitors and --days")
    if args.rates:
        data["variants"] = rates_option(args.rates)
    if args.drift:
        data["drift"] = drift_option(args.drift)
    if args.policy_params:
        try:
            data["policy_params"] = json.loads(args.policy_params)
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"--policy-params: not valid JSON ({exc})") from None
    for option, name, _ in OPTION_FIELDS:
        value = getattr(args, option)
        if value is not None:
            data[name] = value
    return data


def run(scenario: Scenario, progress: Progress) -> Outcome:
    engine = scenario.engine()
    bar = progress.bar(f"simulating {scenario.runs} runs of {scenario.visitors:,} visitors", engine.horizon)
    trace = simulate(scenario.policy_object(), engine, runs=scenario.runs, seed=scenario.seed,
                     checkpoints=scenario.checkpoints(), controls=scenario.controls(), on_step=bar.update)
    bar.close()
    return summarise(scenario, trace)


def _days(value: float) -> str:
    return f"{value:.1f} days" if value < 10 else f"{value:.0f} days"


def headline(outcome: Outcome) -> list[dict]:
    """What a manager asks first, as the report's cards: the best variant, how soon it takes the
    traffic, the conversions gained over an even split and the regret."""
    sc = outcome.scenario
    span = f"{BAND[0]:.0%}-{BAND[1]:.0%} of runs"
    best = sc.variants[outcome.best]
    best_rate = sc.engine().rates_at(sc.visitors - 1)[outcome.best]
    days = outcome.takeover_days
    reached = int(np.isfinite(days).sum())
    since = "from the start" if outcome.takeover_from == 1 else f"from the drift on day {outcome.takeover_from}"
    if reached * 2 > len(days):
        when = _days(float(np.median(np.where(np.isfinite(days), days, np.inf))))
        takeover = {"value": f"within {when}", "detail": f"median over runs, counted {since}; {reached} of {len(days)} "
                                                           f"runs got there"}
    else:
        takeover = {"value": "not in most runs", "detail": f"{reached} of {len(days)} runs within {sc.days} days, "
                                                           f"counted {since}"}
    gain, regret = outcome.final(outcome.gain), outcome.final(outcome.regret)
    oracle = best if sc.drift is None else "the best of the moment"
    relative = gain.median / outcome.even_conversions if outcome.even_conversions else 0.0
    return [
        {"key": "best", "label": "Best variant at the end", "value": best, "detail": f"converts at {best_rate:.2%}"},
        {"key": "takeover", "label": f"{sc.takeover_share:.0%} of the traffic to {best}", **takeover},
        {"key": "gain", "label": "Conversions gained over an even split", "value": f"{gain.median:+,.0f}",
         "sign": "pos" if gain.median >= 0 else "neg",
         "detail": f"{relative:+.1%} of {outcome.even_conversions:,.0f}; {span}: {gain.low:+,.0f} to "
                   f"{gain.high:+,.0f}"},
        {"key": "regret", "label": f"Regret against always showing {oracle}", "value": f"{regret.median:,.0f}",
         "detail": f"conversions; {span}: {regret.low:,.0f} to {regret.high:,.0f}; an even split's: "
                   f"{outcome.even_regret[-1]:,.0f}"},
    ]


def summary_lines(outcome: Outcome, cards: list[dict]) -> list[str]:
    """The short text summary printed after a simulation."""
    sc = outcome.scenario
    controls = f"min_share {sc.min_share:g}" + (f", burn_in {sc.burn_in}" if sc.burn_in else "") + (
        f", holdout {sc.holdout:g}" if sc.holdout else "")
    params = f" {json.dumps(sc.policy_params, sort_keys=True)}" if sc.policy_params else ""
    lines = [f"{sc.name}: {len(sc.variants)} variants, {sc.daily_visitors:,} visitors a day for {sc.days} days "
             f"({sc.visitors:,}); policy {sc.policy}{params}, {controls}; {sc.runs} runs, seed {sc.seed}, "
             f"allocation every {sc.refresh_visitors:,} visitors"]
    lines += [f"{c['label'].lower()}: {c['value']} ({c['detail']})" for c in cards]
    last = outcome.share[:, -1]
    shares = ", ".join(f"{vid} {np.median(last[:, k]):.0%}" for k, vid in enumerate(sc.variants))
    lines.append(f"traffic share at the end (median over runs): {shares}")
    return lines


def figures(outcome: Outcome) -> dict:
    """Every run's figures and the medians with their bands over time, for ``--json``."""
    sc = outcome.scenario

    def spread(values) -> dict:
        b = band(values)
        return {"median": np.round(b.median, 4).tolist(), "low": np.round(b.low, 4).tolist(),
                "high": np.round(b.high, 4).tolist()}

    last = outcome.share[:, -1]
    return {
        "scenario": {"name": sc.name, "variants": dict(zip(sc.variants, sc.rates)), "daily_visitors": sc.daily_visitors,
                     "days": sc.days, "drift": None if sc.drift is None else {"day": sc.drift.day,
                                                                              "rates": sc.drift.rates},
                     "policy": sc.policy, "policy_params": sc.policy_params, "min_share": sc.min_share,
                     "burn_in": sc.burn_in, "holdout": sc.holdout, "runs": sc.runs, "seed": sc.seed,
                     "refresh_visitors": sc.refresh_visitors, "takeover_share": sc.takeover_share},
        "band": list(BAND),
        "best": sc.variants[outcome.best],
        "even_split_conversions": round(outcome.even_conversions, 2),
        "best_variant_conversions": round(outcome.best_conversions, 2),
        "runs": [{"run": r, "regret": round(float(outcome.regret[r, -1]), 2),
                  "gain": round(float(outcome.gain[r, -1]), 2),
                  "takeover_days": None if np.isnan(d) else round(float(d), 3),
                  "final_share": {vid: round(float(last[r, k]), 4) for k, vid in enumerate(sc.variants)}}
                 for r, d in enumerate(outcome.takeover_days)],
        "over_time": {"days": np.round(outcome.days, 4).tolist(),
                      "share": {vid: spread(outcome.share[:, :, k]) for k, vid in enumerate(sc.variants)},
                      "regret": spread(outcome.regret), "gain": spread(outcome.gain),
                      "even_split_regret": np.round(outcome.even_regret, 2).tolist()},
    }


def render_html(outcome: Outcome, chart_list, cards: list[dict], made: datetime) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from croupier.scripts import charts

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    sc = outcome.scenario
    after = sc.rates_after or sc.rates
    rows = [{"id": vid, "rate": rate, "after": after[k]} for k, (vid, rate) in enumerate(zip(sc.variants, sc.rates))]
    return env.get_template(TEMPLATE).render(
        scenario=sc, variants=rows, cards=cards,
        charts=[{"key": c.name, "title": c.title, "caption": c.caption, "src": charts.data_uri(c.figure)}
                for c in chart_list],
        made=made.strftime("%Y-%m-%d %H:%M UTC"))


def write_pngs(chart_list, folder: Path) -> list[Path]:
    """One PNG per chart, numbered in the report's order (as croupier-report names them)."""
    from croupier.scripts import charts

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for n, chart in enumerate(chart_list, 1):
        target = folder / f"{n:02d}-{chart.name}.png"
        target.write_bytes(charts.png(chart.figure))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        scenario = parse_scenario(scenario_data(args))
    except ScenarioError as exc:
        print(f"croupier-simulate: {exc}", file=sys.stderr)
        return 2
    try:
        from croupier.scripts.simulation_charts import simulation_charts
    except ImportError as exc:
        print(f"croupier-simulate: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or ("simulation.html" if args.format == "html" else "simulation-charts"))
    if args.format == "png" and out.exists() and not out.is_dir():
        print(f"croupier-simulate: --out {out}: --format png writes a folder of charts, and this is a file",
              file=sys.stderr)
        return 2
    if args.format == "html" and out.is_dir():
        print(f"croupier-simulate: --out {out}: is a folder; give the HTML file's name (or use --format png)",
              file=sys.stderr)
        return 2
    progress = Progress(quiet=args.quiet)
    outcome = run(scenario, progress)
    cards = headline(outcome)
    print("\n".join(summary_lines(outcome, cards)))
    progress.step("drawing the charts")
    chart_list = simulation_charts(outcome)
    try:
        if args.format == "png":
            written = write_pngs(chart_list, out)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render_html(outcome, chart_list, cards, datetime.now(timezone.utc)), encoding="utf-8")
    except OSError as exc:
        print(f"croupier-simulate: --out {out}: {exc.strerror}", file=sys.stderr)
        return 1
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(figures(outcome), indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"croupier-simulate: --json {args.json}: {exc.strerror}", file=sys.stderr)
            return 1
    print("charts: " + ", ".join(str(p) for p in written) if args.format == "png" else f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
