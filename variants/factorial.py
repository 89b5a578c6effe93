"""Serving a factorial experiment: any arm, rendered from the experiment's declaration.

NGINX passes the arm the router picked in ``X-Croupier-Variant`` (``savings_buy-now_none``).
Its page is the base variant's params with the arm's levels merged over them (the rule is
``croupier.router.factors.merge_params``), validated with ``parse_params`` once and kept
per arm. An id the declaration does not know, a malformed one or none gets the control arm.

The declaration file is the JSON a marketer posts to the admin API. When it changes on
disk (``croupier-variant add-level`` rewrites it), the next request at least a second after
the last look reads it again, so a new level is served without a restart; a file that does
not parse leaves the previous declaration in place and says why in the log.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from croupier.router.factors import Declaration, parse_declaration
from croupier.router.records import InvalidExperiment
from croupier.router.rules import ID
from croupier.variants.app import EXPERIMENT_HEADER, VARIANT_HEADER, Chosen, Page, page_of
from croupier.variants.params import InvalidParams, parse_params, read_json

RELOAD_SECONDS = 1.0

log = logging.getLogger("croupier.variants")


def page_params(declaration: Declaration, levels: Sequence[int]) -> dict[str, Any]:
    """What ``parse_params`` reads for a combination: the merged params, with the page server's
    variant id when they name none (an arm id is not a params id) and the experiment's id."""
    factorial = declaration.factorial
    return {"id": factorial.base.id, **factorial.params_of(levels), "experiment": declaration.experiment}


def _culprit(declaration: Declaration, levels: Sequence[int], message: str) -> str:
    """Where the params field an error names (``colors.primary: ...``) came from: the last level
    of the combination that sets it, else the base variant's params."""
    key = re.split(r"[.\[:]", message, maxsplit=1)[0]
    for factor, level in reversed(list(zip(declaration.factorial.factors, levels))):
        if key in factor.levels[level].params:
            return f"factors.{factor.name}.{factor.levels[level].name}"
    return "variants[0].params"


def render_page(declaration: Declaration, levels: Sequence[int]) -> Page:
    """A combination's page; ``InvalidParams`` names the level (or base params) at fault."""
    params = page_params(declaration, levels)
    try:
        return page_of(parse_params(params))
    except InvalidParams as exc:
        raise InvalidParams(f"{_culprit(declaration, levels, str(exc))}: {exc}") from None


def check_pages(declaration: Declaration) -> None:
    """Every level renders: the control combination, each level in place of its factor's
    control level, and the control arm. ``InvalidParams`` names the level at fault
    (``factors.cta.buy-now: cta: must be at most 40 characters, got 52``).

    ``parse_params`` checks each field on its own, so a combination of levels that render
    one at a time renders too."""
    factorial = declaration.factorial
    control = factorial.control_levels
    render_page(declaration, control)
    for f, factor in enumerate(factorial.factors):
        for l in range(1, len(factor.levels)):
            render_page(declaration, (*control[:f], l, *control[f + 1:]))
    render_page(declaration, factorial.levels_of(declaration.control))


def load_declaration(path: str | Path) -> Declaration:
    """Read, parse and check a declaration file; errors start with the file's path."""
    data = read_json(path, "experiment file")
    try:
        declaration = parse_declaration(data)
        check_pages(declaration)
    except (InvalidExperiment, InvalidParams) as exc:
        raise InvalidParams(f"{path}: {exc}") from None
    return declaration


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is written or replaced; None while it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class FactorialPages:
    """Every arm of one factorial experiment, from its declaration file (for ``create_app``)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._clock = clock
        self._signature = _signature(self.path)  # before the read: a write during it is seen next time
        self._refused: tuple[int, int, int] | None = None
        self._use(load_declaration(self.path))  # a bad file at start-up stops the server
        self._checked = clock()

    def _use(self, declaration: Declaration) -> None:
        self.declaration = declaration
        control = declaration.factorial.levels_of(declaration.control)
        self._control = (declaration.control, render_page(declaration, control))
        self._pages: dict[str, tuple[str, Page]] = {declaration.control: self._control}

    def _reload_if_changed(self) -> None:
        now = self._clock()
        if now - self._checked < RELOAD_SECONDS:
            return
        self._checked = now
        signature = _signature(self.path)
        if signature == self._signature:
            return
        try:
            self._use(load_declaration(self.path))
        except InvalidParams as exc:
            # Tried again at the next look: a file caught half-written may keep its signature
            # once complete. Said once per version of the file.
            if signature != self._refused:
                self._refused = signature
                log.error("%s; still serving the declaration read before", exc)
        else:
            self._signature = signature
            log.info("%s: declaration read again", self.path)

    def _page(self, arm: str) -> tuple[str, Page]:
        """(the arm shown, its page): the arm's own, or the control's for an unknown arm."""
        found = self._pages.get(arm)
        if found is not None:
            return found
        levels = self.declaration.factorial.levels_of(arm)
        if levels is None:
            return self._control  # not cached: anything a client sends would fill the cache
        try:
            found = (arm, render_page(self.declaration, levels))
        except InvalidParams as exc:  # check_pages makes this unlikely: every level alone renders
            log.error("%s: arm %s does not render (%s); serving the control arm", self.path, arm, exc)
            found = self._control
        self._pages[arm] = found  # at most one entry per allowed arm
        return found

    def choose(self, headers: Mapping[str, str]) -> Chosen:
        self._reload_if_changed()
        arm, page = self._page(headers.get(VARIANT_HEADER, ""))
        experiment = headers.get(EXPERIMENT_HEADER, "")
        return Chosen(page, experiment if ID.ok(experiment) else self.declaration.experiment, arm)

    def health(self) -> dict[str, Any]:
        factorial = self.declaration.factorial
        return {"status": "ok", "variant": factorial.base.id, "experiment": self.declaration.experiment,
                "factors": {f.name: [level.name for level in f.levels] for f in factorial.factors}}
