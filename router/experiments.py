"""Experiments and variants: the registry's records, validated.

Pure: parsing and validation only. Every error is an ``InvalidExperiment`` whose
message starts with the field it is about, so the admin API can answer 422 with
something a marketer can act on. The variant record and the field checks live in
``records.py``, a factorial experiment's declaration in ``factors.py`` (both
standard library only, for the variant server); this module puts an experiment together.
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from typing import Any

from croupier.router.context import FIELDS as CONTEXT_FIELDS
from croupier.router.factors import MIN_LEVELS, Factorial, arm_variants, parse_declaration
from croupier.router.guardrails import Guardrail, parse_guardrails
from croupier.router.policies import POLICIES, PolicyError, make_policy
from croupier.router.records import (MAX_PARAMS_BYTES, VARIANT_FIELDS, VARIANT_STATUSES, InvalidExperiment, Variant,
                                     check, known_keys, number, parse_variant, string)
from croupier.router.reward import Reward, parse_reward
from croupier.router.rules import GOAL, ID, Rule
from croupier.router.segments import MAX_KEYS as MAX_SEGMENT_KEYS

__all__ = ["EXPERIMENT_FIELDS", "EXPERIMENT_STATUSES", "FACTORIAL_POLICIES", "FACTORIAL_POLICY", "MAX_PARAMS_BYTES",
           "MAX_VARIANTS", "SERVER_FIELDS", "VARIANT_FIELDS", "VARIANT_STATUSES", "Experiment", "InvalidExperiment",
           "Variant", "merge", "parse_experiment", "parse_new_experiment", "parse_variant", "touched",
           "with_level", "with_variant", "without_level", "without_variant"]

EXPERIMENT_STATUSES = ("running", "paused", "ended")
# An upstream (croupier.router.rules.UPSTREAM) is only proxied to when NGINX allowlists it, but
# refusing junk here keeps the registry clean.
_HOST = Rule(re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"),
             "must be a host name without a port (lowercase letters, digits, '-' and '.')")
_PATH_PREFIX = Rule(re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,200}"),
                    "must start with '/' and hold only characters a URL path may")
MAX_VARIANTS = 32  # of an ordinary experiment; a factorial one is bounded by factors.MAX_COMBINATIONS
FACTORIAL_POLICY = "factorial_thompson"
# a factorial experiment's policies: the factorial model, or independent arms (Thompson sampling
# over every combination, which the benchmark compares it with)
FACTORIAL_POLICIES = frozenset({FACTORIAL_POLICY, "thompson"})


@dataclass(frozen=True)
class Experiment:
    id: str
    variants: tuple[Variant, ...]  # of a factorial experiment: its arms, generated from ``factorial``
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
    # the declaration of a factorial experiment (base variant, factors, constraints); None otherwise
    factorial: Factorial | None = None
    reward: Reward = Reward()  # what the policy optimises (croupier.router.reward)
    guardrails: tuple[Guardrail, ...] = ()  # harm a variant may not do, checked by the monitor
    on_drift: str = "alert"  # a detected change in an arm's rate: "alert", or also "forget" what came before

    @cached_property
    def _variants_by_id(self) -> dict[str, Variant]:
        # a factorial experiment has up to 16,384 arms: a lookup must not scan them
        return {v.id: v for v in self.variants}

    def variant(self, variant_id: str) -> Variant | None:
        return self._variants_by_id.get(variant_id)

    @property
    def control_variant(self) -> Variant:
        found = self.variant(self.control)
        assert found is not None  # guaranteed by validation
        return found

    @cached_property
    def active_variants(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if v.active)

    @cached_property
    def capped(self) -> bool:
        """Whether any variant has a capacity (``router/capacity.py``)."""
        return any(v.capacity is not None for v in self.variants)

    def to_dict(self) -> dict[str, Any]:
        """The record as the registry stores it and the admin API shows it. A factorial
        experiment gives its declaration (its one variant, ``factors`` and ``constraints``),
        never its generated arms: ``parse_experiment`` makes them again."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "variants":
                value = [_variant_dict(v) for v in (self.variants if self.factorial is None else (self.factorial.base,))]
            elif f.name == "factorial":
                if value is not None:
                    data.update(value.declaration())
                continue
            elif f.name == "reward":
                value = value.to_json()
            elif f.name == "guardrails":
                value = [g.to_dict() for g in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = copy.deepcopy(value)
            data[f.name] = value
        return data


EXPERIMENT_FIELDS = {"id", "variants", "control", "name", "host", "path_prefix", "goal", "status",
                     "winner", "policy", "policy_params", "min_share", "burn_in", "holdout", "tenant", "slots",
                     "segment_keys", "model_weight", "factors", "constraints", "reward", "guardrails", "on_drift"}
# Set by the server on every write: read back from the registry, refused from clients.
SERVER_FIELDS = {"updated_at"}
MAX_SLOTS = 16


def parse_experiment(data: Any) -> Experiment:
    """An experiment as the registry stores it (server fields included); a client's input
    goes through ``parse_new_experiment`` or ``merge``.

    With ``factors`` it is a factorial experiment: ``variants`` declares its one page server
    and ``variants`` of the result holds the allowed combinations as variants."""
    known_keys(data, EXPERIMENT_FIELDS | SERVER_FIELDS, "")
    check("id" in data, "id: is required")
    check(ID.ok(data["id"]), ID.error("id"))
    factorial: Factorial | None = None
    if "factors" in data:
        declared = parse_declaration(data)
        factorial, control = declared.factorial, declared.control
        variants = arm_variants(factorial)

        def known(arm: str) -> bool:
            return factorial.levels_of(arm) is not None
    else:
        check("constraints" not in data, "constraints: only for a factorial experiment (one with factors)")
        variants = _variants(data.get("variants"))
        ids = {v.id for v in variants}
        control = data.get("control", variants[0].id)
        check(control in ids, f"control: {control!r} is not one of the variants")

        def known(arm: str) -> bool:
            return arm in ids
    status = data.get("status", "running")
    check(status in EXPERIMENT_STATUSES, f"status: must be one of {', '.join(EXPERIMENT_STATUSES)}")
    winner = data.get("winner", "")
    check(winner == "" or known(winner), f"winner: {str(winner)[:200]!r} is not one of the variants")
    check(status != "ended" or winner != "", "winner: an ended experiment needs a winner")
    burn_in = data.get("burn_in", 0)
    check(isinstance(burn_in, int) and not isinstance(burn_in, bool) and 0 <= burn_in <= 10_000_000,
          "burn_in: must be an integer between 0 and 10000000")
    policy, policy_params = _policy(data, factorial)
    if factorial is not None:
        # A factorial experiment's policy models the combinations (each level's effect, learnt
        # from every visitor), not a split of visitors into segments; and the conversion model's
        # prior is per variant, not per level. Neither setting would mean what it says.
        check(not data.get("segment_keys"), "segment_keys: not available for a factorial experiment")
        check(not data.get("model_weight"), "model_weight: not available for a factorial experiment")
    segment_keys = _segment_keys(data.get("segment_keys", []), policy)
    reward = parse_reward(data.get("reward"))
    if reward.needs_engagement:
        # engaged views are counted per variant: the segment bandits, the time-bucketed
        # (non-stationary) policies and the contextual ones read conversions kept elsewhere
        chosen = make_policy(policy, policy_params) if policy in POLICIES else None
        check(not segment_keys, "reward: engaged views are not available with segment_keys")
        check(chosen is None or not (chosen.needs_history or chosen.needs_context),
              f"reward: engaged views are not available with policy {policy!r}")
    min_share = number(data, "min_share", 0.01, 0.0, 1.0, label="min_share")
    if factorial is None:
        check(min_share * len(variants) <= 1.0, "min_share: times the number of variants must not exceed 1")
    else:
        # the floor is per level of each factor, so the factor with the most levels bounds it
        check(min_share * max(factorial.n_levels) <= 1.0,
              "min_share: times the most levels of a factor must not exceed 1")
    return Experiment(
        id=data["id"],
        variants=variants,
        control=control,
        name=string(data, "name", "", None, label="name", allow_empty=True),
        host=string(data, "host", "", _HOST, label="host", allow_empty=True).lower(),
        path_prefix=string(data, "path_prefix", "/", _PATH_PREFIX, label="path_prefix"),
        goal=string(data, "goal", "signup", GOAL, label="goal"),
        status=status,
        winner=winner,
        policy=policy,
        policy_params=policy_params,
        min_share=min_share,
        burn_in=burn_in,
        holdout=number(data, "holdout", 0.0, 0.0, 0.5, label="holdout"),
        tenant=_tenant(data.get("tenant", "")),
        slots=_slots(data.get("slots", [])),
        segment_keys=segment_keys,
        model_weight=number(data, "model_weight", 0.0, 0.0, 1.0, label="model_weight"),
        updated_at=number(data, "updated_at", 0.0, 0.0, 1e11, label="updated_at"),
        factorial=factorial,
        reward=reward,
        guardrails=parse_guardrails(data.get("guardrails")),
        on_drift=_on_drift(data.get("on_drift", "alert")),
    )


ON_DRIFT = ("alert", "forget")


def _on_drift(value: Any) -> str:
    check(value in ON_DRIFT, f"on_drift: must be one of {', '.join(ON_DRIFT)}")
    return value


def _variants(value: Any) -> tuple[Variant, ...]:
    check(isinstance(value, list) and value, "variants: must be a non-empty list")
    check(len(value) <= MAX_VARIANTS, f"variants: at most {MAX_VARIANTS}")
    variants = tuple(parse_variant(v, f"variants[{i}]") for i, v in enumerate(value))
    check(len({v.id for v in variants}) == len(variants), "variants: ids must be unique")
    return variants


def _policy(data: dict, factorial: Factorial | None) -> tuple[str, dict[str, Any]]:
    policy = data.get("policy", "thompson")
    policy_params = data.get("policy_params", {})
    check(isinstance(policy, str), "policy: must be a string")
    check(isinstance(policy_params, dict), "policy_params: must be a JSON object")
    if factorial is not None:
        check(policy in FACTORIAL_POLICIES,
              f"policy: a factorial experiment takes one of {', '.join(sorted(FACTORIAL_POLICIES))}")
    check(policy != FACTORIAL_POLICY or factorial is not None, f"policy: {FACTORIAL_POLICY} needs factors")
    if policy == FACTORIAL_POLICY and policy not in POLICIES:
        return policy, policy_params  # known by name until croupier.router.policies registers it
    try:
        make_policy(policy, policy_params)
    except PolicyError as exc:
        message = str(exc)
        raise InvalidExperiment(message if message.startswith("policy") else f"policy_params.{message}") from None
    return policy, policy_params


def _refuse_server_fields(data: Any) -> None:
    given = sorted(SERVER_FIELDS & set(data)) if isinstance(data, dict) else []
    check(not given, f"{given[0] if given else ''}: is set by the server on every change; leave it out")


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
    check(isinstance(value, (list, tuple)), "segment_keys: must be a list of context fields")
    check(len(value) <= MAX_SEGMENT_KEYS, f"segment_keys: at most {MAX_SEGMENT_KEYS} keys")
    for i, key in enumerate(value):
        check(isinstance(key, str) and key in CONTEXT_FIELDS,
              f"segment_keys[{i}]: must be one of {', '.join(CONTEXT_FIELDS)}")
    check(len(set(value)) == len(value), "segment_keys: keys must be distinct")
    check(not value or not make_policy(policy).needs_history,
          f"segment_keys: not available with policy {policy!r}, which reads time buckets")
    return tuple(value)


def _tenant(value: Any) -> str:
    check(value == "" or ID.ok(value), ID.error("tenant") + " (or empty: the default tenant)")
    return "" if value == "default" else value  # 'default' names the default tenant in CROUPIER_API_KEYS


def _slots(value: Any) -> tuple[str, ...]:
    check(isinstance(value, (list, tuple)), "slots: must be a list of slot ids")
    check(len(value) <= MAX_SLOTS, f"slots: at most {MAX_SLOTS}")
    for i, slot in enumerate(value):
        check(ID.ok(slot), ID.error(f"slots[{i}]"))
    check(len(set(value)) == len(value), "slots: must be unique")
    return tuple(value)


def merge(experiment: Experiment, changes: Any) -> Experiment:
    """The experiment with ``changes`` (a partial JSON object) applied, re-validated."""
    _refuse_server_fields(changes)
    known_keys(changes, EXPERIMENT_FIELDS - {"id"}, "")
    return parse_experiment({**experiment.to_dict(), **changes})


def _ordinary(experiment: Experiment) -> None:
    check(experiment.factorial is None,
          "variants: a factorial experiment's arms are its factors' combinations; add or remove a level")


def with_variant(experiment: Experiment, variant: Variant) -> Experiment:
    """Add or replace one variant."""
    _ordinary(experiment)
    kept = [v for v in experiment.variants if v.id != variant.id]
    position = next((i for i, v in enumerate(experiment.variants) if v.id == variant.id), len(kept))
    kept.insert(position, variant)
    return parse_experiment({**experiment.to_dict(), "variants": [asdict(v) for v in kept]})


def without_variant(experiment: Experiment, variant_id: str) -> Experiment:
    _ordinary(experiment)
    check(variant_id != experiment.control, "variant: the control variant cannot be removed; "
                                            "make another variant the control first")
    check(variant_id != experiment.winner, "variant: the winner cannot be removed")
    return replace(experiment, variants=tuple(v for v in experiment.variants if v.id != variant_id))


def _levels_of(experiment: Experiment, factor: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the experiment's record, the factor's levels in it), for an edit of that factor."""
    check(experiment.factorial is not None, "factors: not a factorial experiment")
    data = experiment.to_dict()
    levels = data["factors"].get(factor)
    check(levels is not None, f"factors.{factor}: unknown factor")
    return data, levels


def with_level(experiment: Experiment, factor: str, level: str, params: Any) -> Experiment:
    """Add a level to a factor, after its others (the first stays the control level), or
    replace an existing level's params; re-validated."""
    data, levels = _levels_of(experiment, factor)
    data["factors"][factor] = {**levels, level: params}
    return parse_experiment(data)


def without_level(experiment: Experiment, factor: str, level: str) -> Experiment:
    """Remove a level; the constraints naming it go with it (they excluded only combinations
    with it). Its arms leave the experiment; their statistics stay in the store."""
    data, levels = _levels_of(experiment, factor)
    label = f"factors.{factor}.{level}"
    check(level in levels, f"{label}: unknown level")
    check(level != next(iter(levels)), f"{label}: the control level (the factor's first) cannot be removed")
    check(len(levels) > MIN_LEVELS, f"factors.{factor}: needs at least {MIN_LEVELS} levels; "
                                    f"add another before removing {level!r}")
    position, index = list(data["factors"]).index(factor), list(levels).index(level)
    for role in ("control", "winner"):
        arm = data[role]
        check(not arm or experiment.factorial.levels_of(arm)[position] != index,
              f"{label}: the {role} {arm!r} has this level; "
              + ("make another combination the control first" if role == "control" else "it cannot be removed"))
    data["factors"][factor] = {name: params for name, params in levels.items() if name != level}
    data["constraints"] = [c for c in data["constraints"] if c.get(factor) != level]
    return parse_experiment(data)


def _variant_dict(variant: Variant) -> dict[str, Any]:
    """A variant as stored and shown: without ``capacity`` when it has none, so records
    written before capacities existed read back the same."""
    data = asdict(variant)
    if data["capacity"] is None:
        del data["capacity"]
    return data
