"""The variant server of a factorial experiment: any arm from the declaration file, the control
for anything else, and the file read again when it changes."""

from __future__ import annotations

import copy
import html
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from croupier.router.experiments import parse_experiment
from croupier.variants.app import create_app
from croupier.variants.cli import ConfigError, ServerConfig, parse_config
from croupier.variants.factorial import FactorialPages, load_declaration
from croupier.variants.params import InvalidParams

EXAMPLE = Path(__file__).resolve().parents[2] / "variants" / "examples" / "demo" / "a.json"
BASE = {key: value for key, value in json.loads(EXAMPLE.read_text()).items() if key not in ("id", "experiment")}
SPRING = {
    "id": "spring", "path_prefix": "/spring", "policy": "thompson",
    "variants": [{"id": "page", "upstream": "127.0.0.1:9101", "params": BASE}],
    "factors": {
        "headline": {"plain": {"headline": "Spring sale"}, "savings": {"headline": "Save 20% this spring"}},
        "cta": {"go": {"cta": "Go"}, "buy-now": {"cta": "Buy now"}},
        "offer": {"none": {}, "cashback": {"badge": "5% cashback", "colors": {"primary": "#7a1f5c"}}},
    },
    "constraints": [{"offer": "cashback", "cta": "buy-now"}],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, declaration: dict) -> Path:
    path.write_text(json.dumps(declaration, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def declaration_file(tmp_path) -> Path:
    return write(tmp_path / "spring.json", SPRING)


def page_of(client: TestClient, arm: str | None) -> str:
    return client.get("/spring/", headers={} if arm is None else {"X-Croupier-Variant": arm}).text


def shown(page: str) -> dict[str, str]:
    tag = re.search(r"<html[^>]*>", page).group(0)
    attrs = dict(re.findall(r'(data-croupier-[a-z]+)="([^"]*)"', tag))
    return {"experiment": attrs.get("data-croupier-experiment"), "variant": attrs["data-croupier-variant"]}


def test_every_arm_renders_its_merged_copy(declaration_file):
    client = TestClient(create_app(FactorialPages(declaration_file)))
    arms = parse_experiment(SPRING).variants
    assert len(arms) == 6
    for arm in arms:
        page = page_of(client, arm.id)
        assert shown(page) == {"experiment": "spring", "variant": arm.id}
        for field in ("headline", "cta", "badge"):
            assert html.escape(arm.params[field]) in page, (arm.id, field)
        assert f"--primary: {arm.params['colors']['primary']};" in page
        assert "Brightside" in page  # the rest is the base's
    cashback = page_of(client, "savings_go_cashback")
    assert "5% cashback" in cashback and "#7a1f5c" in cashback and "Save 20% this spring" in cashback


@pytest.mark.parametrize("header", [None, "", "savings_buy-now_cashback", "gold_go_none", "page", "savings_go",
                                    "Savings.go.none", "savings_go_none_x", '"><script>', "a" * 300])
def test_anything_else_renders_the_control_arm(declaration_file, header):
    client = TestClient(create_app(FactorialPages(declaration_file)))
    page = page_of(client, header)
    assert shown(page) == {"experiment": "spring", "variant": "plain_go_none"}
    assert "Spring sale" in page and ">Go<" in page and "5% cashback" not in page


def test_the_declared_control_is_the_fallback(tmp_path):
    pages = FactorialPages(write(tmp_path / "spring.json", {**SPRING, "control": "savings_go_none"}))
    assert shown(page_of(TestClient(create_app(pages)), "nope"))["variant"] == "savings_go_none"


def test_the_experiment_header_names_the_experiment(declaration_file):
    client = TestClient(create_app(FactorialPages(declaration_file)))
    page = client.get("/", headers={"X-Croupier-Experiment": "spring-2", "X-Croupier-Variant": "plain_go_none"}).text
    assert shown(page)["experiment"] == "spring-2"
    assert shown(client.get("/", headers={"X-Croupier-Experiment": "Bad Id"}).text)["experiment"] == "spring"


def test_thanks_page_and_health(declaration_file):
    client = TestClient(create_app(FactorialPages(declaration_file)))
    thanks = client.get("/spring/thanks", headers={"X-Croupier-Variant": "savings_go_none"}).text
    assert "Welcome to Brightside" in thanks and shown(thanks)["variant"] == "savings_go_none"
    assert client.get("/healthz").json() == {
        "status": "ok", "variant": "page", "experiment": "spring",
        "factors": {"headline": ["plain", "savings"], "cta": ["go", "buy-now"], "offer": ["none", "cashback"]}}


def test_a_changed_file_is_read_again_at_most_once_a_second(declaration_file, caplog):
    clock = Clock()
    client = TestClient(create_app(FactorialPages(declaration_file, clock=clock)))
    grown = copy.deepcopy(SPRING)
    grown["factors"]["cta"]["sign-up"] = {"cta": "Sign me up today"}
    write(declaration_file, grown)

    clock.now += 0.5
    assert shown(page_of(client, "plain_sign-up_none"))["variant"] == "plain_go_none"  # not looked at yet
    clock.now += 0.5
    page = page_of(client, "plain_sign-up_none")
    assert shown(page)["variant"] == "plain_sign-up_none" and "Sign me up today" in page

    # a bad file keeps what was read before, and says why
    broken = copy.deepcopy(grown)
    broken["factors"]["cta"]["sign-up"] = {"cta": "x" * 60}
    write(declaration_file, broken)
    clock.now += 1
    with caplog.at_level(logging.ERROR, logger="croupier.variants"):
        page = page_of(client, "plain_sign-up_none")
    assert "Sign me up today" in page
    assert "factors.cta.sign-up: cta: must be at most 40 characters" in caplog.text
    assert "still serving the declaration read before" in caplog.text
    caplog.clear()
    clock.now += 1
    with caplog.at_level(logging.ERROR, logger="croupier.variants"):
        assert "Sign me up today" in page_of(client, "plain_sign-up_none")
    assert caplog.text == ""  # looked at again, said once
    declaration_file.write_text("{ not json", encoding="utf-8")
    clock.now += 1
    assert "Sign me up today" in page_of(client, "plain_sign-up_none")
    declaration_file.unlink()
    clock.now += 1
    assert "Sign me up today" in page_of(client, "plain_sign-up_none")

    # a file completed after a look that caught it half-written, with the same signature
    # (time and size) as the half: read at the next look all the same
    text = json.dumps(SPRING)
    declaration_file.write_text(text[:-1] + " ", encoding="utf-8")
    signature = declaration_file.stat()
    clock.now += 1
    page_of(client, "plain_sign-up_none")
    declaration_file.write_text(text, encoding="utf-8")
    os.utime(declaration_file, ns=(signature.st_atime_ns, signature.st_mtime_ns))
    clock.now += 1
    assert shown(page_of(client, "plain_sign-up_none"))["variant"] == "plain_go_none"



@pytest.mark.parametrize("change, error", [
    (lambda d: d["factors"]["cta"].update({"go": {"cta": "x" * 41}}),
     "factors.cta.go: cta: must be at most 40 characters"),  # a control level: checked with the base
    (lambda d: d["factors"]["offer"].update({"cashback": {"colors": {"primary": "pink"}}}),
     "factors.offer.cashback: colors.primary: must be a colour like"),
    (lambda d: d["factors"]["offer"].update({"cashback": {"colour": "#ffffff"}}),
     "factors.offer.cashback: colour: unknown field"),
    (lambda d: d["factors"]["cta"].update({"go": {}}) or d["variants"][0]["params"].pop("cta"),
     "variants[0].params: cta: is required"),
    (lambda d: d["variants"][0]["params"].update(cta="x" * 41) or d.update(constraints=[]) or d["factors"].pop("cta"),
     "variants[0].params: cta: must be at most 40 characters"),
    (lambda d: d.update(constraints=[{"offer": "cashback", "cta": "nope"}]), "constraints[0].cta: unknown level 'nope'"),
    (lambda d: d.pop("factors"), "factors: must be a JSON object"),
])
def test_a_declaration_that_cannot_render_is_refused_at_start(tmp_path, change, error):
    data = copy.deepcopy(SPRING)
    change(data)
    path = write(tmp_path / "spring.json", data)
    with pytest.raises(InvalidParams) as raised:
        load_declaration(path)
    assert str(raised.value).startswith(f"{path}: {error}"), str(raised.value)
    with pytest.raises(InvalidParams):
        FactorialPages(path)


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(InvalidParams, match="missing.json: cannot read experiment file"):
        load_declaration(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(InvalidParams, match=r"bad.json: not valid JSON \(line 1"):
        load_declaration(tmp_path / "bad.json")


def test_command_line():
    assert parse_config(["--experiment", "spring.json"], {}) == ServerConfig("", experiment_path="spring.json")
    assert parse_config([], {"VARIANT_EXPERIMENT": "s.json"}).experiment_path == "s.json"
    # a flag wins over either variable
    assert parse_config(["--params", "a.json"], {"VARIANT_EXPERIMENT": "s.json"}) == ServerConfig("a.json")
    assert parse_config(["--experiment", "s.json"], {"VARIANT_PARAMS": "a.json"}).params_path == ""
    with pytest.raises(ConfigError, match="^--params and --experiment: give one"):
        parse_config(["--params", "a.json", "--experiment", "s.json"], {})
    with pytest.raises(ConfigError, match="^VARIANT_PARAMS and VARIANT_EXPERIMENT: set one"):
        parse_config([], {"VARIANT_PARAMS": "a.json", "VARIANT_EXPERIMENT": "s.json"})


def test_the_server_imports_neither_numpy_nor_redis():
    """The variant image installs starlette, uvicorn and jinja2 alone."""
    code = """
import sys
sys.modules["numpy"] = sys.modules["redis"] = None  # importing either raises ImportError
import croupier.variants.cli, croupier.variants.app, croupier.variants.factorial
assert "croupier.router.experiments" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
