"""croupier-variant add-level, remove-level and list on a factorial experiment, against a real
router and redis-server; the page server's declaration file changes with the registry."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from croupier.scripts.admin_client import AdminClient
from croupier.scripts.processes import Process, free_port, start_redis, start_router, stop_all
from croupier.scripts.progress import Progress
from croupier.scripts.variant import main
from croupier.scripts.variant_levels import DeclarationFile, LevelChange, LevelFailed, change_level
from croupier.scripts.variant_table import factor_tables
from croupier.variants.app import create_app
from croupier.variants.factorial import FactorialPages

TOKEN = "levels-test-token-0123456789"
SPRING = {
    "id": "spring", "path_prefix": "/spring", "policy": "thompson",
    "variants": [{"id": "page", "upstream": "127.0.0.1:9101",
                  "params": {"brand": "Brightside", "headline": "Base", "cta": "Go"}}],
    "factors": {
        "headline": {"plain": {"headline": "Spring sale"}, "savings": {"headline": "Save 20% this spring"}},
        "cta": {"go": {"cta": "Go"}, "buy-now": {"cta": "Buy now"}},
    },
    "constraints": [{"headline": "plain", "cta": "buy-now"}],
}


@contextmanager
def running_router(run_dir: Path) -> Iterator[SimpleRouter]:
    redis_port, router_port = free_port(), free_port()
    started = []
    try:
        started.append(start_redis(run_dir, redis_port))
        started.append(start_router(run_dir, router_port, {
            "CROUPIER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROUPIER_ADMIN_TOKEN": TOKEN,
            "CROUPIER_SECRET": "levels-test-secret-0123456789"}))
        yield SimpleRouter(f"http://127.0.0.1:{router_port}", started[-1])
    finally:
        stop_all(started)


class SimpleRouter:
    def __init__(self, url: str, process: Process) -> None:
        self.url = url
        self.process = process
        self.api = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"})

    def create(self, experiment: dict) -> None:
        self.api.delete(f"/experiments/{experiment['id']}")  # what an earlier test of the module left
        response = self.api.post("/experiments", json=experiment)
        assert response.status_code == 201, response.text

    def declaration(self, exp: str = "spring") -> dict:
        stored = self.api.get(f"/experiments/{exp}").json()
        return {"factors": stored["factors"], "constraints": stored["constraints"]}


@pytest.fixture(scope="module")
def router(tmp_path_factory) -> Iterator[SimpleRouter]:
    """One router and redis-server for the module's tests; each starts from a new experiment."""
    with running_router(tmp_path_factory.mktemp("router")) as router:
        yield router


@pytest.fixture
def spring(router, tmp_path) -> Path:
    """The experiment registered afresh, and the page server's declaration file."""
    router.create(SPRING)
    path = tmp_path / "spring.json"
    path.write_text(json.dumps(SPRING, indent=2), encoding="utf-8")
    return path


def cli(router, capsys, tmp_path, *args: str):
    capsys.readouterr()
    code = main([*args, "--admin-url", router.url, "--token", TOKEN, "--stack-dir", str(tmp_path / "no-stack")],
                environ={})
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fragment(tmp_path, params: object) -> str:
    path = tmp_path / "fragment.json"
    path.write_text(json.dumps(params), encoding="utf-8")
    return str(path)


def test_add_and_remove_a_level(router, spring, capsys, tmp_path):
    page_server = TestClient(create_app(FactorialPages(spring)))
    code, out, err = cli(router, capsys, tmp_path, "add-level", "spring", "cta", "sign-up",
                         "--params", fragment(tmp_path, {"cta": "Sign me up"}), "--declaration", str(spring), "--json")
    assert code == 0, err
    assert json.loads(out) == {"experiment": "spring", "factor": "cta", "added": "sign-up",
                               "levels": ["go", "buy-now", "sign-up"], "combinations": 5,
                               "declaration": str(spring)}
    assert err.index("to " + str(spring)) < err.index("waiting for the page server") < err.index("to experiment")
    stored = router.declaration()
    assert stored["factors"]["cta"] == {"go": {"cta": "Go"}, "buy-now": {"cta": "Buy now"}, "sign-up": {"cta": "Sign me up"}}
    on_disk = json.loads(spring.read_text())
    assert {"factors": on_disk["factors"], "constraints": on_disk["constraints"]} == stored
    assert on_disk["path_prefix"] == "/spring"  # the rest of the file as it was
    page = page_server.get("/spring/", headers={"X-Croupier-Variant": "savings_sign-up"}).text  # read again
    assert "Sign me up" in page and 'data-croupier-variant="savings_sign-up"' in page

    code, out, err = cli(router, capsys, tmp_path, "remove-level", "spring", "cta", "buy-now",
                         "--declaration", str(spring))
    assert code == 0, err
    assert out.strip() == "cta: level 'buy-now' removed from experiment 'spring'; 4 combinations"
    assert router.declaration() == {"factors": {**SPRING["factors"], "cta": {"go": {"cta": "Go"},
                                                                             "sign-up": {"cta": "Sign me up"}}},
                                    "constraints": []}  # the constraint named buy-now
    assert json.loads(spring.read_text())["constraints"] == []


def test_without_the_declaration_file_only_the_registry_changes(router, spring, capsys, tmp_path):
    before = spring.read_text()
    code, out, err = cli(router, capsys, tmp_path, "add-level", "spring", "headline", "bold",
                         "--params", fragment(tmp_path, {"headline": "SPRING!"}))
    assert code == 0, err
    assert "the page server's file is left as it is" in err
    assert "bold" in router.declaration()["factors"]["headline"] and spring.read_text() == before


NO_PARAMS = object()


@pytest.mark.parametrize("args, params, declaration, message", [
    (("add-level", "spring", "cta", "go"), {}, "spring.json", "factors.cta.go: already exists"),
    (("add-level", "spring", "cta", "long"), {"cta": "x" * 41}, "spring.json",
     "factors.cta.long: cta: must be at most 40 characters"),  # the page server would refuse it
    (("add-level", "spring", "cta", "typo"), {"colour": "#ffffff"}, "spring.json", "factors.cta.typo: colour: unknown field"),
    (("add-level", "spring", "cta", "list"), ["Go"], "spring.json", "a level's params must be a JSON object"),
    (("add-level", "spring", "colour", "red"), {}, "spring.json", "factors.colour: unknown factor"),
    (("add-level", "nope", "cta", "x"), {}, "spring.json", "experiment 'nope' not found"),
    (("add-level", "plain", "cta", "x"), {}, None, "factors: experiment 'plain' has none"),
    (("add-level", "spring", "cta", "x"), {}, "autumn.json", "not the declaration of experiment 'spring'"),
    (("add-level", "spring", "cta", "x"), {}, "missing.json", "cannot read declaration file"),
    (("remove-level", "spring", "cta", "go"), NO_PARAMS, "spring.json",
     "factors.cta.go: the control level (the factor's first) cannot be removed"),
    (("remove-level", "spring", "cta", "buy-now"), NO_PARAMS, "spring.json",
     "factors.cta: needs at least 2 levels; add another before removing 'buy-now'"),
])
def test_bad_input_changes_nothing(router, spring, capsys, tmp_path, args, params, declaration, message):
    router.create({"id": "plain", "path_prefix": "/plain", "variants": [{"id": "a", "upstream": "h:1"}]})
    (tmp_path / "autumn.json").write_text(json.dumps({**SPRING, "id": "autumn"}), encoding="utf-8")
    options = [] if params is NO_PARAMS else ["--params", fragment(tmp_path, params)]
    options += ["--declaration", str(tmp_path / declaration)] if declaration else []
    before_file, before_registry = spring.read_text(), router.declaration()
    code, out, err = cli(router, capsys, tmp_path, *args, *options)
    assert code == 1 and message in err, err
    assert spring.read_text() == before_file and router.declaration() == before_registry


def test_a_refused_write_restores_the_declaration_file(router, spring, capsys):
    """Someone removes the experiment while the script waits for the page server: the PATCH
    is refused (404) and the file is as it was."""
    before = spring.read_text()
    with AdminClient(router.url, TOKEN) as admin:
        change = LevelChange("spring", "cta", "sign-up", {"cta": "Sign up"})
        with pytest.raises(LevelFailed, match="nothing was changed \\(the declaration file was restored\\)"):
            change_level(admin, change, Progress(quiet=True), declaration=spring,
                         sleep=lambda seconds: router.api.delete("/experiments/spring"))
    assert spring.read_text() == before


def test_no_answer_is_not_called_nothing(tmp_path):
    """The router stops while the script waits: the change may have reached it or not, and the
    file keeps the level (a page server knowing an extra level harms no one)."""
    with running_router(tmp_path) as router, AdminClient(router.url, TOKEN) as admin:
        router.create(SPRING)
        declaration = tmp_path / "spring.json"
        declaration.write_text(json.dumps(SPRING), encoding="utf-8")
        change = LevelChange("spring", "cta", "sign-up", {"cta": "Sign up"})
        with pytest.raises(LevelFailed, match="may or may not have been made"):
            change_level(admin, change, Progress(quiet=True), declaration=declaration,
                         sleep=lambda seconds: router.process.stop())
    assert "sign-up" in json.loads(declaration.read_text())["factors"]["cta"]


def test_a_file_that_cannot_be_written_puts_the_level_back(router, spring, monkeypatch):
    three = copy.deepcopy(SPRING)
    three["factors"]["cta"]["sign-up"] = {"cta": "Sign up"}
    assert router.api.patch("/experiments/spring", json={"factors": three["factors"]}).status_code == 200
    spring.write_text(json.dumps(three), encoding="utf-8")
    before_registry, before_file = router.declaration(), spring.read_text()

    def refuse(self, text):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(DeclarationFile, "write", refuse)
    with AdminClient(router.url, TOKEN) as admin:
        with pytest.raises(LevelFailed, match="the level was put back, nothing changed"):
            change_level(admin, LevelChange("spring", "cta", "buy-now"), Progress(quiet=True), declaration=spring)
    assert router.declaration() == before_registry and spring.read_text() == before_file


def test_list_names_the_experiment(router, spring, capsys, tmp_path):
    code, out, err = cli(router, capsys, tmp_path, "list", "spring")
    assert code == 0, err
    assert out.startswith("experiment spring: running, policy thompson")


STATS = {"experiment": "spring", "status": "running", "policy": "factorial_thompson", "goal": "signup",
         "winner": None, "variants": [],
         "best": {"arm": "savings_buy-now", "rate": 0.0412, "low": 0.035, "high": 0.048},
         "factors": [
             {"name": "headline", "levels": [
                 {"name": "plain", "rate": 0.031, "low": 0.027, "high": 0.035, "p_best": 0.12, "trials": 1234},
                 {"name": "savings", "rate": 0.038, "low": 0.033, "high": 0.043, "p_best": 0.88, "trials": 1301}]},
             {"name": "cta", "levels": [
                 {"name": "go", "rate": 0.033, "low": 0.029, "high": 0.037, "p_best": 0.4, "trials": 1500},
                 {"name": "buy-now", "rate": 0.036, "low": 0.03, "high": 0.042, "p_best": 0.6, "trials": 1035}]}]}


def test_factor_rollup_table():
    lines = factor_tables(STATS).splitlines()
    assert lines[:2] == ["experiment spring: running, policy factorial_thompson, goal signup",
                         "best combination: savings_buy-now, rate 4.1% (3.5%-4.8%)"]
    assert lines[2] == "" and lines[3].split() == ["headline", "trials", "rate", "95%", "CI", "P(best)"]
    assert lines[4].split() == ["plain", "(control)", "1234", "3.1%", "2.7%-3.5%", "0.12"]
    assert lines[5].split() == ["savings", "1301", "3.8%", "3.3%-4.3%", "0.88"]
    assert lines[7].split()[0] == "cta" and lines[9].split()[0] == "buy-now"
    # the numbers line up under their headings
    assert len({line.index("%") for line in lines[4:6]}) == 1


def test_list_uses_the_rollup_when_the_stats_have_factors():
    from croupier.scripts.variant_table import stats_table
    assert stats_table(STATS) == factor_tables(STATS)
    assert "best combination" not in factor_tables({**copy.deepcopy(STATS), "best": None})
