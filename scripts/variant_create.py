"""Launching a factorial experiment from its declaration file (``croupier-variant create``).

The file is the JSON a marketer would post to the admin API: one variant, the page server
with the base params, plus ``factors`` and ``constraints``. It is checked first with the
functions the admin API and the page server run themselves (``parse_new_experiment``,
``check_pages``), so a bad file changes nothing. Then in ``add``'s order
(``croupier.scripts.variant_add.launch``): start the page server on the declaration, create
the experiment **paused** with the page server's upstream in place of the file's, re-render
and reload NGINX so its allowlist knows that upstream, and set the experiment running. A
failure (or Ctrl-C) after the page server started deletes the experiment if it was created
and stops the page server.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from croupier.router.experiments import Experiment, InvalidExperiment, parse_new_experiment
from croupier.router.factors import Declaration
from croupier.scripts.admin_client import AdminClient, AdminError
from croupier.scripts.progress import Progress
from croupier.scripts.targets import Deployment, Target, VariantSpec
from croupier.scripts.variant_add import Registration, launch
from croupier.variants.factorial import check_pages
from croupier.variants.params import InvalidParams, read_json


@dataclass(frozen=True)
class NewExperiment:
    path: Path
    data: dict[str, Any]  # the file's JSON
    experiment: Experiment  # as the admin API will take it

    @property
    def page_server(self) -> str:
        return self.data["variants"][0]["id"]

    @property
    def upstream(self) -> str:
        return self.data["variants"][0]["upstream"]

    def spec(self, image: str = "") -> VariantSpec:
        return VariantSpec(self.experiment.id, self.page_server, None, image=image, declaration=self.data,
                           declaration_file=self.path)

    def registration(self, upstream: str) -> dict[str, Any]:
        """What the admin API is given: the file's JSON with the deployed page server's upstream,
        paused until NGINX knows that upstream."""
        data = copy.deepcopy(self.data)
        data["variants"][0]["upstream"] = upstream
        data["status"] = "paused"
        return data


def read_declaration(path: Path, now: float) -> NewExperiment:
    """The declaration file, checked as the admin API and the page server will check it;
    ``InvalidExperiment`` or ``InvalidParams`` starting with the file's path and naming the field."""
    data = read_json(path, "declaration file")
    if not isinstance(data, dict):
        raise InvalidExperiment(f"{path}: an experiment's declaration is a JSON object")
    try:
        experiment = parse_new_experiment(data, now)
        if experiment.factorial is None:
            raise InvalidExperiment("factors: missing; create launches a factorial experiment (one page server "
                                    "for every combination of the factors' levels)")
        if experiment.status != "running":
            raise InvalidExperiment(f"status: {experiment.status!r}; create starts the experiment running "
                                    f"(paused only until NGINX knows its page server): leave status out")
        check_pages(Declaration(experiment.id, experiment.factorial, experiment.control))
    except (InvalidExperiment, InvalidParams) as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return NewExperiment(path, data, experiment)


def create_experiment(admin: AdminClient, target: Target, new: NewExperiment, progress: Progress, *,
                      image: str = "", health_timeout: float,
                      reload_nginx: Callable[[], None] | None) -> Deployment:
    exp = new.experiment.id

    def register(upstream: str) -> None:
        if upstream != new.upstream:
            progress.note(f"upstream: {new.path} says {new.upstream}; the experiment gets the page server's, "
                          f"{upstream}")
        try:
            admin.create_experiment(new.registration(upstream))
        except AdminError as exc:
            if exc.status is None:  # no answer: the router may have created it, and it is not ours to delete
                raise AdminError(f"{exc}; experiment {exp!r} may or may not have been created: see "
                                 f"croupier-variant list {exp}") from None
            raise

    registration = Registration(
        f"creating experiment {exp!r}", register,
        f"delete experiment {exp!r}", lambda: admin.delete_experiment(exp),
        f"setting experiment {exp!r} running", lambda: admin.update_experiment(exp, {"status": "running"}))
    with ExitStack() as undo:
        deployment = launch(target, new.spec(image), registration, progress, undo, health_timeout=health_timeout,
                            reload_nginx=reload_nginx)
        undo.pop_all()
    return deployment
