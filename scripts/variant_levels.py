"""Adding and removing a level of a factorial experiment's factor (``croupier-variant add-level``
and ``remove-level``), in the order that keeps visitors safe, undone if a step fails.

Everything is checked before anything is written, with the functions the admin API and
the page server run themselves (``with_level``/``without_level``, ``check_pages``), so bad
input changes nothing. Then:

- add-level: 1. the page server's declaration file gets the level (``--declaration``);
  2. wait until the page server looks at its file again; 3. one PATCH of the experiment's
  factors and constraints, from which the router sends visitors to the new combinations.
  The file comes first: a visitor sent to a combination the page server does not know
  would see the control page while counted for the combination. A refused PATCH restores
  the file.
- remove-level: 1. one PATCH: the router stops sending visitors to the level's
  combinations (and reassigns those who had one); 2. the declaration file loses the level.
  A file that cannot be written puts the level back in the registry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from croupier.router.experiments import Experiment, InvalidExperiment, parse_experiment, with_level, without_level
from croupier.router.factors import Declaration, parse_declaration
from croupier.scripts.admin_client import AdminClient, AdminError
from croupier.scripts.progress import Progress
from croupier.variants.factorial import RELOAD_SECONDS, check_pages
from croupier.variants.params import InvalidParams, read_json


class LevelFailed(RuntimeError):
    """The change was not made (or was undone); the message says what happened."""


@dataclass(frozen=True)
class LevelChange:
    experiment: str
    factor: str
    level: str
    params: dict[str, Any] | None = None  # the new level's fragment; None removes the level

    @property
    def adding(self) -> bool:
        return self.params is not None


def load_fragment(path: Path) -> dict[str, Any]:
    """A level's params fragment from a JSON file (a JSON object)."""
    data = read_json(path, "params fragment")
    if not isinstance(data, dict):
        raise InvalidParams(f"{path}: a level's params must be a JSON object (merged over the base params)")
    return data


def planned(current: dict[str, Any], change: LevelChange) -> Experiment:
    """The experiment after the change, as the admin API will validate it, and with every level's
    page checked as the page server will; ``InvalidExperiment`` or ``InvalidParams`` otherwise."""
    experiment = parse_experiment(current)
    if experiment.factorial is None:
        raise InvalidExperiment(f"factors: experiment {change.experiment!r} has none; add-level and remove-level "
                                f"are for factorial experiments")
    if change.adding:
        factor = next((f for f in experiment.factorial.factors if f.name == change.factor), None)
        if factor is not None and change.level in factor.index:
            raise InvalidExperiment(f"factors.{change.factor}.{change.level}: already exists "
                                    f"(remove-level it first, or pick another name)")
        changed = with_level(experiment, change.factor, change.level, change.params)
    else:
        changed = without_level(experiment, change.factor, change.level)
    check_pages(Declaration(changed.id, changed.factorial, changed.control))
    return changed


def factors_of(experiment: Experiment) -> dict[str, Any]:
    """The PATCH body that sets an experiment's factors and constraints."""
    declaration = experiment.to_dict()
    return {"factors": declaration["factors"], "constraints": declaration["constraints"]}


class DeclarationFile:
    """The page server's declaration file (``python -m croupier.variants --experiment FILE``),
    changed in place: a single file bind-mounted into a container follows its inode, which
    replacing the file would change. A page server that reads it half-written keeps its
    previous declaration and reads it again a second later."""

    def __init__(self, path: Path, experiment: str) -> None:
        self.path = path
        self.data = read_json(path, "declaration file")
        self.original = path.read_text(encoding="utf-8")  # read_json read it: it is UTF-8 text
        if not isinstance(self.data, dict) or self.data.get("id") != experiment:
            raise InvalidParams(f"{path}: not the declaration of experiment {experiment!r} "
                                f"(its id is {self.data.get('id') if isinstance(self.data, dict) else None!r})")

    def text_with(self, factors: dict[str, Any]) -> str:
        """The file with these factors and constraints, checked as the page server will read it."""
        data = {**self.data, **factors}
        try:
            check_pages(parse_declaration(data))
        except (InvalidExperiment, InvalidParams) as exc:
            raise InvalidParams(f"{self.path}: {exc}") from None
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def write(self, text: str) -> None:
        self.path.write_text(text, encoding="utf-8")

    def restore(self) -> None:
        self.write(self.original)


def change_level(admin: AdminClient, change: LevelChange, progress: Progress, *,
                 declaration: Path | None, sleep: Callable[[float], None] | None = None) -> Experiment:
    """Make the change (the order in the module's docstring); the changed experiment.
    ``sleep`` waits for the page server (``time.sleep``)."""
    exp = change.experiment
    current = admin.experiment(exp)  # the API says when it does not exist
    changed = planned(current, change)
    body = factors_of(changed)
    page_file = DeclarationFile(declaration, exp) if declaration is not None else None
    new_text = page_file.text_with(body) if page_file is not None else None
    what = f"level {change.level!r} of factor {change.factor!r}"
    if page_file is None:
        progress.note("no --declaration: the page server's file is left as it is; " + (
            "until it has the level, the page server shows the new combinations' visitors the control page"
            if change.adding else "it keeps rendering the level, which no visitor is sent to any more"))
    if change.adding:
        if page_file is not None:
            progress.step(f"adding {what} to {page_file.path}")
            page_file.write(new_text)
            try:
                progress.step("waiting for the page server to read it")
                (sleep or time.sleep)(RELOAD_SECONDS + 0.2)
            except BaseException:
                page_file.restore()
                raise
        progress.step(f"adding {what} to experiment {exp!r}")
        _patch(admin, exp, body, undo=page_file.restore if page_file is not None else None)
        return changed

    progress.step(f"removing {what} from experiment {exp!r}")
    _patch(admin, exp, body, undo=None)
    if page_file is not None:
        progress.step(f"removing {what} from {page_file.path}")
        try:
            page_file.write(new_text)
        except OSError as exc:
            progress.step("rolling back: putting the level back in the experiment")
            try:
                admin.update_experiment(exp, factors_of(parse_experiment(current)))
            except AdminError as undo_failed:
                raise LevelFailed(f"{page_file.path}: cannot write it ({exc}), and the level could not be put back "
                                  f"({undo_failed}): the experiment no longer has it") from None
            raise LevelFailed(f"{page_file.path}: cannot write it ({exc}); the level was put back, "
                              f"nothing changed") from None
    return changed


def _patch(admin: AdminClient, exp: str, body: dict[str, Any], undo: Callable[[], None] | None) -> None:
    try:
        admin.update_experiment(exp, body)
    except AdminError as exc:
        if exc.status is None:  # no answer: the router may have taken it
            raise LevelFailed(f"{exc}; the change may or may not have been made: see croupier-variant list"
                              + ("; the declaration file keeps it" if undo else "")) from None
        if undo is not None:
            undo()
        raise LevelFailed(f"{exc}; nothing was changed"
                          + (" (the declaration file was restored)" if undo else "")) from None
