"""croupier-model: train an experiment's conversion model, list its versions, roll back, show the current one.

    croupier-model train --experiment demo                 # through the validation gate
    croupier-model train --experiment demo --force --json  # stored as current whatever the gate says
    croupier-model train --experiment demo --archive /var/lib/croupier/archive
    croupier-model versions --experiment demo              # every version with its figures
    croupier-model rollback --experiment demo --to 3
    croupier-model show --experiment demo

``train`` runs one training round (``croupier.router.model_update``): the experiment's
events (the archive, then the stream) joined into assignments and their conversions,
the candidate fitted on all but the most recent ``--holdout`` share, then judged with
the current model on that recent window (log loss and calibration, docs/model.md).
It becomes the current model only when it is better; otherwise it is stored as a
rejected version with its figures and the reason. Routers pick up a new current
model at their next snapshot refresh (for experiments with ``model_weight`` > 0), and
``POST /api/v1/predict`` answers with it. Routers retrain by themselves too
(``CROUPIER_RETRAIN_INTERVAL``); this is the manual round.

Exit codes: 0 done (a rejected candidate included: it is stored, and the output says
why), 1 no data, an unknown experiment or version, no stored model, a model that cannot
be stored, or Redis unavailable; 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from croupier.router.hybrid import decode
from croupier.router.model import ModelError
from croupier.router.model_training import HOLDOUT
from croupier.router.model_update import MAX_EVENTS, run_round
from croupier.router.settings import Settings, SettingsError
from croupier.router.store import Store, StoreUnavailable
from croupier.scripts.ope import default_redis_url
from croupier.scripts.progress import Progress


class Failed(RuntimeError):
    """The command cannot go on; the message says why."""


async def _with_store(redis_url: str, work):
    store = Store(Settings(redis_url=redis_url))
    try:
        return await work(store)
    finally:
        await store.close()


async def train(store: Store, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    return await run_round(store, args.experiment, trigger="manual", archive_dir=args.archive,
                           max_events=args.max_events, holdout=args.holdout, l2=args.l2, bits=args.bits,
                           force=args.force, shuffle_labels=args.shuffle_labels, progress=progress)


async def versions(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    if await store.get_experiment(args.experiment) is None:
        raise Failed(f"experiment {args.experiment!r} not found in the registry")
    return {"experiment": args.experiment, "versions": await store.model_records(args.experiment)}


async def rollback(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    records = {r["version"]: r for r in await store.model_records(args.experiment)}
    record = records.get(args.to)
    if record is None:
        raise Failed(f"--to: experiment {args.experiment!r} has no version {args.to} (versions: "
                     f"{', '.join(map(str, sorted(records))) or 'none'})")
    if record["status"] != "accepted":
        raise Failed(f"--to: version {args.to} was rejected by the validation gate ({record['reason']}); "
                     f"only accepted versions can be made current")
    if not await store.rollback_model(args.experiment, args.to):
        raise Failed(f"--to: version {args.to} is no longer kept (the latest accepted versions are)")
    return {"experiment": args.experiment, "current": args.to, "record": {**record, "current": True}}


async def show(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    found = await store.load_model(args.experiment)
    if found is None:
        raise Failed(f"experiment {args.experiment!r} has no stored model; train one: croupier-model train "
                     f"--experiment {args.experiment}")
    return {"experiment": args.experiment, "model": decode(found[1], found[0]).summary()}


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def print_model(doc: dict[str, Any], out: TextIO) -> None:
    model = doc["model"]
    print(f"experiment {doc['experiment']}  goal {model['goal']}  model version {model['version']}  "
          f"trained {_when(model['trained_at'])}", file=out)
    print(f"rows {model['rows']}  columns {model['columns']}  contexts {model['contexts']}", file=out)
    print(f"  {'variant':<12} {'predicted rate':>14}   sd", file=out)
    for arm, p in model["arms"].items():
        print(f"  {arm:<12} {p['rate']:>14.2%}   {p['sd']:.2%}", file=out)


def print_round(doc: dict[str, Any], out: TextIO) -> None:
    figures = doc["validation"]
    verdict = "accepted: now the current model" if doc["current"] else "rejected: the current model stays"
    print(f"experiment {doc['experiment']}  version {doc['version']} {verdict}", file=out)
    print(f"  {doc['reason']}", file=out)
    print(f"  trained on {doc['rows']['train']} assignments, validated on the latest {doc['rows']['holdout']}",
          file=out)
    print(f"  {'on the held-out window':<24} {'log loss':>9} {'ECE':>8} {'slope':>7} {'intercept':>9}", file=out)
    rows = [("candidate", figures["candidate"]), (f"current (v{figures['current_version']})", figures["current"]),
            ("base rate", figures["base_rate"])]
    for name, f in rows:
        if f is not None:
            print(f"  {name:<24} {f['log_loss']:>9.5f} {f['ece']:>8.4f} {f['slope']:>7.2f} {f['intercept']:>9.2f}",
                  file=out)
    if doc.get("live"):
        live = doc["live"]
        print(f"  live: version {live['version']} on {live['rows']} later assignments: log loss "
              f"{live['log_loss']:.5f}, ECE {live['ece']:.4f}", file=out)
    if doc["current"]:
        print_model({"experiment": doc["experiment"], "model": doc["model"]}, out)


def print_versions(doc: dict[str, Any], out: TextIO) -> None:
    print(f"experiment {doc['experiment']}: {len(doc['versions'])} versions", file=out)
    print(f"  {'ver':>4} {'status':<9} {'trigger':<9} {'trained':<19} {'rows':>7} {'log loss':>9} {'vs':>9} "
          f"{'ECE':>7} {'live':>9}", file=out)
    for r in doc["versions"]:
        v = r["validation"]
        against = v["current"] or v["base_rate"]
        live = f"{r['live']['log_loss']:.5f}" if r.get("live") else "-"
        mark = "*" if r["current"] else " "
        print(f"{mark} {r['version']:>4} {r['status']:<9} {r['trigger']:<9} {_when(r['trained_at']):<19} "
              f"{r['rows']['train']:>7} {v['candidate']['log_loss']:>9.5f} {against['log_loss']:>9.5f} "
              f"{v['candidate']['ece']:>7.4f} {live:>9}", file=out)
    print("  * current; 'vs': the model it was judged against (the current one then, or the base rate), on the "
          "same held-out window", file=out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="croupier-model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help in (("train", "fit a candidate on the experiment's events and judge it against the current"),
                       ("versions", "every stored version with its figures"),
                       ("rollback", "make an earlier accepted version the current model"),
                       ("show", "the current model's summary")):
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--experiment", default="demo")
        sub.add_argument("--redis-url", default=None, help="default: CROUPIER_REDIS_URL, else the local stack's")
        sub.add_argument("--json", action="store_true")
        if name == "train":
            sub.add_argument("--archive", type=Path, default=None, metavar="DIR",
                             help="the event archive's directory: read it before the stream")
            sub.add_argument("--holdout", type=float, default=HOLDOUT,
                             help=f"share of the latest assignments held out to validate on, default {HOLDOUT}")
            sub.add_argument("--max-events", type=int, default=MAX_EVENTS,
                             help=f"read at most the latest this many events, default {MAX_EVENTS}")
            sub.add_argument("--force", action="store_true", help="make it current even if the gate rejects it")
            sub.add_argument("--shuffle-labels", action="store_true",
                             help="fit on permuted outcomes: a model that learnt nothing, to see the gate reject it")
            sub.add_argument("--l2", type=float, default=1.0, help="L2 penalty (prior precision), default 1")
            sub.add_argument("--bits", type=int, default=18, help="hashed feature columns: 2^bits, default 18")
            sub.add_argument("--quiet", action="store_true", help="no progress on standard error")
        if name == "rollback":
            sub.add_argument("--to", type=int, required=True, metavar="N", help="the version to make current")
    args = parser.parse_args(argv)
    if args.command == "train":
        if not args.l2 > 0:
            parser.error(f"--l2 must be positive, got {args.l2}")
        if not 1 <= args.bits <= 30:
            parser.error(f"--bits must be 1-30, got {args.bits}")
        if not 0 < args.holdout < 1:
            parser.error(f"--holdout must be in (0, 1), got {args.holdout}")
        if args.max_events < 1:
            parser.error(f"--max-events must be at least 1, got {args.max_events}")
        if args.archive is not None and not args.archive.is_dir():
            parser.error(f"--archive: {args.archive} is not a directory")
    return args


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    out = out or sys.stdout
    redis_url = args.redis_url or default_redis_url()
    commands = {"train": lambda store: train(store, args, Progress(quiet=args.quiet)),
                "versions": lambda store: versions(store, args), "rollback": lambda store: rollback(store, args),
                "show": lambda store: show(store, args)}
    try:
        doc = asyncio.run(_with_store(redis_url, commands[args.command]))
    except (Failed, ModelError, SettingsError, ValueError) as exc:
        print(f"croupier-model: {exc}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        print(f"croupier-model: Redis at {redis_url} is unavailable: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(doc, out, indent=2)
        out.write("\n")
    elif args.command == "train":
        print_round(doc, out)
    elif args.command == "versions":
        print_versions(doc, out)
    elif args.command == "rollback":
        print(f"experiment {doc['experiment']}: version {doc['current']} is the current model again "
              f"(routers load it at their next refresh)", file=out)
    else:
        print_model(doc, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
