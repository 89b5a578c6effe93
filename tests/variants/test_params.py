import json
from pathlib import Path

import pytest

from croupier.router.rules import GOAL, ID
from croupier.variants.illustrations import ILLUSTRATIONS
from croupier.variants.params import InvalidParams, Price, load_params, parse_params

EXAMPLES = Path(__file__).resolve().parents[2] / "variants" / "examples" / "demo"
MINIMAL = {"id": "a", "headline": "Save more", "cta": "Start"}


def params(**changes):
    return {**MINIMAL, **changes}


def error(data) -> str:
    with pytest.raises(InvalidParams) as caught:
        parse_params(data)
    return str(caught.value)


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_demo_examples_load(name):
    loaded = load_params(EXAMPLES / f"{name}.json")
    assert loaded.id == name
    assert loaded.experiment == "demo"
    assert loaded.brand == "Brightside"
    assert loaded.illustration in ILLUSTRATIONS


def test_demo_examples_are_genuinely_different():
    loaded = [load_params(EXAMPLES / f"{name}.json") for name in "abc"]
    for attribute in ("headline", "subheadline", "cta", "colors", "image", "copy", "testimonial"):
        values = [getattr(p, attribute) for p in loaded]
        assert len(set(values)) == 3, f"{attribute} is shared between demo variants"


def test_minimal_params_get_defaults():
    loaded = parse_params(MINIMAL)
    assert (loaded.experiment, loaded.goal, loaded.copy, loaded.image) == ("", "signup", (), "")
    assert loaded.price is None and loaded.testimonial is None
    assert loaded.form.button and loaded.thanks.headline


@pytest.mark.parametrize("missing", ["id", "headline", "cta"])
def test_required_fields_are_named(missing):
    data = dict(MINIMAL)
    del data[missing]
    assert error(data) == f"{missing}: is required"


@pytest.mark.parametrize(("data", "starts"), [
    (params(id="Variant A"), ID.error("id")),
    (params(experiment="x" * 41), "experiment: must be at most 40 characters"),
    (params(headline="  "), "headline: must not be empty"),
    (params(headline=12), "headline: must be a string, got int"),
    (params(headline="h" * 141), "headline: must be at most 140 characters"),
    (params(headlin="typo"), "headlin: unknown field"),
    (params(colors={"primary": "blue"}), "colors.primary: must be a colour like '#1f7a5c', got 'blue'"),
    (params(colors={"text": "#12345"}), "colors.text: must be a colour"),
    (params(colors={"primry": "#123456"}), "colors.primry: unknown field"),
    (params(colors="#123456"), "colors: must be a JSON object"),
    (params(copy=["fine", 3]), "copy[1]: must be a non-empty string"),
    (params(copy={"a": 1}), "copy: must be a list of strings"),
    (params(copy=["x"] * 9), "copy: at most 8 items"),
    (params(copy_style="table"), "copy_style: must be one of bullets, paragraphs"),
    (params(image="unicorn"), "image: must be one of growth-chart, phone, piggy-bank, spring"),
    (params(image="https://cdn.example.com/a.png"), "image: must be one of"),
    (params(image="data:text/html;base64,PHNjcmlwdD4="), "image: data: URI must be base64 PNG"),
    (params(image="data:image/png,notbase64"), "image: data: URI must be base64 PNG"),
    (params(price={"period": "/ month"}), "price.amount: is required"),
    (params(price={"amount": "€1", "currency": "EUR"}), "price.currency: unknown field"),
    (params(testimonial={"quote": "Great"}), "testimonial.author: is required"),
    (params(form={"button": 7}), "form.button: must be a string"),
    (params(thanks={"title": "x"}), "thanks.title: unknown field"),
    (params(goal="Sign Up"), GOAL.error("goal")),
    ([1, 2], "params: must be a JSON object, got list"),
])
def test_bad_fields_are_named(data, starts):
    assert error(data).startswith(starts)


def test_copy_accepts_one_paragraph_as_a_string():
    assert parse_params(params(copy=" One paragraph. ")).copy == ("One paragraph.",)


def test_price_accepts_a_plain_string():
    assert parse_params(params(price="€4.99")).price == Price(amount="€4.99")


def test_image_accepts_a_base64_data_uri():
    uri = "data:image/png;base64,iVBORw0KGgo="
    loaded = parse_params(params(image=uri))
    assert loaded.image == uri and loaded.illustration == ""


def test_colors_are_normalised_to_lowercase():
    assert parse_params(params(colors={"primary": "#ABCDEF"})).colors.primary == "#abcdef"


def test_file_errors_name_the_file_and_the_field(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps(params(colors={"accent": "red"})))
    with pytest.raises(InvalidParams, match=r"b\.json: colors\.accent: must be a colour"):
        load_params(bad)


def test_invalid_json_names_the_file_and_position(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"id": "a",\n "headline": }')
    with pytest.raises(InvalidParams, match=r"broken\.json: not valid JSON \(line 2, column"):
        load_params(bad)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InvalidParams, match=r"nope\.json: cannot read params file"):
        load_params(tmp_path / "nope.json")
