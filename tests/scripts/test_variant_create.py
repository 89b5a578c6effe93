"""croupier-variant create: a factorial experiment launched with one command. The order and its
rollback with recording fakes; the declaration's checks; then against a real local stack
(tests/conftest.py's make_stack): visitors through NGINX get the page server's arms, and a
refused declaration or a failure after the deploy leaves nothing behind."""

from __future__ import annotations

import copy
import html
import json
from pathlib import Path

import pytest

from croupier.router.experiments import parse_experiment
from croupier.scripts.admin_client import AdminError
from croupier.scripts.processes import ROOT, pid_alive
from croupier.scripts.progress import Progress
from croupier.scripts.targets import Deployment, DeployError
from croupier.scripts.variant_create import NewExperiment, create_experiment, read_declaration
from croupier.variants.params import InvalidParams
from tests.conftest import Visitor, eventually
from tests.scripts.test_variant_failures import processes_with

EXAMPLE = ROOT / "variants" / "examples" / "spring-mvt.json"
SPRING = json.loads(EXAMPLE.read_text())


def write(tmp_path: Path, data: dict, name: str = "spring.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# The order, with recording fakes of the admin API, the target and NGINX.

class Recorder:
    def __init__(self, fail: str = "") -> None:
        self.steps: list[str] = []
        self.fail = fail

    def step(self, step: str):
        self.steps.append(step)
        if step == self.fail:
            raise DeployError("deploy failed") if step == "deploy" else AdminError(f"{step} failed", 409)


class FakeAdmin:
    def __init__(self, rec: Recorder) -> None:
        self.rec, self.bodies = rec, []

    def create_experiment(self, body):
        self.bodies.append(body)
        self.rec.step(f"create {body['status']}")

    def update_experiment(self, exp, changes):
        self.rec.step(f"set {changes['status']}")

    def delete_experiment(self, exp):
        self.rec.step("delete")


class FakeTarget:
    name = "fake"

    def __init__(self, rec: Recorder) -> None:
        self.rec, self.specs = rec, []

    def deploy(self, spec, progress, health_timeout):
        self.specs.append(spec)
        self.rec.step("deploy")
        return Deployment("127.0.0.1:9300", "fake")

    def undeploy(self, exp, vid, progress):
        self.rec.step("undeploy")
        return ["fake"]


def run(tmp_path, fail=""):
    rec = Recorder(fail)
    admin, target = FakeAdmin(rec), FakeTarget(rec)
    new = read_declaration(write(tmp_path, SPRING), now=0)
    try:
        create_experiment(admin, target, new, Progress(quiet=True), health_timeout=1,
                          reload_nginx=lambda: rec.step("reload"))
    except (AdminError, DeployError):
        pass
    return rec.steps, admin.bodies, target.specs


def test_created_paused_with_the_page_servers_upstream_then_nginx_reloaded_then_running(tmp_path):
    steps, bodies, specs = run(tmp_path)
    assert steps == ["deploy", "create paused", "reload", "set running"]
    expected = copy.deepcopy(SPRING)
    expected["variants"][0]["upstream"] = "127.0.0.1:9300"  # the file's 127.0.0.1:9201 replaced
    assert bodies == [{**expected, "status": "paused"}]
    spec = specs[0]
    assert (spec.experiment, spec.variant_id, spec.params) == ("spring-mvt", "page", None)
    assert spec.declaration == SPRING and spec.declaration_file == tmp_path / "spring.json"


@pytest.mark.parametrize("fail, undone", [
    ("deploy", []),
    ("create paused", ["undeploy"]),
    ("reload", ["delete", "undeploy"]),
    ("set running", ["delete", "reload", "undeploy"]),
])
def test_a_failure_undoes_the_steps_before_it_newest_first(tmp_path, fail, undone):
    steps, _, _ = run(tmp_path, fail)
    assert steps[steps.index(fail) + 1:] == undone


# The declaration's checks: the admin API's and the page server's, named by field and file.

def changed(**fields) -> dict:
    data = copy.deepcopy(SPRING)
    for key, value in fields.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return data


TOO_LONG = "x" * 41
BAD_DECLARATIONS = [
    (changed(constraints=[{"cta": "try", "offer": "x"}]), "constraints[0].offer: unknown level 'x'"),
    (changed(factors={**SPRING["factors"], "cta": {**SPRING["factors"]["cta"], "long": {"cta": TOO_LONG}}}),
     "factors.cta.long: cta: must be at most 40 characters"),
    (changed(factors=None, constraints=None, policy=None), "factors: missing; create launches a factorial experiment"),
    (changed(status="paused"), "status: 'paused'; create starts the experiment running"),
    (changed(updated_at=1.0), "updated_at: is set by the server"),
    (changed(policy="ucb1"), "policy: a factorial experiment takes one of"),
]


@pytest.mark.parametrize("data, message", BAD_DECLARATIONS)
def test_a_bad_declaration_is_refused_naming_the_field_and_the_file(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ValueError) as refused:
        read_declaration(path, now=0)
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value)


def test_a_file_that_is_no_declaration_is_refused(tmp_path):
    with pytest.raises(InvalidParams, match="missing.json: cannot read declaration file"):
        read_declaration(tmp_path / "missing.json", now=0)
    with pytest.raises(ValueError, match="list.json: an experiment's declaration is a JSON object"):
        read_declaration(write(tmp_path, [SPRING], "list.json"), now=0)  # type: ignore[arg-type]


def test_the_page_server_serves_the_declaration_the_registry_gets_the_deployments_upstream(tmp_path):
    new = NewExperiment(tmp_path / "s.json", SPRING, parse_experiment(SPRING))
    body = new.registration("127.0.0.1:9999")
    assert body["variants"][0]["upstream"] == "127.0.0.1:9999" and body["status"] == "paused"
    assert SPRING["variants"][0]["upstream"] == "127.0.0.1:9201"  # the file's JSON is left as it is
    assert new.spec("registry/x:1").page_source() == ("VARIANT_EXPERIMENT", SPRING)


# Against a real local stack: redis-server, a router, the demo variants and NGINX.

def experiment_status(stack, exp: str = "spring-mvt") -> dict | None:
    with stack.admin() as admin:
        response = admin.get(f"/experiments/{exp}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def test_create_launches_a_factorial_experiment_with_the_local_target(variant_cli):
    cli, stack = variant_cli, variant_cli.stack
    created = cli("create", str(EXAMPLE), "--json")
    assert created.code == 0, created.err
    result = created.json()
    upstream = result["upstream"]
    assert result["status"] == "running" and result["combinations"] == 10 and upstream.startswith("127.0.0.1:")
    assert upstream != "127.0.0.1:9201"  # a free port, not the file's
    for step in (f"upstream: {EXAMPLE} says 127.0.0.1:9201; the experiment gets the page server's, {upstream}",
                 "starting variant server 'page'", "waiting for", "creating experiment 'spring-mvt' as paused",
                 "reloading NGINX", "setting experiment 'spring-mvt' running"):
        assert step in created.err
    pid = int((cli.pid_dir / "spring-mvt" / "page.pid").read_text().split()[0])
    assert pid_alive(pid)
    assert upstream in stack.nginx_conf.read_text()  # on NGINX's allowlist
    stored = experiment_status(stack)
    assert stored["status"] == "running" and stored["variants"][0]["upstream"] == upstream

    arms = {v.id: v.params for v in parse_experiment(SPRING).variants}

    def new_visitor_page():
        visitor = Visitor(stack.config.base_url)
        try:
            page = visitor.get("/spring/")
            # the router's own choice (its cookie), not NGINX failing open before the router knew it
            assert page.status_code == 200 and "croupier_spring-mvt=" in page.headers.get("set-cookie", "")
            return page
        finally:
            visitor.close()

    for _ in range(5):
        page = eventually(new_visitor_page, timeout=15, interval=0.2)
        arm = page.text.split('data-croupier-variant="', 1)[1].split('"', 1)[0]
        assert arm in arms, arm
        text = html.unescape(page.text)
        assert arms[arm]["headline"] in text and arms[arm]["cta"] in text  # the arm's merged copy
        assert ("5% cashback" in text) == arm.endswith("_cashback")

    table = cli("list", "spring-mvt")
    assert table.code == 0 and "headline" in table.out and "cta" in table.out

    # launched twice: refused by the page server already running, which is left alone
    again = cli("create", str(EXAMPLE))
    assert again.code == 1 and f"still runs (pid {pid}" in again.err and f"kill {pid}" in again.err
    assert pid_alive(pid) and experiment_status(stack)["status"] == "running"


def assert_nothing_left(cli, declaration: Path, conf_before: str) -> None:
    assert not list(cli.pid_dir.glob("spring-mvt/*.pid"))
    assert processes_with(str(declaration)) == []
    assert cli.stack.nginx_conf.read_text() == conf_before


def test_a_bad_declaration_changes_nothing(variant_cli, tmp_path):
    cli = variant_cli
    conf = cli.stack.nginx_conf.read_text()
    bad = write(tmp_path, changed(constraints=[{"cta": "try", "offer": "x"}]))
    refused = cli("create", str(bad), "--json")
    assert refused.code == 1 and refused.json() == {"error": f"{bad}: constraints[0].offer: unknown level 'x'"}
    assert "starting" not in refused.err
    assert experiment_status(cli.stack) is None
    assert_nothing_left(cli, bad, conf)

    missing = cli("create", str(tmp_path / "missing.json"))
    assert missing.code == 1 and "missing.json: cannot read declaration file" in missing.err
    usage = cli("create", str(EXAMPLE), "--image-ref", "registry/x:1")
    assert usage.code == 2 and "--image-ref needs --target docker or k8s" in usage.err
    assert experiment_status(cli.stack) is None
    assert_nothing_left(cli, EXAMPLE, conf)


def test_a_failure_after_the_deploy_stops_the_page_server(variant_cli, tmp_path):
    cli = variant_cli
    with cli.stack.admin() as admin:  # the id is taken: the admin API answers 409 once the server runs
        assert admin.post("/experiments", json=SPRING).status_code == 201
    conf = cli.stack.nginx_conf.read_text()
    declaration = write(tmp_path, SPRING)
    failed = cli("create", str(declaration))
    assert failed.code == 1 and "experiment 'spring-mvt' already exists" in failed.err
    assert "starting variant server 'page'" in failed.err and "rolling back: stop pid" in failed.err
    assert_nothing_left(cli, declaration, conf)
    # the experiment that was there is not the command's to delete
    assert experiment_status(cli.stack)["variants"][0]["upstream"] == "127.0.0.1:9201"
