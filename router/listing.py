"""One page of the experiments list: the query, its filter and order, and the cursor.

Pure: no I/O. The admin API hands in the registry and each experiment's live totals
(from the snapshot's counters); this module filters, orders and cuts the page.

Order: ascending by ``(key, id)`` where the key is the sort field; ``desc`` is the exact
reverse. The cursor is the ``(key, id)`` of the last row served, with the sort and order
it belongs to, base64url-encoded JSON. A page starts right after that position, wherever
it now falls, so experiments added or removed between pages shift nothing: every
experiment present throughout is served exactly once. (A row whose key moves across the
position meanwhile, e.g. trials growing under ``sort=trials``, may be missed or repeated;
``sort=id`` is immune.)
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from croupier.router.experiments import EXPERIMENT_STATUSES, Experiment, InvalidExperiment
from croupier.router.rules import ID

SORTS = ("id", "trials", "rate", "updated")
ORDERS = ("asc", "desc")
DEFAULT_LIMIT = 50  # a page when a cursor comes without a limit
MAX_LIMIT = 500
MAX_QUERY = 200
MAX_CURSOR = 1000
PARAMETERS = ("limit", "cursor", "status", "tenant", "q", "sort", "order")

Live = Callable[[Experiment], "Totals"]


class Totals(NamedTuple):  # a tuple: made 10,000 times for a sort by trials
    """An experiment's trials and conversions of its goal, summed over its variants."""

    trials: int = 0
    conversions: int = 0

    @property
    def rate(self) -> float:
        return self.conversions / self.trials if self.trials else 0.0


NONE = Totals()


def totals(experiment: Experiment, counters: Mapping[str, Mapping[str, float]]) -> Totals:
    """``counters``: the experiment's per-variant counters (the snapshot's), possibly empty.
    A plain loop: sorting 10,000 experiments by trials calls this for each of them."""
    if not counters:
        return NONE
    goal, trials, conversions = f"conv:{experiment.goal}", 0.0, 0.0
    for variant in experiment.variants:
        found = counters.get(variant.id)
        if found:
            trials += found.get("trials", 0.0)
            conversions += found.get(goal, 0.0)
    return Totals(int(trials), int(conversions))


@dataclass(frozen=True)
class Query:
    sort: str = "id"
    order: str = "asc"
    limit: int | None = None  # None: the whole list in one answer (what callers got before pages)
    after: tuple[float | str, str] | None = None  # the cursor's (key, id)
    status: str = ""
    tenant: str | None = None  # None: every tenant; '': the default tenant
    q: str = ""


def _bad(name: str, message: str) -> InvalidExperiment:
    return InvalidExperiment(f"{name}: {message}")


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name, ())
    if len(values) > 1:
        raise _bad(name, "give it once")
    return values[0] if values else None


def _choice(value: str | None, name: str, allowed: Sequence[str]) -> str | None:
    if value is not None and value not in allowed:
        raise _bad(name, f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


def parse_query(params: Mapping[str, Sequence[str]]) -> Query:
    """The list's query from its parameters (name → every value given); errors name the parameter."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise _bad(unknown[0], f"unknown query parameter (known: {', '.join(PARAMETERS)})")
    one = {name: _single(params, name) for name in PARAMETERS}
    cursor = decode_cursor(one["cursor"]) if one["cursor"] is not None else None
    sort = _choice(one["sort"], "sort", SORTS) or (cursor[0] if cursor else "id")
    # the most useful first: ids a→z, the busiest, best-converting and latest changed first
    order = _choice(one["order"], "order", ORDERS) or (cursor[1] if cursor else "asc" if sort == "id" else "desc")
    if cursor and cursor[:2] != (sort, order):
        raise _bad("cursor", f"belongs to sort={cursor[0]}&order={cursor[1]}, not sort={sort}&order={order}; "
                             f"start again without a cursor")
    q = one["q"] or ""
    if len(q) > MAX_QUERY:
        raise _bad("q", f"must be at most {MAX_QUERY} characters")
    return Query(sort=sort, order=order, limit=_limit(one["limit"], paging=cursor is not None),
                 after=cursor[2:] if cursor else None, q=q, tenant=_tenant(one["tenant"]),
                 status=_choice(one["status"], "status", EXPERIMENT_STATUSES) or "")


def _limit(raw: str | None, paging: bool) -> int | None:
    if raw is None:
        return DEFAULT_LIMIT if paging else None
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT):
        raise _bad("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


def _tenant(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not ID.ok(raw):
        raise InvalidExperiment(ID.error("tenant") + " ('default': the experiments without a tenant)")
    return "" if raw == "default" else raw


# -- the cursor -----------------------------------------------------------------

def encode_cursor(sort: str, order: str, key: float | str, exp_id: str) -> str:
    raw = json.dumps([sort, order, key, exp_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[str, str, float | str, str]:
    """The cursor's sort, order, key and id; ``cursor:`` errors for anything this API did not issue."""
    refused = _bad("cursor", "is not a cursor this API issued; use next_cursor from the last page as it is")
    if len(text) > MAX_CURSOR:
        raise refused
    try:
        doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise refused from None
    if not (isinstance(doc, list) and len(doc) == 4 and doc[0] in SORTS and doc[1] in ORDERS
            and isinstance(doc[3], str) and _key_fits(doc[0], doc[2])):
        raise refused
    return doc[0], doc[1], doc[2], doc[3]


def _key_fits(sort: str, key: object) -> bool:
    if sort == "id":
        return isinstance(key, str)
    return isinstance(key, (int, float)) and not isinstance(key, bool)


# -- filter, order, page ------------------------------------------------------------

def matches(experiment: Experiment, query: Query) -> bool:
    if query.status and experiment.status != query.status:
        return False
    if query.tenant is not None and experiment.tenant != query.tenant:
        return False
    if query.q:
        prefix = query.q.casefold()
        return experiment.id.startswith(prefix) or experiment.name.casefold().startswith(prefix)
    return True


def _key(sort: str, experiment: Experiment, live: Live) -> float | str:
    if sort == "id":
        return experiment.id
    if sort == "updated":
        return experiment.updated_at
    found = live(experiment)
    return found.trials if sort == "trials" else found.rate


@dataclass(frozen=True)
class Page:
    experiments: list[Experiment]
    next_cursor: str | None
    total: int  # experiments matching the filter, on every page


def select(experiments: Sequence[Experiment], query: Query, live: Live) -> Page:
    """The page of ``experiments`` that ``query`` asks for. ``live`` is called only where the
    order needs it (sort by trials or rate) and never for a filtered-out experiment."""
    keyed = sorted((((_key(query.sort, e, live), e.id), e) for e in experiments if matches(e, query)),
                   key=lambda pair: pair[0])
    keys = [k for k, _ in keyed]
    if query.order == "asc":
        start = bisect_right(keys, query.after) if query.after else 0
        end = len(keyed) if query.limit is None else min(len(keyed), start + query.limit)
        chosen, more = keyed[start:end], end < len(keyed)
    else:
        end = bisect_left(keys, query.after) if query.after else len(keyed)
        start = 0 if query.limit is None else max(0, end - query.limit)
        chosen, more = keyed[start:end][::-1], start > 0
    cursor = encode_cursor(query.sort, query.order, *chosen[-1][0]) if more and chosen else None
    return Page([e for _, e in chosen], cursor, len(keyed))
