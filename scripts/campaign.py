"""Campaigns for customer lists: assign a CSV of customers to an experiment's variants, and
send their conversions back.

    croupier-campaign assign customers.csv --experiment spring-email --out assigned.csv
    croupier-campaign assign customers.csv --slot welcome-hero --channel sms --map region=country --out a.csv
    croupier-campaign convert conversions.csv --experiment spring-email

``assign`` reads the CSV (a ``customer_id`` column; columns named like context fields,
such as ``country`` or ``device``, are the customer's context, others only with
``--map column=field``), sends it to the router's batch API in chunks, and writes
``customer_id, variant, params (JSON), propensity, token, reason, error``, with a
progress bar and a summary. Run the same command again after an interruption: the
customers already in the output file are skipped, and re-sending a chunk is safe (a
customer keeps their assignment and is counted once).

``convert`` reads a CSV with ``customer_id`` or ``token`` and optionally ``goal``,
``value`` and ``id`` columns, and reports each row as a conversion; each customer's
conversion of a goal is counted once, however often it is sent.

The router and its API key: ``--url``/``--api-key``, else ``CROUPIER_URL``/
``CROUPIER_API_KEY``, else the running local stack's (run/stack.json). Exit codes: 0 done,
1 rows with errors or the router refused, 2 usage, 130 interrupted (run again to continue).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from croupier.router.context import FIELDS as CONTEXT_FIELDS
from croupier.scripts.local_stack import find_stack
from croupier.scripts.progress import Progress

OUTPUT_COLUMNS = ("customer_id", "variant", "params", "propensity", "token", "reason", "error")
ID_COLUMN = "customer_id"
CHUNK = 5000  # customers per request
RETRIES = 4  # a chunk sent again is harmless: assignments are idempotent
SHOWN_ERRORS = 5


class CampaignError(RuntimeError):
    """What stops a run, said so that the user can act on it."""


class UsageError(ValueError):
    pass


# -- where the router is ------------------------------------------------------

@dataclass(frozen=True)
class Target:
    url: str
    api_key: str


def find_target(url: str | None, api_key: str | None, stack_dir: Path | None,
                environ: dict[str, str] | None = None) -> Target:
    """The options, else the environment, else the running local stack's router and key."""
    environ = os.environ if environ is None else environ
    stack = find_stack(stack_dir)
    url = url or environ.get("CROUPIER_URL") or (stack.admin_url if stack else "http://127.0.0.1:8000")
    api_key = api_key or environ.get("CROUPIER_API_KEY") or (stack.api_key if stack else "")
    if not api_key:
        raise UsageError("no API key: pass --api-key or set CROUPIER_API_KEY (one of the router's "
                         "CROUPIER_API_KEYS), or start the local stack (make stack), whose key is used by default")
    return Target(url.rstrip("/"), api_key)


class Router:
    """The batch and conversions API over one keep-alive connection; transient failures retried."""

    def __init__(self, target: Target, *, timeout: float = 120.0, transport: httpx.BaseTransport | None = None,
                 sleep=time.sleep) -> None:
        self.target, self.sleep = target, sleep
        self.http = httpx.Client(base_url=f"{target.url}/api/v1", timeout=timeout, transport=transport,
                                 headers={"Authorization": f"Bearer {target.api_key}"})

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, **kwargs) -> httpx.Response:
        for attempt in range(RETRIES + 1):
            try:
                response = self.http.post(path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == RETRIES:
                    raise CampaignError(f"cannot reach the router at {self.target.url} ({exc}); is it running? "
                                        f"(--url or CROUPIER_URL)") from None
            else:
                if response.status_code not in (502, 503, 504) or attempt == RETRIES:
                    return response
            self.sleep(min(0.5 * 2 ** attempt, 5.0))
        raise AssertionError("unreachable")

    @staticmethod
    def refused(response: httpx.Response) -> CampaignError:
        try:
            message = response.json().get("error")
        except (ValueError, AttributeError):
            message = None
        hint = " (check --api-key or CROUPIER_API_KEY)" if response.status_code == 401 else ""
        return CampaignError(f"the router refused the request: {message or f'HTTP {response.status_code}'}{hint}")

    def assign(self, query: dict[str, str], lines: list[str]) -> list[dict]:
        response = self.post("/batches/assign", params=query, content="".join(lines).encode(),
                             headers={"Content-Type": "application/x-ndjson"})
        if response.status_code != 200:
            raise self.refused(response)
        answers = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        if answers and answers[-1].get("reason") == "unavailable":
            raise CampaignError(f"the router lost Redis mid-chunk: {answers[-1]['error']}; run the same command "
                                f"again to continue")
        if len(answers) != len(lines):
            raise CampaignError(f"the router answered {len(answers)} lines for {len(lines)} customers")
        return answers

    def convert(self, body: dict) -> httpx.Response:
        return self.post("/conversions", json=body)


# -- reading the list ---------------------------------------------------------

def parse_maps(values: Sequence[str]) -> dict[str, str]:
    """``--map column=field`` options: column → context field."""
    out = {}
    for value in values:
        column, sep, name = value.partition("=")
        if not sep or not column or not name:
            raise UsageError(f"--map {value!r}: must be column=field, e.g. --map region=country")
        if name not in CONTEXT_FIELDS:
            raise UsageError(f"--map {value!r}: {name!r} is not a context field (one of {', '.join(CONTEXT_FIELDS)})")
        out[column] = name
    return out


def context_columns(header: Sequence[str], maps: dict[str, str]) -> dict[str, str]:
    """Column → context field: the ``--map`` ones, and the columns named like a context field."""
    missing = [column for column in maps if column not in header]
    if missing:
        raise UsageError(f"--map: the CSV has no column {missing[0]!r} (its columns: {', '.join(header)})")
    found = {column: column for column in header if column in CONTEXT_FIELDS}
    found.update(maps)
    return found


@dataclass
class Row:
    number: int  # the CSV's line number (the header is line 1)
    customer: str
    context: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        doc: dict = {"customer_id": self.customer}
        if self.context:
            doc["context"] = self.context
        return json.dumps(doc, separators=(",", ":")) + "\n"


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A CSV file's header and its records with their line numbers (for errors that name them)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), [(reader.line_num, record) for record in reader]


def read_customers(path: Path, maps: dict[str, str]) -> tuple[list[Row], list[str]]:
    """The list's rows, and the columns neither the id nor context (ignored)."""
    header, records = read_csv(path)
    if ID_COLUMN not in header:
        raise UsageError(f"{path}: no {ID_COLUMN!r} column (its columns: {', '.join(header) or 'none'})")
    columns = context_columns(header, maps)
    ignored = [c for c in header if c != ID_COLUMN and c not in columns]
    rows = [Row(number, (record.get(ID_COLUMN) or "").strip(),
                {name: value.strip() for column, name in columns.items()
                 if (value := record.get(column)) and value.strip()})
            for number, record in records]
    return rows, ignored


def done_customers(out: Path) -> set[str]:
    """The customers an earlier run already wrote to ``out`` (skipped: the run continues)."""
    if not out.exists() or out.stat().st_size == 0:
        return set()
    with out.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != list(OUTPUT_COLUMNS):
            raise UsageError(f"--out {out}: exists and is not an output of croupier-campaign assign "
                             f"(columns {', '.join(OUTPUT_COLUMNS)}); choose another file")
        return {record["customer_id"] for record in reader}


# -- assign -------------------------------------------------------------------

@dataclass
class Summary:
    variants: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    skipped: int = 0
    what: str = "assigned {} customer(s)"

    def lines(self) -> Iterator[str]:
        total = sum(self.variants.values())
        yield self.what.format(total) + (f", skipped {self.skipped} already in the output" if self.skipped
                                                  else "")
        for variant, n in sorted(self.variants.items()):
            yield f"  {variant:<24} {n:>9}  {n / total:6.1%}" if total else f"  {variant}"
        if self.reasons:
            yield "  " + ", ".join(f"{reason} {n}" for reason, n in sorted(self.reasons.items()))
        if self.errors:
            yield f"{len(self.errors)} row(s) not assigned:"
            yield from (f"  {e}" for e in self.errors[:SHOWN_ERRORS])
            if len(self.errors) > SHOWN_ERRORS:
                yield f"  ... and {len(self.errors) - SHOWN_ERRORS} more (the error column of the output)"


def output_row(row: Row, answer: dict) -> tuple[list[str], str | None]:
    """The output line of one customer, and the error to report (None when assigned)."""
    if answer.get("variant") is None:
        message = answer.get("error") or "not assigned"
        message = message.replace(f"line {answer.get('line')}", "the line") if answer.get("line") else message
        return [row.customer, "", "", "", "", answer.get("reason", ""), message], \
            f"row {row.number} ({row.customer or 'no customer_id'}): {message}"
    return [row.customer, answer["variant"], json.dumps(answer.get("params", {}), separators=(",", ":")),
            repr(answer["propensity"]), answer.get("token") or "", answer["reason"], ""], None


def assign(args: argparse.Namespace, router: Router, progress: Progress) -> Summary:
    rows, ignored = read_customers(args.customers, parse_maps(args.map))
    if ignored:
        progress.note(f"columns not used (neither {ID_COLUMN} nor a context field; --map to use one): "
                      f"{', '.join(ignored)}")
    done = done_customers(args.out)
    todo = [r for r in rows if r.customer not in done or not r.customer]
    summary = Summary(skipped=len(rows) - len(todo))
    if summary.skipped:
        progress.note(f"{summary.skipped} customer(s) already in {args.out}: continuing with the other {len(todo)}")
    query = {"experiment": args.experiment} if args.experiment else {"slot": args.slot}
    if args.channel:
        query["channel"] = args.channel
    new_file = not args.out.exists() or args.out.stat().st_size == 0
    with args.out.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(OUTPUT_COLUMNS)
            handle.flush()
        bar = progress.bar("assigning", max(len(todo), 1))
        sent = 0
        for start in range(0, len(todo), args.chunk):
            chunk = todo[start:start + args.chunk]
            answers = router.assign(query, [r.line() for r in chunk])
            for row, answer in zip(chunk, answers):
                line, error = output_row(row, answer)
                writer.writerow(line)
                if error:
                    summary.errors.append(error)
                else:
                    summary.variants[answer["variant"]] += 1
                    summary.reasons[answer["reason"]] += 1
            handle.flush()  # an interrupted run keeps every chunk written: the next run skips them
            sent += len(chunk)
            bar.update(sent)
        bar.close()
    return summary


# -- convert ------------------------------------------------------------------

def convert(args: argparse.Namespace, router: Router, progress: Progress) -> Summary:
    path = args.conversions
    header, rows = read_csv(path)
    if "customer_id" not in header and "token" not in header:
        raise UsageError(f"{path}: needs a customer_id or a token column (its columns: {', '.join(header)})")
    summary = Summary(what="sent {} conversion(s), by variant")
    target = {"experiment": args.experiment} if args.experiment else {"slot": args.slot}
    bar = progress.bar("converting", max(len(rows), 1))
    for i, (number, record) in enumerate(rows, 1):
        body = dict(target)
        if (record.get("token") or "").strip():
            body["token"] = record["token"].strip()
        else:
            body["customer_id"] = (record.get("customer_id") or "").strip()
        for name in ("goal", "id"):
            if (record.get(name) or "").strip():
                body[name] = record[name].strip()
        if args.goal and "goal" not in body:
            body["goal"] = args.goal
        value = (record.get("value") or "").strip()
        try:
            if value:
                body["value"] = float(value)
        except ValueError:
            summary.errors.append(f"row {number}: value: must be a number, got {value!r}")
            continue
        response = router.convert(body)
        if response.status_code == 202:
            summary.reasons["counted" if response.json()["counted"] else "already counted"] += 1
            summary.variants[response.json()["variant"]] += 1
        elif response.status_code in (401, 403) and not summary.reasons:
            raise router.refused(response)
        else:
            summary.errors.append(f"row {number} ({body.get('customer_id') or 'token'}): "
                                  f"{router.refused(response).args[0].removeprefix('the router refused the request: ')}")
        bar.update(i)
    bar.close()
    return summary


# -- the command line -----------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="croupier-campaign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    which = common.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", help="the experiment's id")
    which.add_argument("--slot", help="one of your experiments' slots, instead of its id")
    common.add_argument("--url", help="the router (default: CROUPIER_URL, else the local stack's)")
    common.add_argument("--api-key", help="an API key of the router (default: CROUPIER_API_KEY, else the local "
                                          "stack's)")
    common.add_argument("--stack-dir", type=Path, help="the local stack's run directory (default run/)")
    common.add_argument("--quiet", action="store_true", help="no progress on standard error")
    commands = parser.add_subparsers(dest="command", required=True)
    a = commands.add_parser("assign", parents=[common], help="assign a CSV of customers to variants")
    a.add_argument("customers", type=Path, help="CSV with a customer_id column (and context columns)")
    a.add_argument("--out", type=Path, required=True, help="the output CSV (appended to when it exists: a run "
                                                           "continues where it stopped)")
    a.add_argument("--channel", help="email, sms, app, ... (logged with every assignment)")
    a.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                   help="use a column as a context field (e.g. region=country); repeatable")
    a.add_argument("--chunk", type=int, default=CHUNK, help=f"customers per request (default {CHUNK})")
    c = commands.add_parser("convert", parents=[common], help="send conversions of a CSV back")
    c.add_argument("conversions", type=Path, help="CSV with customer_id or token (and goal, value, id) columns")
    c.add_argument("--goal", help="the goal of rows without a goal column (default: the experiment's goal)")
    args = parser.parse_args(argv)
    if args.command == "assign" and not 1 <= args.chunk <= 100_000:
        parser.error("--chunk must be between 1 and 100000")
    return args


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress(quiet=args.quiet)
    router = None
    summary: Summary | None = None
    try:
        router = Router(find_target(args.url, args.api_key, args.stack_dir, environ))
        summary = assign(args, router, progress) if args.command == "assign" else convert(args, router, progress)
    except UsageError as exc:
        print(f"croupier-campaign: {exc}", file=sys.stderr)
        return 2
    except CampaignError as exc:
        print(f"croupier-campaign: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue where it stopped", file=sys.stderr)
        return 130
    finally:
        if router is not None:
            router.close()
    for line in summary.lines():
        print(line)
    return 1 if summary.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
