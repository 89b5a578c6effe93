"""The order of adding a variant, and its rollback, with recording fakes of the API and target."""

from __future__ import annotations

import pytest

from croupier.scripts.admin_client import AdminError
from croupier.scripts.progress import Progress
from croupier.scripts.targets import Deployment, DeployError, VariantSpec
from croupier.scripts.variant_add import NewVariant, add_variant

PARAMS = {"id": "d", "experiment": "demo", "headline": "Hello", "cta": "Go", "name": "Hello"}


class Recorder:
    def __init__(self, fail: str = "") -> None:
        self.steps: list[str] = []
        self.fail = fail

    def _step(self, step: str) -> None:
        self.steps.append(step)
        if step == self.fail:
            raise AdminError(f"{step} failed") if not step.startswith("deploy") else DeployError("deploy failed")


class FakeAdmin:
    def __init__(self, rec: Recorder) -> None:
        self.rec, self.bodies = rec, []

    def add_variant(self, exp, body):
        self.bodies.append(body)
        self.rec._step(f"register {body['status']}")

    def update_variant(self, exp, vid, changes):
        self.rec._step(f"set {changes['status']}")

    def remove_variant(self, exp, vid):
        self.rec._step("unregister")


class FakeTarget:
    name = "fake"

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def deploy(self, spec, progress, health_timeout):
        self.rec._step("deploy")
        return Deployment("10.0.0.7:8080", "fake")

    def undeploy(self, exp, vid, progress):
        self.rec._step("undeploy")
        return ["fake"]


def run(tmp_path, fail=""):
    rec = Recorder(fail)
    admin = FakeAdmin(rec)
    new = NewVariant(VariantSpec("demo", "d", PARAMS, tmp_path / "demo" / "d.json"), 10.0, 190.0)
    try:
        add_variant(admin, FakeTarget(rec), new, Progress(quiet=True), health_timeout=1,
                    reload_nginx=lambda: rec._step("reload"))
    except (AdminError, DeployError):
        pass
    return rec.steps, admin.bodies


def test_registered_paused_then_nginx_reloaded_then_activated(tmp_path):
    steps, bodies = run(tmp_path)
    assert steps == ["deploy", "register paused", "reload", "set active"]
    assert bodies == [{"id": "d", "upstream": "10.0.0.7:8080", "status": "paused", "name": "Hello",
                       "params": PARAMS, "prior_alpha": 10.0, "prior_beta": 190.0}]
    assert (tmp_path / "demo" / "d.json").exists()


@pytest.mark.parametrize("fail, undone", [
    ("deploy", []),
    ("register paused", ["undeploy"]),
    ("reload", ["unregister", "undeploy"]),
    ("set active", ["unregister", "reload", "undeploy"]),
])
def test_a_failure_undoes_the_steps_before_it_newest_first(tmp_path, fail, undone):
    steps, _ = run(tmp_path, fail)
    assert steps[steps.index(fail) + 1:] == undone
    assert not (tmp_path / "demo" / "d.json").exists()
