"""Factorial experiments: factors with named levels, constraints, and the arms they allow.

A factorial experiment tests several elements of one page at once (headline, call to
action, offer, ...). Each factor has 2-16 named levels; a level is a fragment of the
page's content parameters merged over the base variant's. The arms are the allowed
combinations of one level per factor, named by their level names joined by '_' in
factor order (``savings_buy-now_none``); a constraint excludes the combinations that
match all of its factor-level pairs. The first level of every factor is its control
level, and the combination of control levels must stay allowed.

Standard library only, except ``Factorial.arms`` (numpy, for the router's policy): the
variant server's image copies this file to render any arm from the declaration, and
uses only the per-arm lookups, which never enumerate the combinations.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from croupier.router.records import Variant, check, params_object, parse_variant
from croupier.router.rules import ARM, ID, LEVEL

if TYPE_CHECKING:
    import numpy as np

MAX_FACTORS = 8
MIN_LEVELS = 2
MAX_LEVELS = 16
MAX_COMBINATIONS = 16384
MAX_CONSTRAINTS = 64
# every level's fragment together: the registry holds the declaration, never the arms
MAX_FRAGMENTS_BYTES = 65536
ARM_SEPARATOR = "_"
NAME_SEPARATOR = " · "  # between the "factor: level" parts of an arm's name

# (factor index, level index) pairs, in factor order
Constraint = tuple[tuple[int, int], ...]
# a state carried down the walk of combinations: (state, factor index, level index) -> state
Fold = Callable[[Any, int, int], Any]


def merge_params(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """``base`` with a level's ``fragment`` over it: each top-level key of the fragment replaces
    the base's, except that where both values are JSON objects (``colors``, ``form``, ...)
    they merge one level deep, so a level can change one colour and keep the others.
    Levels apply in factor order; where two factors set the same key, the later one wins.

    The result may share values with its inputs: params are never changed in place."""
    if not fragment:
        return base
    merged = {**base, **fragment}
    for key, value in fragment.items():
        below = base.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = {**below, **value}
    return merged


@dataclass(frozen=True)
class Level:
    name: str
    params: dict[str, Any]  # the fragment merged over the base variant's params


@dataclass(frozen=True)
class Factor:
    name: str
    levels: tuple[Level, ...]  # the first is the control level

    @cached_property
    def index(self) -> dict[str, int]:
        return {level.name: i for i, level in enumerate(self.levels)}


def _part(factor: Factor, level: Level) -> str:
    return f"{factor.name}: {level.name}"


@dataclass(frozen=True)
class Factorial:
    """A factorial experiment's declaration: the page server and its base params, the
    factors and the constraints. ``Experiment.variants`` holds its arms as variants."""

    base: Variant
    factors: tuple[Factor, ...]
    constraints: tuple[Constraint, ...] = ()

    @cached_property
    def n_levels(self) -> tuple[int, ...]:
        return tuple(len(f.levels) for f in self.factors)

    @cached_property
    def _constraints_by_last(self) -> list[list[list[Constraint]]]:
        """[factor][level] -> the constraints whose last pair is that level of that factor, without
        that pair: a combination is excluded when one of them matches its earlier levels."""
        found: list[list[list[Constraint]]] = [[[] for _ in f.levels] for f in self.factors]
        for constraint in self.constraints:
            *earlier, (factor, level) = constraint
            found[factor][level].append(tuple(earlier))
        return found

    def allowed(self, levels: Sequence[int]) -> bool:
        """Whether this combination (a level index per factor) is one no constraint excludes."""
        return not any(all(levels[f] == l for f, l in c) for c in self.constraints)

    def _walk(self, fold: Fold | None = None, start: Any = None, limit: int = MAX_COMBINATIONS
              ) -> list[tuple[tuple[int, ...], Any]]:
        """Up to ``limit`` allowed combinations in product order (first factor slowest), each with
        ``fold``'s state: ``fold(state, factor, level)`` is applied once per prefix, so consecutive
        combinations share the work of their common levels. Depth first: each constraint is tried
        once, at its last factor, and an excluded prefix is not expanded."""
        n, index = self.n_levels, self._constraints_by_last
        last = len(n) - 1
        prefix = [0] * len(n)
        found: list[tuple[tuple[int, ...], Any]] = []

        def walk(depth: int, state: Any) -> None:
            by_level = index[depth]
            for level in range(n[depth]):
                if by_level[level] and any(all(prefix[f] == l for f, l in c) for c in by_level[level]):
                    continue
                prefix[depth] = level
                below = fold(state, depth, level) if fold is not None else None
                if depth == last:
                    found.append((tuple(prefix), below))
                else:
                    walk(depth + 1, below)
                if len(found) >= limit:
                    return

        walk(0, start)
        return found

    @cached_property
    def combinations(self) -> tuple[tuple[int, ...], ...]:
        """Every allowed combination in product order: the arms' order."""
        return tuple(levels for levels, _ in self._walk())

    def arms(self) -> np.ndarray:
        """The allowed combinations as level indices, shape (arms, factors), in the order of the
        experiment's variants. Read-only (cached)."""
        return self._arms

    @cached_property
    def _arms(self) -> np.ndarray:
        import numpy as np  # here alone: the variant server never enumerates arms

        arms = np.array(self.combinations, dtype=np.intp).reshape(-1, len(self.factors))
        arms.flags.writeable = False
        return arms

    def arm_id(self, levels: Sequence[int]) -> str:
        return ARM_SEPARATOR.join(f.levels[l].name for f, l in zip(self.factors, levels))

    def arm_name(self, levels: Sequence[int]) -> str:
        """For people: ``headline: savings · cta: buy-now · offer: none``."""
        return NAME_SEPARATOR.join(_part(f, f.levels[l]) for f, l in zip(self.factors, levels))

    def levels_of(self, arm_id: object) -> tuple[int, ...] | None:
        """The level indices of an allowed arm; None for anything else (malformed, an unknown
        level, an excluded combination). Never enumerates the combinations."""
        if not ARM.ok(arm_id):
            return None
        names = arm_id.split(ARM_SEPARATOR)  # type: ignore[union-attr]
        if len(names) != len(self.factors):
            return None
        levels = tuple(f.index.get(name, -1) for f, name in zip(self.factors, names))
        return levels if -1 not in levels and self.allowed(levels) else None

    def params_of(self, levels: Sequence[int]) -> dict[str, Any]:
        params = self.base.params
        for factor, level in zip(self.factors, levels):
            params = merge_params(params, factor.levels[level].params)
        return params

    def merged_params(self, arm_id: str) -> dict[str, Any]:
        """The base variant's params with the arm's levels merged over them (``merge_params``);
        ``KeyError`` for an id that is not an allowed arm."""
        levels = self.levels_of(arm_id)
        if levels is None:
            raise KeyError(arm_id)
        return self.params_of(levels)

    @property
    def control_levels(self) -> tuple[int, ...]:
        return (0,) * len(self.factors)

    @property
    def control_arm(self) -> str:
        """The combination of every factor's first level."""
        return self.arm_id(self.control_levels)

    def declaration(self) -> dict[str, Any]:
        """``factors`` and ``constraints`` as a marketer writes them (``parse_factorial`` reads it back)."""
        factors = self.factors
        return {
            "factors": {f.name: {level.name: copy.deepcopy(level.params) for level in f.levels} for f in factors},
            "constraints": [{factors[f].name: factors[f].levels[l].name for f, l in c} for c in self.constraints],
        }


def arm_variants(factorial: Factorial) -> tuple[Variant, ...]:
    """The arms as variants (id, name and merged params of each combination; the base's upstream
    and prior), so everything that reads variants treats combinations as variants.

    One walk of the combinations builds each prefix's params, id and name once (see
    tests/router/factors/test_arms.py for what it costs at 16,384 combinations)."""
    base = factorial.base
    steps = [[(level.params, level.name, _part(f, level)) for level in f.levels] for f in factorial.factors]
    last = len(steps) - 1

    def fold(state: tuple[dict[str, Any], str, str], f: int, l: int) -> Any:
        params, arm, name = state
        fragment, level, named = steps[f][l]
        params = merge_params(params, fragment)
        if f:
            arm, name = f"{arm}{ARM_SEPARATOR}{level}", f"{name}{NAME_SEPARATOR}{named}"
        else:
            arm, name = level, named
        if f == last:  # a whole combination: its variant
            return Variant(arm, base.upstream, "active", name, base.prior_alpha, base.prior_beta, params)
        return params, arm, name

    found = factorial._walk(fold, (base.params, "", ""))
    # the walk that made the arms gives their combinations too (a cached_property's own slot)
    factorial.__dict__.setdefault("combinations", tuple(levels for levels, _ in found))
    return tuple(variant for _, variant in found)


def _name(value: Any, label: str) -> str:
    check(LEVEL.ok(value), f"{LEVEL.error(label)}, got {str(value)[:40]!r}")
    return value


def _levels(value: Any, label: str) -> tuple[Level, ...]:
    check(isinstance(value, dict), f"{label}: must be a JSON object of levels (level name -> params)")
    check(len(value) >= MIN_LEVELS, f"{label}: needs at least {MIN_LEVELS} levels")
    check(len(value) <= MAX_LEVELS, f"{label}: at most {MAX_LEVELS} levels")
    return tuple(Level(_name(name, f"{label}.{name}"), params_object(params, f"{label}.{name}"))
                 for name, params in value.items())


def _factors(value: Any) -> tuple[Factor, ...]:
    check(isinstance(value, dict) and value, "factors: must be a JSON object of factors (factor name -> levels)")
    check(len(value) <= MAX_FACTORS, f"factors: at most {MAX_FACTORS}")
    factors = tuple(Factor(_name(name, f"factors.{name}"), _levels(levels, f"factors.{name}"))
                    for name, levels in value.items())
    combinations = 1
    for factor in factors:  # the count alone: nothing is enumerated before it is known to be small
        combinations *= len(factor.levels)
    check(combinations <= MAX_COMBINATIONS,
          f"factors: {combinations} combinations of levels; at most {MAX_COMBINATIONS}")
    size = sum(len(repr(level.params)) for factor in factors for level in factor.levels)
    check(size <= MAX_FRAGMENTS_BYTES, f"factors: the levels' params together are larger than "
                                       f"{MAX_FRAGMENTS_BYTES} bytes")
    return factors


def _constraint(value: Any, factors: tuple[Factor, ...], label: str) -> Constraint:
    check(isinstance(value, dict) and len(value) >= 2,
          f"{label}: must be a JSON object of at least 2 factors, each naming one of its levels")
    position = {f.name: i for i, f in enumerate(factors)}
    pairs = []
    for factor, level in value.items():
        check(factor in position, f"{label}.{factor}: unknown factor {factor!r}")
        f = position[factor]
        check(isinstance(level, str) and level in factors[f].index, f"{label}.{factor}: unknown level {level!r}")
        pairs.append((f, factors[f].index[level]))
    return tuple(sorted(pairs))


def parse_factorial(base: Variant, factors: Any, constraints: Any = ()) -> Factorial:
    """A factorial declaration, validated without enumerating its combinations;
    ``InvalidExperiment`` names the field (``factors.cta: needs at least 2 levels``)."""
    parsed = _factors(factors)
    check(isinstance(constraints, (list, tuple)), "constraints: must be a list")
    check(len(constraints) <= MAX_CONSTRAINTS, f"constraints: at most {MAX_CONSTRAINTS}")
    factorial = Factorial(base, parsed, tuple(_constraint(c, parsed, f"constraints[{i}]")
                                              for i, c in enumerate(constraints)))
    excluding = next((i for i, c in enumerate(factorial.constraints)
                      if all(l == 0 for _, l in c)), None)
    check(excluding is None, f"constraints[{excluding}]: excludes the control combination "
                             f"{factorial.control_arm!r} (every factor's first level)")
    # the control is allowed: finding a second allowed combination is enough, without a full walk
    check(len(factorial._walk(limit=2)) == 2, "constraints: leave fewer than 2 allowed combinations")
    return factorial


@dataclass(frozen=True)
class Declaration:
    """What the variant server reads from the declaration file (the JSON a marketer posts)."""

    experiment: str
    factorial: Factorial
    control: str  # the arm rendered for an unknown or missing arm id


def parse_declaration(data: Any) -> Declaration:
    """The factorial part of an experiment: its id, its one variant (the page server, with the
    base params), factors, constraints and control arm. The rest of the experiment is
    ``croupier.router.experiments.parse_experiment``'s, which calls this."""
    check(isinstance(data, dict), "experiment: must be a JSON object")
    check(ID.ok(data.get("id")), ID.error("id"))
    variants = data.get("variants")
    check(isinstance(variants, list) and len(variants) == 1,
          "variants: a factorial experiment declares exactly one variant, its page server "
          "(its arms are the factors' combinations)")
    base = parse_variant(variants[0], "variants[0]")
    check(base.active, "variants[0].status: the page server of a factorial experiment is always active "
                       "(pause the experiment instead)")
    factorial = parse_factorial(base, data.get("factors"), data.get("constraints", []))
    control = data.get("control", factorial.control_arm)
    check(factorial.levels_of(control) is not None,
          f"control: {str(control)[:200]!r} is not an allowed combination of the factors' levels")
    return Declaration(data["id"], factorial, control)

