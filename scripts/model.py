"""croupier-model: train an experiment's conversion model on its event stream and store it for the routers.

    python -m croupier.scripts.model train --experiment demo
    python -m croupier.scripts.model train --experiment demo --json --l2 0.5
    python -m croupier.scripts.model show --experiment demo

``train`` joins the experiment's assignments with their conversions of its goal
(``croupier.router.ope.join_log``), fits the logistic conversion model (``croupier.router.model``)
on them, and saves it in Redis as the experiment's model, with a new version.
Routers pick it up at their next snapshot refresh for experiments whose
``model_weight`` is above 0; the admin API serves it at
``/api/v1/experiments/<id>/model`` and suggests new variants' priors from it.

Exit codes: 0 done, 1 no data, an unknown experiment, no stored model (show), a
model that cannot be stored, or Redis unavailable; 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, TextIO

from croupier.router.hybrid import decode, encode
from croupier.router.model import ModelError, fit_log
from croupier.router.ope import join_log
from croupier.router.settings import Settings, SettingsError
from croupier.router.store import Store, StoreUnavailable
from croupier.scripts.ope import default_redis_url, read_stream
from croupier.scripts.progress import Progress


class Failed(RuntimeError):
    """The command cannot go on; the message says why."""


async def train(redis_url: str, experiment: str, progress: Progress, *, l2: float, bits: int) -> dict[str, Any]:
    entries, goal, _ = await read_stream(redis_url, experiment, progress)  # the model predicts conversions
    if not goal:
        raise Failed(f"experiment {experiment!r} not found in the registry")
    log, report = join_log(entries, goal)
    if log.n == 0:
        raise Failed(f"experiment {experiment!r} has no assignments in its event stream to train on")
    progress.step(f"fitting on {log.n} assignments, {report.attributed} conversions of {goal!r}")
    model = fit_log(log, l2=l2, bits=bits)
    doc = encode(model, goal=goal, trained_at=round(time.time(), 3), contexts=log.contexts)
    store = Store(Settings(redis_url=redis_url))
    try:
        version = await store.save_model(experiment, doc)
    finally:
        await store.close()
    return {"experiment": experiment, "join": report.to_dict(), "model": decode(doc, version).summary()}


async def show(redis_url: str, experiment: str) -> dict[str, Any]:
    store = Store(Settings(redis_url=redis_url))
    try:
        found = await store.load_model(experiment)
    finally:
        await store.close()
    if found is None:
        raise Failed(f"experiment {experiment!r} has no stored model; train one: croupier-model train "
                     f"--experiment {experiment}")
    return {"experiment": experiment, "model": decode(found[1], found[0]).summary()}


def print_summary(doc: dict[str, Any], out: TextIO) -> None:
    model = doc["model"]
    trained = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(model["trained_at"]))
    print(f"experiment {doc['experiment']}  goal {model['goal']}  model version {model['version']}  "
          f"trained {trained}", file=out)
    line = f"rows {model['rows']}"
    if "join" in doc:
        line += f" ({doc['join']['attributed']} conversions attributed)"
    print(f"{line}  columns {model['columns']}  contexts {model['contexts']}", file=out)
    print(f"  {'variant':<12} {'predicted rate':>14}   sd", file=out)
    for arm, p in model["arms"].items():
        print(f"  {arm:<12} {p['rate']:>14.2%}   {p['sd']:.2%}", file=out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="croupier-model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help in (("train", "fit the model on the experiment's event stream and store it"),
                       ("show", "the stored model's summary")):
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--experiment", default="demo")
        sub.add_argument("--redis-url", default=None, help="default: CROUPIER_REDIS_URL, else the local stack's")
        sub.add_argument("--json", action="store_true")
        if name == "train":
            sub.add_argument("--l2", type=float, default=1.0, help="L2 penalty (prior precision), default 1")
            sub.add_argument("--bits", type=int, default=18, help="hashed feature columns: 2^bits, default 18")
            sub.add_argument("--quiet", action="store_true", help="no progress on standard error")
    args = parser.parse_args(argv)
    if args.command == "train" and not args.l2 > 0:
        parser.error(f"--l2 must be positive, got {args.l2}")
    if args.command == "train" and not 1 <= args.bits <= 30:
        parser.error(f"--bits must be 1-30, got {args.bits}")
    return args


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    out = out or sys.stdout
    redis_url = args.redis_url or default_redis_url()
    try:
        if args.command == "train":
            doc = asyncio.run(train(redis_url, args.experiment, Progress(quiet=args.quiet), l2=args.l2,
                                    bits=args.bits))
        else:
            doc = asyncio.run(show(redis_url, args.experiment))
    except (Failed, ModelError, SettingsError, ValueError) as exc:
        print(f"croupier-model: {exc}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        print(f"croupier-model: Redis at {redis_url} is unavailable: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(doc, out, indent=2)
        out.write("\n")
    else:
        print_summary(doc, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
