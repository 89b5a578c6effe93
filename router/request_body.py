"""Bodies that come from outside (beacon events, channels API calls): read within a
size limit, parsed as a JSON object of known fields, refused with ``Rejected``,
which names the field and becomes a 4xx answer."""

from __future__ import annotations

import json
import math

from starlette.requests import Request

MAX_VALUE = 1e9  # a conversion's value, in the experiment's currency


class Rejected(Exception):
    """An outside request refused: its HTTP status, a short reason (a metric label) and a message naming the field."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def json_fields(raw: bytes, allowed: set[str]) -> dict:
    """A JSON object with no field outside ``allowed``; ``Rejected`` (400) otherwise.
    Shared by every endpoint that takes events or decisions from outside."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(400, "bad_json", "body: is not valid JSON") from None
    if not isinstance(body, dict):
        raise Rejected(400, "bad_json", "body: must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Rejected(400, "unknown_field", f"{unknown[0]}: unknown field")
    return body


def conversion_value(body: dict) -> float | None:
    """A conversion's optional ``value``: a finite number in [0, MAX_VALUE]."""
    value = body.get("value")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_VALUE:
        raise Rejected(400, "bad_value", f"value: must be a number between 0 and {MAX_VALUE:g}")
    return float(value)


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes ``limit`` bytes, declared or not."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Rejected(413, "too_large", f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "too_large", f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
