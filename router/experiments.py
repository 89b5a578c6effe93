"""Experiments and variants: the registry's records, validated.

Pure: parsing and validation only. Every error is an ``InvalidExperiment`` whose
message starts with the field it is about, so the admin API can answer 422 with
something a marketer can act on.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from croupier.router.context import FIELDS as CONTEXT_FIELDS
from croupier.router.policies import PolicyError, make_policy
from croupier.router.rules import GOAL, ID, UPSTREAM, Rule
from croupier.router.segments import MAX_KEYS as MAX_SEGMENT_KEYS

EXPERIMENT_STATUSES = ("running", "paused", "ended")
VARIANT_STATUSES = ("active", "paused")
# An upstream (croupier.router.rules.UPSTREAM) is only proxied to when NGINX allowlists it, but
# refusing junk here keeps the registry clean.
_HOST = Rule(re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"),
             "must be a host name without a port (lowercase letters, digits, '-' and '.')")
_PATH_PREFIX = Rule(re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,200}"),
                    "must start with '/' and hold only characters a URL path may")
MAX_VARIANTS = 32
MAX_PARAMS_BYTES = 8192


class InvalidExperiment(ValueError):
    """Bad input for an experiment or variant; the message names the field."""


@dataclass(frozen=True)
class Variant:
    id: str
    upstream: str
    status: str = "active"
    name: str = ""
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class Experiment:
    id: str
    variants: tuple[Variant, ...]
    control: str
    name: str = ""
    host: str = ""  # empty: any host
    path_prefix: str = "/"
    goal: str = "signup"
    status: str = "running"
    winner: str = ""
    policy: str = "thompson"
    policy_params: dict[str, Any] = field(default_factory=dict)
    min_share: float = 0.01
    burn_in: int = 0
    holdout: float = 0.0
    tenant: str = ""  # '' is the default tenant; an API key acts only on its tenant's experiments
    slots: tuple[str, ...] = ()  # names the channels API may use instead of the id (unique per tenant)
    segment_keys: tuple[str, ...] = ()  # context fields whose values split visitors into segments
    model_weight: float = 0.0  # 0: the bandit alone; (0, 1]: the trained conversion model's share in its priors
    # seconds since the epoch of the last change through the admin API, which alone sets it;
    # 0: not known (stored before the field was kept)
    updated_at: float = 0.0

    def variant(self, variant_id: str) -> Variant | None:
        return next((v for v in self.variants if v.id == variant_id), None)

    @property
    def control_variant(self) -> Variant:
        found = self.variant(self.control)
        assert found is not None  # guaranteed by validation
        return found

    @property
    def active_variants(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if v.active)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["variants"] = [asdict(v) for v in self.variants]
        data["slots"] = list(self.slots)
        data["segment_keys"] = list(self.segment_keys)
        return data


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidExperiment(message)


def _number(data: dict, name: str, default: float, lo: float, hi: float, *, label: str) -> float:
    value = data.get(name, default)
    _check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
           f"{label}: must be a number")
    _check(lo <= value <= hi, f"{label}: must be between {lo} and {hi}")
    return float(value)


def _string(data: dict, name: str, default: str, rule: Rule | None, *, label: str,
            allow_empty: bool = False, max_len: int = 200) -> str:
    value = data.get(name, default)
    _check(isinstance(value, str), f"{label}: must be a string")
    if value == "" and allow_empty:
        return value
    _check(len(value) <= max_len, f"{label}: must be at most {max_len} characters")
    if rule is not None:
        _check(rule.ok(value), f"{rule.error(label)}, got {value!r}")
    return value


def _known_keys(data: Any, allowed: set[str], label: str) -> None:
    _check(isinstance(data, dict), f"{label}: must be a JSON object")
    unknown = sorted(set(data) - allowed)
    _check(not unknown, f"{label}{'.' if label else ''}{unknown[0] if unknown else ''}: unknown field")


VARIANT_FIELDS = {"id", "upstream", "status", "name", "prior_alpha", "prior_beta", "params"}
EXPERIMENT_FIELDS = {"id", "variants", "control", "name", "host", "path_prefix", "goal", "status",
                     "winner", "policy", "policy_params", "min_share", "burn_in", "holdout", "tenant", "slots",
                     "segment_keys", "model_weight"}
# Set by the server on every write: read back from the registry, refused from clients.
SERVER_FIELDS = {"updated_at"}
MAX_SLOTS = 16


def parse_variant(data: Any, label: str = "variant") -> Variant:
    _known_keys(data, VARIANT_FIELDS, label)
    _check("id" in data, f"{label}.id: is required")
    _check(ID.ok(data["id"]), ID.error(f"{label}.id"))
    _check("upstream" in data, f"{label}.upstream: is required")
    params = data.get("params", {})
    _check(isinstance(params, dict), f"{label}.params: must be a JSON object")
    _check(len(repr(params)) <= MAX_PARAMS_BYTES, f"{label}.params: larger than {MAX_PARAMS_BYTES} bytes")
    status = data.get("status", "active")
    _check(status in VARIANT_STATUSES, f"{label}.status: must be one of {', '.join(VARIANT_STATUSES)}")
    return Variant(
        id=data["id"],
        upstream=_string(data, "upstream", "", UPSTREAM, label=f"{label}.upstream"),
        status=status,
        name=_string(data, "name", "", None, label=f"{label}.name", allow_empty=True),
        prior_alpha=_number(data, "prior_alpha", 1.0, 1e-3, 1e6, label=f"{label}.prior_alpha"),
        prior_beta=_number(data, "prior_beta", 1.0, 1e-3, 1e6, label=f"{label}.prior_beta"),
        params=params,
    )


def parse_experiment(data: Any) -> Experiment:
    """An experiment as the registry stores it (server fields included); a client's input
    goes through ``parse_new_experiment`` or ``merge``."""
    _known_keys(data, EXPERIMENT_FIELDS | SERVER_FIELDS, "")
    _check("id" in data, "id: is required")
    _check(ID.ok(data["id"]), ID.error("id"))
    raw_variants = data.get("variants")
    _check(isinstance(raw_variants, list) and raw_variants, "variants: must be a non-empty list")
    _check(len(raw_variants) <= MAX_VARIANTS, f"variants: at most {MAX_VARIANTS}")
    variants = tuple(parse_variant(v, f"variants[{i}]") for i, v in enumerate(raw_variants))
    ids = [v.id for v in variants]
    _check(len(set(ids)) == len(ids), "variants: ids must be unique")
    control = data.get("control", ids[0])
    _check(control in ids, f"control: {control!r} is not one of the variants")
    status = data.get("status", "running")
    _check(status in EXPERIMENT_STATUSES, f"status: must be one of {', '.join(EXPERIMENT_STATUSES)}")
    winner = data.get("winner", "")
    _check(winner == "" or winner in ids, f"winner: {winner!r} is not one of the variants")
    _check(status != "ended" or winner != "", "winner: an ended experiment needs a winner")
    burn_in = data.get("burn_in", 0)
    _check(isinstance(burn_in, int) and not isinstance(burn_in, bool) and 0 <= burn_in <= 10_000_000,
           "burn_in: must be an integer between 0 and 10000000")
    policy = data.get("policy", "thompson")
    policy_params = data.get("policy_params", {})
    _check(isinstance(policy, str), "policy: must be a string")
    _check(isinstance(policy_params, dict), "policy_params: must be a JSON object")
    try:
        make_policy(policy, policy_params)
    except PolicyError as exc:
        message = str(exc)
        raise InvalidExperiment(message if message.startswith("policy") else f"policy_params.{message}") from None
    segment_keys = _segment_keys(data.get("segment_keys", []), policy)
    min_share = _number(data, "min_share", 0.01, 0.0, 1.0, label="min_share")
    _check(min_share * len(variants) <= 1.0, "min_share: times the number of variants must not exceed 1")
    return Experiment(
        id=data["id"],
        variants=variants,
        control=control,
        name=_string(data, "name", "", None, label="name", allow_empty=True),
        host=_string(data, "host", "", _HOST, label="host", allow_empty=True).lower(),
        path_prefix=_string(data, "path_prefix", "/", _PATH_PREFIX, label="path_prefix"),
        goal=_string(data, "goal", "signup", GOAL, label="goal"),
        status=status,
        winner=winner,
        policy=policy,
        policy_params=policy_params,
        min_share=min_share,
        burn_in=burn_in,
        holdout=_number(data, "holdout", 0.0, 0.0, 0.5, label="holdout"),
        tenant=_tenant(data.get("tenant", "")),
        slots=_slots(data.get("slots", [])),
        segment_keys=segment_keys,
        model_weight=_number(data, "model_weight", 0.0, 0.0, 1.0, label="model_weight"),
        updated_at=_number(data, "updated_at", 0.0, 0.0, 1e11, label="updated_at"),
    )


def _refuse_server_fields(data: Any) -> None:
    given = sorted(SERVER_FIELDS & set(data)) if isinstance(data, dict) else []
    _check(not given, f"{given[0] if given else ''}: is set by the server on every change; leave it out")


def parse_new_experiment(data: Any, now: float) -> Experiment:
    """A client's new experiment, stamped with the time it was created."""
    _refuse_server_fields(data)
    return touched(parse_experiment(data), now)


def touched(experiment: Experiment, now: float) -> Experiment:
    """The experiment as changed at ``now``."""
    return replace(experiment, updated_at=now)


def _segment_keys(value: Any, policy: str) -> tuple[str, ...]:
    """Up to three distinct context fields; a segmented bandit reads lifetime counts, so not
    with a policy that reads time buckets."""
    _check(isinstance(value, (list, tuple)), "segment_keys: must be a list of context fields")
    _check(len(value) <= MAX_SEGMENT_KEYS, f"segment_keys: at most {MAX_SEGMENT_KEYS} keys")
    for i, key in enumerate(value):
        _check(isinstance(key, str) and key in CONTEXT_FIELDS,
               f"segment_keys[{i}]: must be one of {', '.join(CONTEXT_FIELDS)}")
    _check(len(set(value)) == len(value), "segment_keys: keys must be distinct")
    _check(not value or not make_policy(policy).needs_history,
           f"segment_keys: not available with policy {policy!r}, which reads time buckets")
    return tuple(value)


def _tenant(value: Any) -> str:
    _check(value == "" or ID.ok(value), ID.error("tenant") + " (or empty: the default tenant)")
    return "" if value == "default" else value  # 'default' names the default tenant in CROUPIER_API_KEYS


def _slots(value: Any) -> tuple[str, ...]:
    _check(isinstance(value, (list, tuple)), "slots: must be a list of slot ids")
    _check(len(value) <= MAX_SLOTS, f"slots: at most {MAX_SLOTS}")
    for i, slot in enumerate(value):
        _check(ID.ok(slot), ID.error(f"slots[{i}]"))
    _check(len(set(value)) == len(value), "slots: must be unique")
    return tuple(value)


def merge(experiment: Experiment, changes: Any) -> Experiment:
    """The experiment with ``changes`` (a partial JSON object) applied, re-validated."""
    _refuse_server_fields(changes)
    _known_keys(changes, EXPERIMENT_FIELDS - {"id"}, "")
    return parse_experiment({**experiment.to_dict(), **changes})


def with_variant(experiment: Experiment, variant: Variant) -> Experiment:
    """Add or replace one variant."""
    kept = [v for v in experiment.variants if v.id != variant.id]
    position = next((i for i, v in enumerate(experiment.variants) if v.id == variant.id), len(kept))
    kept.insert(position, variant)
    return parse_experiment({**experiment.to_dict(), "variants": [asdict(v) for v in kept]})


def without_variant(experiment: Experiment, variant_id: str) -> Experiment:
    _check(variant_id != experiment.control, "variant: the control variant cannot be removed; "
                                            "make another variant the control first")
    _check(variant_id != experiment.winner, "variant: the winner cannot be removed")
    return replace(experiment, variants=tuple(v for v in experiment.variants if v.id != variant_id))
