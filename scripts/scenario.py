"""A what-if scenario: the variants' guessed conversion rates, the traffic, an optional
drift and the experiment's policy, validated. Pure: parsing and validation only.

The policy and the experiment's controls (``policy``, ``policy_params``,
``min_share``, ``burn_in``, ``holdout``) go through the registry's own validation
(``croupier.router.experiments.parse_experiment``), so they take exactly what an
experiment takes, with the same defaults and the same messages. Every error is a
``ScenarioError`` whose message starts with the field it is about.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from croupier.router.experiments import FACTORIAL_POLICY, InvalidExperiment, parse_experiment
from croupier.router.policies import POLICIES, Policy, make_policy
from croupier.router.records import check, number
from croupier.router.settings import Settings
from croupier.scripts import simulation

FIELDS = {"name", "variants", "daily_visitors", "days", "drift", "policy", "policy_params", "min_share",
          "burn_in", "holdout", "runs", "seed", "refresh_visitors", "takeover_share"}
MAX_VISITORS = 10**9  # days x daily visitors of one run
MAX_REFRESHES = 2000  # the default cadence's bound: more refreshes add time, not accuracy
MAX_CHOSEN_REFRESHES = 200_000  # what refresh_visitors may ask for (each costs milliseconds)
BUCKET_DAY_FRACTION = 24  # history buckets of an hour of traffic (the router's are a minute)
POINTS = 240  # checkpoints over the scenario, at most 24 a day
DAY = 86400.0


class ScenarioError(ValueError):
    """Bad input for a scenario; the message names the field."""


def _default(name: str) -> Any:
    return next(f.default for f in fields(Settings) if f.name == name)


@dataclass(frozen=True)
class Drift:
    """From the start of ``day`` (1 is the first) the listed variants convert at their new rates."""

    day: int
    rates: dict[str, float]


@dataclass(frozen=True)
class Scenario:
    name: str
    variants: tuple[str, ...]
    rates: tuple[float, ...]
    daily_visitors: int
    days: int
    policy: str = "thompson"
    policy_params: dict[str, Any] = field(default_factory=dict)
    min_share: float = 0.01
    burn_in: int = 0
    holdout: float = 0.0
    drift: Drift | None = None
    runs: int = 50
    seed: int = 1
    refresh_visitors: int = 1
    takeover_share: float = 0.8

    @property
    def visitors(self) -> int:
        return self.days * self.daily_visitors

    @property
    def rates_after(self) -> tuple[float, ...] | None:
        if self.drift is None:
            return None
        return tuple(self.drift.rates.get(v, r) for v, r in zip(self.variants, self.rates))

    @property
    def change_at(self) -> int | None:
        """The visitor (0-based) from whom the drifted rates hold."""
        return None if self.drift is None else (self.drift.day - 1) * self.daily_visitors

    def policy_object(self) -> Policy:
        return make_policy(self.policy, self.policy_params)

    def controls(self) -> simulation.Controls:
        return simulation.Controls(min_share=self.min_share, burn_in=self.burn_in, holdout=self.holdout)

    def engine(self) -> simulation.Scenario:
        """The simulator's view: time in visitors, history buckets of an hour of traffic."""
        bucket = max(1, round(self.daily_visitors / BUCKET_DAY_FRACTION))
        return simulation.Scenario(
            self.name, self.rates, self.visitors, batch=self.refresh_visitors, rates_after=self.rates_after,
            change_at=self.change_at, bucket=bucket, bucket_seconds=bucket * DAY / self.daily_visitors)

    def checkpoints(self) -> np.ndarray:
        """Visitor counts where the figures are recorded: every day's end and evenly within days."""
        per_day = max(1, min(24, POINTS // self.days, self.daily_visitors))
        marks = np.arange(1, self.days * per_day + 1) * self.daily_visitors / per_day
        return np.unique(np.round(marks).astype(np.int64))


def default_refresh(daily_visitors: int, days: int) -> int:
    """The visitors between two allocations: those of one router refresh interval, but at most
    ``MAX_REFRESHES`` over the scenario (bench-policies: refreshing every 1,000 visitors costs at
    most 1.3 x the regret of refreshing for every visitor)."""
    per_interval = math.ceil(daily_visitors * _default("refresh_interval") / DAY)
    return max(1, per_interval, math.ceil(daily_visitors * days / MAX_REFRESHES))


def _int(data: dict, name: str, default: int | None, lo: int, hi: int) -> int:
    value = data.get(name, default)
    check(value is not None, f"{name}: is required")
    check(isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi,
          f"{name}: must be an integer between {lo} and {hi}")
    return value


def _rate(value: Any, label: str) -> float:
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and 0.0 <= value <= 1.0, f"{label}: must be a conversion rate between 0 and 1 (0.05 is 5%)")
    return float(value)


def _variants(value: Any) -> tuple[tuple[str, ...], tuple[float, ...]]:
    check(isinstance(value, list) and len(value) >= 2, "variants: must be a list of at least two variants")
    ids, rates = [], []
    for i, item in enumerate(value):
        label = f"variants[{i}]"
        check(isinstance(item, dict), f"{label}: must be an object with id and rate")
        unknown = sorted(set(item) - {"id", "rate"})
        check(not unknown, f"{label}.{unknown[0] if unknown else ''}: unknown field (accepted: id, rate)")
        check("id" in item, f"{label}.id: is required")
        check("rate" in item, f"{label}.rate: is required")
        ids.append(item["id"])
        rates.append(_rate(item["rate"], f"{label}.rate"))
    return tuple(ids), tuple(rates)


def _drift(value: Any, variants: tuple[str, ...], days: int) -> Drift | None:
    if value is None:
        return None
    check(isinstance(value, dict), "drift: must be an object with day and rates")
    unknown = sorted(set(value) - {"day", "rates"})
    check(not unknown, f"drift.{unknown[0] if unknown else ''}: unknown field (accepted: day, rates)")
    check(days >= 2, "drift: needs at least two days")
    check("day" in value, "drift.day: is required")
    day = value["day"]
    check(isinstance(day, int) and not isinstance(day, bool) and 2 <= day <= days,
          f"drift.day: must be an integer between 2 and days ({days}); day 1 is the first")
    rates = value.get("rates")
    check(isinstance(rates, dict) and rates, "drift.rates: must map variant ids to their new rates")
    for vid, rate in rates.items():
        check(vid in variants, f"drift.rates.{vid}: is not one of the variants")
        _rate(rate, f"drift.rates.{vid}")
    return Drift(day, {vid: float(rate) for vid, rate in rates.items()})


def _experiment(data: dict, variants: tuple[str, ...]):
    """The registry's own checks of the policy and the controls, on an experiment of these variants."""
    keys = ("policy", "policy_params", "min_share", "burn_in", "holdout")
    experiment = parse_experiment({"id": "what-if", "variants": [{"id": v, "upstream": "simulated:80"}
                                                                 for v in variants],
                                   **{k: data[k] for k in keys if k in data}})
    policy = POLICIES.get(experiment.policy)
    simulated = sorted(name for name, cls in POLICIES.items() if not cls.needs_context and name != FACTORIAL_POLICY)
    check(policy is not None and not policy.needs_context and experiment.policy != FACTORIAL_POLICY,
          f"policy: the simulator's visitors have no context and its variants no factors; "
          f"choose one of {', '.join(simulated)}")
    return experiment


def parse_scenario(data: Any) -> Scenario:
    """A scenario from a parsed file (or the command line's equivalent)."""
    try:
        check(isinstance(data, dict), "scenario: must be an object (a mapping of fields)")
        unknown = sorted(set(data) - FIELDS)
        check(not unknown, f"{unknown[0] if unknown else ''}: unknown field (accepted: {', '.join(sorted(FIELDS))})")
        variants, rates = _variants(data.get("variants"))
        experiment = _experiment(data, variants)
        daily = _int(data, "daily_visitors", None, 1, 100_000_000)
        days = _int(data, "days", None, 1, 3650)
        check(daily * days <= MAX_VISITORS, f"days: times daily_visitors must not exceed {MAX_VISITORS:,}")
        refresh = data.get("refresh_visitors")
        if refresh is None:
            refresh = default_refresh(daily, days)
        else:
            least = math.ceil(daily * days / MAX_CHOSEN_REFRESHES)
            refresh = _int(data, "refresh_visitors", None, max(1, least), daily)
        name = data.get("name", "what-if")
        check(isinstance(name, str) and 0 < len(name) <= 200, "name: must be a string of 1-200 characters")
        return Scenario(
            name=name, variants=variants, rates=rates, daily_visitors=daily, days=days,
            policy=experiment.policy, policy_params=experiment.policy_params, min_share=experiment.min_share,
            burn_in=experiment.burn_in, holdout=experiment.holdout,
            drift=_drift(data.get("drift"), variants, days),
            runs=_int(data, "runs", 50, 1, 1000), seed=_int(data, "seed", 1, 0, 2**63 - 1),
            refresh_visitors=refresh,
            takeover_share=number(data, "takeover_share", 0.8, 0.5, 1.0, label="takeover_share"),
        )
    except InvalidExperiment as exc:
        raise ScenarioError(str(exc)) from None


def parse_text(text: str, fmt: str) -> Any:
    """A scenario file's content: ``fmt`` is "json" or "yaml" (YAML needs PyYAML, in croupier[report])."""
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"scenario: not valid JSON ({exc})") from None
    try:
        import yaml
    except ImportError:
        raise ScenarioError("scenario: reading YAML needs PyYAML (pip install 'croupier[report]'), "
                            "or write the scenario as JSON") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario: not valid YAML ({exc})") from None


def _pairs(text: str, option: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        vid, eq, rate = part.partition("=")
        try:
            if not eq or not vid.strip():
                raise ValueError
            out[vid.strip()] = float(rate)
        except ValueError:
            raise ScenarioError(f"{option}: {part!r} is not id=rate (as in a=0.04,b=0.05)") from None
    if not out:
        raise ScenarioError(f"{option}: give id=rate pairs, as in a=0.04,b=0.05")
    return out


def rates_option(text: str) -> list[dict[str, Any]]:
    """``--rates a=0.04,b=0.05`` as the file's ``variants`` list."""
    return [{"id": vid, "rate": rate} for vid, rate in _pairs(text, "--rates").items()]


def drift_option(text: str) -> dict[str, Any]:
    """``--drift 10:b=0.03`` (from day 10 variant b converts at 3%) as the file's ``drift``."""
    day, colon, rates = text.partition(":")
    try:
        if not colon:
            raise ValueError
        day_number = int(day)
    except ValueError:
        raise ScenarioError(f"--drift: {text!r} is not DAY:id=rate[,id=rate] (as in 10:b=0.03)") from None
    return {"day": day_number, "rates": _pairs(rates, "--drift")}
