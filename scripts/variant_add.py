"""Adding a variant, in the order that keeps visitors safe, undone if any step fails
(steps 2-5 are ``launch``'s, which ``create`` runs for a factorial experiment's page server).

1. write the params file;  2. start the page server and wait until it is healthy;
3. register it **paused**;  4. re-render and reload NGINX, so its allowlist knows
the new upstream;  5. activate it. Activating before the reload would send visitors
to a variant NGINX refuses to proxy to: they would get control while holding a
cookie for the new variant. A failure (or Ctrl-C) at any step undoes the steps
before it, newest first.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from croupier.scripts.admin_client import AdminClient
from croupier.scripts.progress import Progress
from croupier.scripts.targets import Deployment, Target, VariantSpec
from croupier.scripts.variant_params import write_params

# The registry keeps params for people to read, under the router's size limit
# (router/experiments.py); a data: URI image would not fit and is left out there.
REGISTRY_PARAMS_BYTES = 8192


@dataclass(frozen=True)
class NewVariant:
    spec: VariantSpec
    prior_alpha: float | None = None
    prior_beta: float | None = None

    def registration(self, upstream: str) -> dict:
        spec = self.spec
        body: dict = {"id": spec.variant_id, "upstream": upstream, "status": "paused"}
        if spec.params:
            body["name"] = spec.params.get("name", "")
            params = spec.params
            if len(repr(params)) > REGISTRY_PARAMS_BYTES and "image" in params:
                params = {k: v for k, v in params.items() if k != "image"}
            body["params"] = params
        if self.prior_alpha is not None:
            body.update(prior_alpha=self.prior_alpha, prior_beta=self.prior_beta)
        return body


def _undo(stack: ExitStack, progress: Progress, what: str, action: Callable[[], object]) -> None:
    """Register an undo step that reports, and never hides the error that caused the rollback."""
    def run() -> None:
        progress.step(f"rolling back: {what}")
        try:
            action()
        except Exception as exc:  # keep undoing the rest; say what is left behind
            progress.note(f"could not {what}: {exc}")
    stack.callback(run)


@dataclass(frozen=True)
class Registration:
    """How a deployed page server enters the registry: a variant added to its experiment
    (``add``), or a new experiment (``create``); each action with its progress message."""

    registering: str
    register: Callable[[str], object]  # paused, given the page server's upstream
    unregistering: str
    unregister: Callable[[], object]
    activating: str
    activate: Callable[[], object]


def launch(target: Target, spec: VariantSpec, registration: Registration, progress: Progress, undo: ExitStack, *,
           health_timeout: float, reload_nginx: Callable[[], None] | None) -> Deployment:
    """Steps 2-5 of the module's docstring; each step's undo goes on ``undo``, which the caller
    closes when a step fails (after its own steps' undos) or empties once all is done."""
    deployment = target.deploy(spec, progress, health_timeout)
    _undo(undo, progress, f"stop {deployment.where}",
          lambda: target.undeploy(spec.experiment, spec.variant_id, progress))

    progress.step(f"{registration.registering} as paused (upstream {deployment.upstream})")
    registration.register(deployment.upstream)
    reloaded = []

    def unregister() -> None:
        registration.unregister()
        if reloaded and reload_nginx:
            reload_nginx()  # take the upstream back off the allowlist
    _undo(undo, progress, registration.unregistering, unregister)

    if reload_nginx is not None:
        progress.step("reloading NGINX")
        reload_nginx()
        reloaded.append(True)
    else:
        progress.note(f"NGINX not reloaded by this command ({target.name} target): its allowlist must admit "
                      f"{deployment.upstream} (a service-name pattern, or re-render it with croupier.nginx.render)")
    progress.step(registration.activating)
    registration.activate()
    return deployment


def add_variant(admin: AdminClient, target: Target, new: NewVariant, progress: Progress, *,
                health_timeout: float, reload_nginx: Callable[[], None] | None) -> Deployment:
    spec = new.spec
    exp, vid = spec.experiment, spec.variant_id
    registration = Registration(
        f"registering {vid!r} in experiment {exp!r}",
        lambda upstream: admin.add_variant(exp, new.registration(upstream)),
        f"remove {vid!r} from the experiment", lambda: admin.remove_variant(exp, vid),
        f"activating {vid!r}", lambda: admin.update_variant(exp, vid, {"status": "active"}))
    with ExitStack() as undo:
        if spec.params_file is not None:
            write_params(spec.params_file, spec.params)
            _undo(undo, progress, f"delete {spec.params_file}", lambda: Path(spec.params_file).unlink(missing_ok=True))
        deployment = launch(target, spec, registration, progress, undo, health_timeout=health_timeout,
                            reload_nginx=reload_nginx)
        undo.pop_all()
    return deployment
