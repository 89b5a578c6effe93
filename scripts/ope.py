"""What other policies would have converted at, estimated from an experiment's event stream.

Reads the stream (from Redis through the store, or from a JSONL export), joins each
visitor's assignments with their conversions of the experiment's goal, and prints
IPS, SNIPS and doubly robust estimates with intervals for each target policy, beside
the rate the logging policy observed.

    python -m croupier.scripts.ope --experiment demo --policy uniform --policy fixed:b --policy thompson
    python -m croupier.scripts.ope --from-file demo.jsonl --policy epsilon_greedy:epsilon=0.1 --json
    python -m croupier.scripts.ope --experiment demo --export demo.jsonl
    python -m croupier.scripts.ope --experiment demo --compare

Events are read from the Parquet archive (croupier-archive; ``--archive``, by default
CROUPIER_ARCHIVE_DIR, else the local stack's run/archive when reading the local stack's
Redis; ``--no-archive`` for the stream alone), then from the stream past it, so the
horizon is not the stream's cap.

--compare: the strategy comparison (croupier.router.strategies): what Thompson sampling,
UCB1, epsilon-greedy, every fixed variant, the even split and the conversion model's
choice per visitor (the experiment's stored model, ``--compare-model``) would have
converted on the logged traffic, by doubly robust with intervals, best first.

Target policies:
  uniform                    an even split over the arms offered
  fixed:<variant>            everyone gets <variant>; fixed:* each variant in turn
  logging                    the logged split itself (a check: equals the observed rate)
  <policy>[:k=v,...]         a router policy (thompson, ucb1, epsilon_greedy, ...) on the
                             whole log's statistics, e.g. Thompson sampling with the final posterior;
                             min_share=<x> applies the experiment's floor too
  sequential:<policy>[:...]  the policy's split at each point of the log, from the log before it
  replay:<policy>[:...]      Li et al.'s replay of the learning policy on the holdout's uniform rows

Exit codes: 0 done, 1 no data, a policy that cannot be evaluated, or Redis unavailable; 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from croupier.router.ope import (Estimate, JoinReport, LoggedData, OPEError, evaluate, fixed_target, join_log, observed,
                        policy_target, replay, sequential_target, uniform_target)
from croupier.router.policies import PolicyError, make_policy
from croupier.router.records import InvalidExperiment
from croupier.router.reward import Reward, parse_reward
from croupier.router.settings import Settings, SettingsError
from croupier.router.strategies import StrategyEstimate, compare_strategies
from croupier.scripts.local_stack import DEFAULT_RUN_DIR
from croupier.scripts.progress import Progress

PROGRESS_EVERY = 50_000
DEFAULT_POLICIES = ("uniform", "fixed:*", "thompson")


class UsageError(ValueError):
    pass


# -- reading ----------------------------------------------------------------

def default_redis_url(run_dir: Path = DEFAULT_RUN_DIR) -> str:
    """CROUPIER_REDIS_URL, else the running local stack's Redis, else the settings' default."""
    if os.environ.get("CROUPIER_REDIS_URL"):
        return os.environ["CROUPIER_REDIS_URL"]
    try:
        return json.loads((run_dir / "stack.json").read_text())["redis_url"]
    except (OSError, ValueError, KeyError, TypeError):
        return Settings().redis_url


def default_archive_dir(settings: Settings | None = None, run_dir: Path = DEFAULT_RUN_DIR) -> Path:
    """CROUPIER_ARCHIVE_DIR, else the local stack's archive (run/archive)."""
    configured = settings.archive_dir if settings else os.environ.get("CROUPIER_ARCHIVE_DIR", "")
    return Path(configured) if configured else run_dir / "archive"


def archive_to_read(args: argparse.Namespace) -> Path | None:
    """--archive; else CROUPIER_ARCHIVE_DIR; else, reading the local stack's Redis, its run/archive.
    None when that directory does not exist (nothing archived) or with --no-archive."""
    if args.no_archive:
        return None
    if args.archive:
        if not args.archive.is_dir():
            raise UsageError(f"--archive {args.archive}: no such directory")
        return args.archive
    # the local stack's archive belongs to the local stack's Redis: not to another one's experiment of that name
    if not os.environ.get("CROUPIER_ARCHIVE_DIR") and (args.redis_url or os.environ.get("CROUPIER_REDIS_URL")):
        return None
    found = default_archive_dir()
    return found if found.is_dir() else None


async def read_stream(redis_url: str, experiment: str, progress: Progress,
                      archive_dir: Path | None = None) -> tuple[list[tuple[str, dict]], str, Reward | None]:
    """The experiment's events (the archive's in ``archive_dir``, then the stream's newer ones:
    ``croupier.router.history_source``), its goal ('' when it is no longer in the registry) and
    the reward it optimises (None when it is no longer in the registry)."""
    from croupier.router.history_source import iter_history  # Redis client only when reading from Redis
    from croupier.router.store import Store

    store = Store(Settings(redis_url=redis_url))
    try:
        found = await store.get_experiment(experiment)
        total = await store.event_count(experiment)
        where = f" and the archive in {archive_dir}" if archive_dir else ""
        progress.step(f"reading experiment {experiment!r}: {total} entries in its stream{where}")
        entries: list[tuple[str, dict]] = []
        async for entry in iter_history(store, experiment, archive_dir, batch=5000):
            entries.append(entry)
            if len(entries) % PROGRESS_EVERY == 0:
                progress.note(f"{len(entries)} entries")
        return entries, found.goal if found else "", found.reward if found else None
    finally:
        await store.close()


def read_file(path: Path) -> Iterator[tuple[str, dict]]:
    """Entries of a JSONL export: one ``{"id": ..., <fields>}`` object per line."""
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                entry = str(doc.pop("id")), {str(k): str(v) for k, v in doc.items()}
            except (ValueError, KeyError, AttributeError, TypeError):
                raise UsageError(f"{path}:{number}: not a stream entry (a JSON object with an 'id')") from None
            yield entry


def export(entries: Iterable[tuple[str, dict]], path: Path) -> int:
    n = 0
    with path.open("w") as out:
        for entry_id, fields in entries:
            out.write(json.dumps({"id": entry_id, **fields}, separators=(",", ":")) + "\n")
            n += 1
    return n


def infer_goal(entries: list[tuple[str, dict]]) -> str:
    goals = sorted({f.get("goal", "") for _, f in entries if f.get("type") == "convert"})
    if len(goals) > 1:
        raise UsageError(f"--goal: the log has conversions of several goals ({', '.join(goals)}); pick one")
    return goals[0] if goals else "signup"


# -- target policies --------------------------------------------------------

def _param_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_policy(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``"replay:thompson:draws=500"`` → ``("replay", "thompson", {"draws": 500})``."""
    mode = "final"
    head, _, rest = spec.partition(":")
    if head in ("sequential", "replay"):
        mode, (head, _, rest) = head, rest.partition(":")
    if head in ("uniform", "logging", "fixed") and mode == "final":
        return head, rest, {}
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--policy {spec}: {item!r} is not key=value")
        params[key.strip()] = _param_value(value.strip())
    if not head:
        raise UsageError(f"--policy {spec}: names no policy")
    return mode, head, params


def estimate_policy(spec: str, log: LoggedData, rng: np.random.Generator, *, confidence: float, bootstrap: int,
                    refresh: int, reward_model: np.ndarray | None = None) -> dict[str, Estimate]:
    mode, name, params = parse_policy(spec)
    kw = {"confidence": confidence, "bootstrap": bootstrap, "rng": rng, "reward_model": reward_model}
    if mode == "uniform":
        return evaluate(log, uniform_target(log), **kw)
    if mode == "logging":
        return evaluate(log, log.probs, **kw)
    if mode == "fixed":
        if not name:
            raise UsageError(f"--policy {spec}: say which variant, e.g. fixed:{log.arms[0] if log.arms else 'b'}")
        return evaluate(log, fixed_target(log, name), **kw)
    min_share = float(params.pop("min_share", 0.0))
    try:
        policy = make_policy(name, params)
    except PolicyError as exc:
        raise UsageError(f"--policy {spec}: {exc}") from None
    if mode == "replay":
        return {"replay": replay(log, policy, rng, min_share=min_share, refresh=refresh, confidence=confidence)}
    if mode == "sequential":
        return evaluate(log, sequential_target(log, policy, rng, refresh=refresh, min_share=min_share), **kw)
    return evaluate(log, policy_target(log, policy, rng, min_share=min_share), **kw)


# -- output -----------------------------------------------------------------

def _pct(e: Estimate) -> str:
    return f"{e.value:6.2%} [{e.ci_low:6.2%}, {e.ci_high:6.2%}]"


def print_comparison(found: list[StrategyEstimate], n: int, seen: Estimate, out: TextIO) -> None:
    confidence = found[0].confidence if found else 0.95
    print(f"strategy comparison on {n} logged assignments ({confidence:.0%} intervals; dr: doubly robust, "
          f"replay: on the holdout); observed {seen.value:.2%}", file=out)
    print(f"{'strategy':<30} {'kind':<9} {'rate':>7}   {'interval':<18} {'by':<7} {'effective rows':>14}", file=out)
    for e in sorted(found, key=lambda e: -e.value):
        note = f"  ({e.unsupported:.0%} on arms never offered: biased)" if e.unsupported > 0 else ""
        print(f"{e.label:<30} {e.kind:<9} {e.value:>7.2%}   [{e.low:6.2%}, {e.high:6.2%}] {e.estimator:<7} "
              f"{e.n_effective:>14.0f}{note}", file=out)


async def read_model(redis_url: str, experiment: str) -> Any:
    """The experiment's stored conversion model (None when it has none)."""
    from croupier.router.hybrid import decode
    from croupier.router.model import ModelError
    from croupier.router.store import Store

    store = Store(Settings(redis_url=redis_url))
    try:
        found = await store.load_model(experiment)
    finally:
        await store.close()
    if not found:
        return None
    try:
        return decode(found[1], found[0]).model
    except ModelError as exc:
        print(f"croupier-ope: the stored model is left out of the comparison: {exc}", file=sys.stderr)
        return None


def print_table(report: JoinReport, goal: str, seen: Estimate, results: dict[str, dict[str, Estimate] | str],
                out: TextIO) -> None:
    print(f"goal {goal}  assignments {report.assignments} (holdout {report.holdout})  "
          f"conversions {report.conversions}: {report.attributed} attributed, {report.unattributed} unattributed",
          file=out)
    print(f"{'policy':<28} {'IPS':<26} {'SNIPS':<26} {'DR':<26}", file=out)
    print(f"{'observed (logging policy)':<28} {_pct(seen)}", file=out)
    for spec, result in results.items():
        if isinstance(result, str):
            print(f"{spec:<28} error: {result}", file=out)
        elif "replay" in result:
            e = result["replay"]
            print(f"{spec:<28} replay {_pct(e)} on {e.n} accepted rows", file=out)
        else:
            row = " ".join(f"{_pct(result[k]):<26}" for k in ("ips", "snips", "dr"))
            notes = []
            if result["ips"].excluded:
                notes.append(f"{result['ips'].excluded} rows without propensity excluded")
            if result["ips"].unsupported > 0:
                notes.append(f"{result['ips'].unsupported:.1%} of its traffic on arms never offered: biased")
            print(f"{spec:<28} {row}{'  (' + '; '.join(notes) + ')' if notes else ''}", file=out)


def _reward(text: str) -> Reward:
    try:
        return parse_reward(json.loads(text) if text.lstrip().startswith("{") else text)
    except (ValueError, InvalidExperiment) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="croupier-ope", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="demo")
    parser.add_argument("--redis-url", default=None, help="default: CROUPIER_REDIS_URL, else the local stack's")
    parser.add_argument("--from-file", type=Path, help="read a JSONL export instead of Redis")
    parser.add_argument("--archive", type=Path, default=None,
                        help="the Parquet archive (croupier-archive) read before the stream: default "
                             "CROUPIER_ARCHIVE_DIR, else (reading the local stack's Redis) its run/archive, "
                             "when it exists")
    parser.add_argument("--no-archive", action="store_true", help="read the stream alone")
    parser.add_argument("--export", type=Path, help="write the entries read as JSONL")
    parser.add_argument("--policy", action="append", default=[], help="a target policy (repeat for several)")
    parser.add_argument("--goal", help="default: the experiment's goal")
    parser.add_argument("--reward", type=_reward, default=None,
                        help="what a row earns: conversion, engaged, or weights as JSON "
                             "('{\"conversion\": 0.7, \"engaged\": 0.3}'); default: the experiment's")
    parser.add_argument("--dr-model", choices=("arms", "logistic"), default="arms",
                        help="DR's reward model: per-arm rates, or the logistic model on the log's context")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples (0: normal intervals)")
    parser.add_argument("--refresh", type=int, default=100, help="rows between splits of sequential/replay")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--compare", action="store_true",
                        help="the strategy comparison: adaptive policies, fixed variants, even split, model's choice")
    parser.add_argument("--compare-model", choices=("stored", "fit", "none"), default="stored",
                        help="--compare's personalised strategy: the experiment's stored conversion model (none "
                             "when it has none or the log is a file), one fitted on this log (optimistic: judged "
                             "on what it learnt from), or none")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress on standard error")
    args = parser.parse_args(argv)
    if not args.policy and not args.export and not args.compare:
        args.policy = list(DEFAULT_POLICIES)
    if not 0 < args.confidence < 1:
        parser.error("--confidence must be between 0 and 1")
    if args.bootstrap < 0 or args.refresh < 1:
        parser.error("--bootstrap must be at least 0 and --refresh at least 1")
    return args


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    out = out or sys.stdout
    progress = Progress(quiet=args.quiet)
    try:
        if args.from_file:
            progress.step(f"reading {args.from_file}")
            entries, goal, reward = list(read_file(args.from_file)), "", None
        else:
            archive = archive_to_read(args)
            entries, goal, reward = asyncio.run(read_stream(args.redis_url or default_redis_url(), args.experiment,
                                                            progress, archive))
        reward = args.reward or reward or Reward()
        if args.export:
            progress.note(f"wrote {export(entries, args.export)} entries to {args.export}")
        goal = args.goal or goal or infer_goal(entries)
        log, report = join_log(entries, goal, reward=reward)
        if not args.policy and not args.compare:
            return 0
        if log.n == 0:
            print(f"croupier-ope: no assignments in {args.from_file or repr(args.experiment)}", file=sys.stderr)
            return 1
        rng = np.random.default_rng(args.seed)
        seen = observed(log, confidence=args.confidence)
        results: dict[str, dict[str, Estimate] | str] = {}
        reward_model = None
        if args.dr_model == "logistic":
            from croupier.router.model import fit_log
            reward_model = fit_log(log).predict_log(log.contexts, log.arms, log.n)
        comparison: list[StrategyEstimate] = []
        if args.compare:
            model = None
            if args.compare_model == "fit":
                from croupier.router.model import fit_log
                model = fit_log(log)
            elif args.compare_model == "stored" and not args.from_file:
                model = asyncio.run(read_model(args.redis_url or default_redis_url(), args.experiment))
            progress.step(f"comparing strategies on {log.n} assignments")
            comparison = compare_strategies(log, model=model, rng=rng, confidence=args.confidence,
                                            refresh=args.refresh)
        specs = [s for spec in args.policy
                 for s in ([f"fixed:{arm}" for arm in log.arms] if spec == "fixed:*" else [spec])]
        for spec in specs:
            try:
                results[spec] = estimate_policy(spec, log, rng, confidence=args.confidence,
                                                bootstrap=args.bootstrap, refresh=args.refresh,
                                                reward_model=reward_model)
            except OPEError as exc:
                results[spec] = str(exc)
    except UsageError as exc:
        print(f"croupier-ope: {exc}", file=sys.stderr)
        return 2
    except (SettingsError, OSError) as exc:
        print(f"croupier-ope: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # Redis away: say so instead of a traceback
        from croupier.router.store import StoreUnavailable
        if isinstance(exc, StoreUnavailable):
            print(f"croupier-ope: Redis is unavailable: {exc}", file=sys.stderr)
            return 1
        raise
    if args.json:
        doc = {"experiment": args.experiment, "goal": goal, "reward": reward.to_json(), "join": report.to_dict(), "observed": seen.to_dict(),
               "strategies": [e.to_dict() for e in comparison],
               "policies": {spec: {"error": r} if isinstance(r, str) else {k: e.to_dict() for k, e in r.items()}
                            for spec, r in results.items()}}
        json.dump(doc, out, indent=2)
        out.write("\n")
    else:
        if results or not comparison:
            print_table(report, goal, seen, results, out)
        if comparison:
            print_comparison(comparison, log.n, seen, out)
    return 1 if any(isinstance(r, str) for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
