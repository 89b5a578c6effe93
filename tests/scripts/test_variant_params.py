"""A new variant's params from a template: what changes, what stays, errors that name the flag."""

from __future__ import annotations

import json

import pytest

from croupier.scripts.processes import ROOT
from croupier.scripts.variant_params import PageChanges, build_params, load_template, write_params
from croupier.scripts.variant_table import stats_table
from croupier.variants.params import InvalidParams

CONTROL = load_template(ROOT / "variants" / "examples" / "demo" / "a.json")


def test_changes_apply_and_the_rest_of_the_template_stays():
    params = build_params(CONTROL, "demo", "d", PageChanges(
        headline="New headline", copy=["One", "Two"], colors={"primary": "#123456"}, image="phone"))
    assert (params["id"], params["experiment"], params["headline"], params["copy"]) == \
        ("d", "demo", "New headline", ["One", "Two"])
    assert params["colors"] == {**CONTROL["colors"], "primary": "#123456"}
    assert params["brand"] == CONTROL["brand"] and params["form"] == CONTROL["form"]
    assert params["name"] == "New headline"  # not the template's name


@pytest.mark.parametrize("changes, message", [
    (PageChanges(headline=""), "headline: must not be empty (--headline)"),
    (PageChanges(copy=["ok", " "]), "copy[1]: must be a non-empty string (--copy)"),
    (PageChanges(colors={"accent": "#12345"}),
     "colors.accent: must be a colour like '#1f7a5c', got '#12345' (--accent)"),
    (PageChanges(image="data:text/html;base64,PHNjcmlwdD4="), "image: data: URI must be base64 PNG"),
])
def test_invalid_pages_name_the_flag(changes, message):
    with pytest.raises(InvalidParams) as caught:
        build_params(CONTROL, "demo", "d", changes)
    assert message in str(caught.value)


def test_write_refuses_to_overwrite(tmp_path):
    path = tmp_path / "demo" / "d.json"
    write_params(path, {"id": "d"})
    assert json.loads(path.read_text()) == {"id": "d"}
    with pytest.raises(FileExistsError):
        write_params(path, {"id": "e"})


def test_stats_table():
    stats = {"experiment": "demo", "status": "running", "policy": "thompson", "goal": "signup", "winner": None,
             "variants": [{"id": "a", "control": True, "status": "active", "trials": 1200, "conversions": 48,
                           "rate": 0.04, "ci95": [0.03, 0.052], "p_best": 0.12, "share": 0.2},
                          {"id": "d", "control": False, "status": "paused", "trials": 0, "conversions": 0,
                           "rate": 0.0, "ci95": [0.0, 0.6], "p_best": 0.0, "share": 0.0}]}
    lines = stats_table(stats).splitlines()
    assert lines[0] == "experiment demo: running, policy thompson, goal signup"
    assert lines[1].split() == ["variant", "status", "trials", "conv", "rate", "95%", "CI", "P(best)", "share"]
    assert lines[2].split() == ["a", "(control)", "active", "1200", "48", "4.0%", "3.0%-5.2%", "0.12", "20.0%"]
    assert lines[3].split()[:2] == ["d", "paused"]
