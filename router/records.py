"""The registry's shared parsing pieces: the error, the field checks and the variant record.

``experiments.py`` builds experiments from these; ``factors.py`` parses a factorial
declaration with them. Standard library only, like ``rules.py``: the variant server's
image copies this file (with ``rules.py`` and ``factors.py``) to read the same
declaration a marketer posts, without the router's dependencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from croupier.router.rules import ID, UPSTREAM, Rule

VARIANT_STATUSES = ("active", "paused")
VARIANT_FIELDS = {"id", "upstream", "status", "name", "prior_alpha", "prior_beta", "params", "capacity"}
MAX_CAPACITY = 1_000_000_000
MAX_PARAMS_BYTES = 8192


class InvalidExperiment(ValueError):
    """Bad input for an experiment or variant; the message names the field."""


@dataclass(frozen=True, slots=True)  # slots: a factorial experiment holds up to 16,384 of them
class Variant:
    id: str
    upstream: str
    status: str = "active"
    name: str = ""
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    # at most this many assignments ever get it (web, channels and batches together); None: no limit
    capacity: int | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"


def check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidExperiment(message)


def number(data: dict, name: str, default: float, lo: float, hi: float, *, label: str) -> float:
    value = data.get(name, default)
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
          f"{label}: must be a number")
    check(lo <= value <= hi, f"{label}: must be between {lo} and {hi}")
    return float(value)


def string(data: dict, name: str, default: str, rule: Rule | None, *, label: str,
           allow_empty: bool = False, max_len: int = 200) -> str:
    value = data.get(name, default)
    check(isinstance(value, str), f"{label}: must be a string")
    if value == "" and allow_empty:
        return value
    check(len(value) <= max_len, f"{label}: must be at most {max_len} characters")
    if rule is not None:
        check(rule.ok(value), f"{rule.error(label)}, got {value!r}")
    return value


def known_keys(data: Any, allowed: set[str], label: str) -> None:
    check(isinstance(data, dict), f"{label}: must be a JSON object")
    unknown = sorted(set(data) - allowed)
    check(not unknown, f"{label}{'.' if label else ''}{unknown[0] if unknown else ''}: unknown field")


def params_object(value: Any, label: str) -> dict[str, Any]:
    """Content parameters (a variant's, or a level's fragment of them): a JSON object the
    registry can hold."""
    check(isinstance(value, dict), f"{label}: must be a JSON object")
    check(len(repr(value)) <= MAX_PARAMS_BYTES, f"{label}: larger than {MAX_PARAMS_BYTES} bytes")
    return value


def parse_variant(data: Any, label: str = "variant") -> Variant:
    known_keys(data, VARIANT_FIELDS, label)
    check("id" in data, f"{label}.id: is required")
    check(ID.ok(data["id"]), ID.error(f"{label}.id"))
    check("upstream" in data, f"{label}.upstream: is required")
    params = params_object(data.get("params", {}), f"{label}.params")
    status = data.get("status", "active")
    check(status in VARIANT_STATUSES, f"{label}.status: must be one of {', '.join(VARIANT_STATUSES)}")
    return Variant(
        id=data["id"],
        upstream=string(data, "upstream", "", UPSTREAM, label=f"{label}.upstream"),
        status=status,
        name=string(data, "name", "", None, label=f"{label}.name", allow_empty=True),
        prior_alpha=number(data, "prior_alpha", 1.0, 1e-3, 1e6, label=f"{label}.prior_alpha"),
        prior_beta=number(data, "prior_beta", 1.0, 1e-3, 1e6, label=f"{label}.prior_beta"),
        params=params,
        capacity=capacity(data.get("capacity"), f"{label}.capacity"),
    )


def capacity(value: Any, label: str) -> int | None:
    """A variant's capacity: a whole number of assignments, or null for none."""
    if value is None:
        return None
    check(isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_CAPACITY,
          f"{label}: must be a whole number of assignments between 1 and {MAX_CAPACITY}, or null for no limit")
    return value
