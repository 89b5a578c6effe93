"""A customer list as the batch API takes it: JSON lines, one customer a line. Pure.

    {"customer_id": "c-1001", "context": {"country": "fr", "device": "mobile"}}

``context`` is optional and has the channels API's fields (``router/channels.py``).
A bad line is not fatal: it becomes a ``LineError`` naming its line number and field,
and is answered in its place, so the rest of the list is assigned.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from croupier.router import rules
from croupier.router.channels import parse_context
from croupier.router.context import Context
from croupier.router.request_body import Rejected

LINE_FIELDS = {"customer_id", "context"}
CHUNK = 2000  # customers per claim script call: one round trip, Redis held ~10 ms at most
MAX_LINE = 4096  # bytes


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based, over the whole list
    customer: str
    context: Context | None = None


@dataclass(frozen=True, slots=True)
class LineError:
    number: int
    field: str | None  # the field at fault; None: the line as a whole
    message: str  # "<field>: <what is wrong>"

    def json(self) -> str:
        return json.dumps({"line": self.number, "error": self.message, "field": self.field}) + "\n"


def parse_line(number: int, text: str | bytes) -> Line | LineError:
    if len(text) > MAX_LINE:
        return LineError(number, None, f"line {number}: longer than {MAX_LINE} bytes")
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return LineError(number, None, f"line {number}: not valid JSON")
    return checked_line(number, doc)


def checked_line(number: int, doc: object) -> Line | LineError:
    if not isinstance(doc, dict):
        return LineError(number, None, f"line {number}: must be a JSON object")
    unknown = sorted(set(doc) - LINE_FIELDS)
    if unknown:
        return LineError(number, unknown[0], f"{unknown[0]}: unknown field (a line has customer_id and context)")
    customer = doc.get("customer_id")
    if isinstance(customer, int) and not isinstance(customer, bool):
        customer = str(customer)  # numeric ids from a CSV or a database
    if customer is None:
        return LineError(number, "customer_id", "customer_id: is required")
    if not rules.CUSTOMER.ok(customer):
        return LineError(number, "customer_id", rules.CUSTOMER.error("customer_id"))
    context = doc.get("context")
    if context is None:
        return Line(number, customer)
    try:
        return Line(number, customer, parse_context(context))
    except Rejected as exc:
        return LineError(number, "context", exc.message)


def parse_lines(lines: Iterable[str | bytes], first: int = 1) -> list[Line | LineError]:
    """Each non-blank line parsed; numbers count blank lines too, from ``first``."""
    numbered = [(number, text) for number, text in enumerate(lines, first) if text.strip()]
    if not numbered:
        return []
    texts = [text for _, text in numbered]
    docs = None
    if all(len(t) <= MAX_LINE for t in texts):
        # the whole chunk as one JSON array: one call into the C parser instead of one per
        # line (a third of a chunk's time when profiled); any doubt, and each line on its own
        joined = b"[" + b",".join(texts) + b"]" if isinstance(texts[0], bytes) else "[" + ",".join(texts) + "]"
        try:
            docs = json.loads(joined)
        except (ValueError, TypeError, UnicodeDecodeError):
            docs = None
    if docs is None or len(docs) != len(numbered):  # a bad line, or one holding two values
        return [parse_line(number, text) for number, text in numbered]
    return [checked_line(number, doc) for (number, _), doc in zip(numbered, docs)]


def chunks(body: bytes, size: int = CHUNK) -> Iterator[tuple[int, list[bytes]]]:
    """The body's lines, ``size`` at a time, each with the number of its first line."""
    lines = body.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()
    for start in range(0, len(lines), size):
        yield start + 1, lines[start:start + size]
