import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from croupier.variants.app import create_app, thanks_action
from croupier.variants.params import InvalidParams, load_params

EXAMPLES = Path(__file__).resolve().parents[2] / "variants" / "examples" / "demo"
PARAMS = {"id": "b", "experiment": "spring", "brand": "Brightside", "headline": "Find your €600",
          "cta": "Find my €600", "copy": ["One", "Two"], "image": "phone", "goal": "signup"}


@pytest.fixture
def client():
    return TestClient(create_app(PARAMS))


def html_attrs(page: str) -> dict[str, str]:
    tag = re.search(r"<html[^>]*>", page).group(0)
    return dict(re.findall(r'(data-croupier-[a-z]+)="([^"]*)"', tag))


def test_landing_page_renders_the_params(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "Find your €600" in page and "Find my €600" in page and "<li>Two</li>" in page
    assert '<script src="/_croupier/beacon.js" defer></script>' in page
    assert html_attrs(page) == {"data-croupier-experiment": "spring", "data-croupier-variant": "b"}


def test_every_demo_variant_renders():
    for name in "abc":
        params = load_params(EXAMPLES / f"{name}.json")
        page = TestClient(create_app(params)).get("/spring-sale/").text
        assert params.headline.replace("'", "&#39;") in page
        assert html_attrs(page)["data-croupier-variant"] == name


def test_cta_and_signup_form_are_marked_for_the_beacon(client):
    page = client.get("/").text
    assert re.search(r'<a class="button" href="#signup" data-croupier-event="click">Find my €600</a>', page)
    form = re.search(r"<form[^>]*>", page).group(0)
    assert 'method="post"' in form and 'action="thanks"' in form
    assert "data-croupier-convert" in form and 'data-croupier-goal="signup"' in form
    assert re.search(r'<input id="email" name="email" type="email" required', page)


def test_nginx_headers_override_experiment_and_variant(client):
    page = client.get("/", headers={"X-Croupier-Experiment": "demo", "X-Croupier-Variant": "c_2"}).text
    assert html_attrs(page) == {"data-croupier-experiment": "demo", "data-croupier-variant": "c_2"}


@pytest.mark.parametrize("bad", ["Demo", "a b", "x" * 41, '"><script>alert(1)</script>', "-a", ""])
def test_invalid_header_values_are_ignored(client, bad):
    page = client.get("/", headers={"X-Croupier-Experiment": bad, "X-Croupier-Variant": bad}).text
    assert html_attrs(page) == {"data-croupier-experiment": "spring", "data-croupier-variant": "b"}
    assert "<script>alert" not in page


def test_without_an_experiment_the_attribute_is_left_out():
    page = TestClient(create_app({"id": "a", "headline": "H", "cta": "C"})).get("/").text
    assert html_attrs(page) == {"data-croupier-variant": "a"}


def test_params_are_autoescaped():
    app = create_app({**PARAMS, "headline": "<script>alert(1)</script>", "cta": 'Go" onclick="x()',
                      "copy": ["<img src=x onerror=alert(1)>"]})
    page = TestClient(app).get("/").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'onclick="x()' not in page and "<img src=x" not in page


@pytest.mark.parametrize("path", ["/", "/spring-sale", "/spring-sale/", "/a/b/c.html", "/healthz/extra"])
def test_every_other_get_path_is_the_landing_page(client, path):
    response = client.get(path)
    assert response.status_code == 200 and "data-croupier-convert" in response.text


@pytest.mark.parametrize(("path", "action"), [
    ("/", "thanks"), ("/spring-sale/", "thanks"), ("/spring-sale", "./spring-sale/thanks"),
    ("/x/javascript:alert(1)", "./javascript%3Aalert%281%29/thanks"),
])
def test_form_action_stays_under_the_page_path(path, action):
    assert thanks_action(path) == action


@pytest.mark.parametrize("path", ["/thanks", "/spring-sale/thanks", "/spring-sale/thanks/"])
def test_thanks_page(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert "You&#39;re on the list!" in response.text
    assert "beacon.js" not in response.text  # a visit to /thanks is not a view of the page
    assert "data-croupier-convert" not in response.text


def test_signup_post_redirects_to_the_thanks_page(client):
    response = client.post("/spring-sale/thanks", data={"email": "ada@example.com"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "thanks"
    followed = client.post("/spring-sale/thanks", data={"email": "ada@example.com"})
    assert followed.url.path == "/spring-sale/thanks" and "ada@example.com" not in str(followed.url)


def test_post_to_the_landing_page_is_not_allowed(client):
    response = client.post("/spring-sale/", data={"email": "ada@example.com"})
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "variant": "b"}


@pytest.mark.parametrize("path", ["/", "/thanks", "/healthz"])
def test_head_works(client, path):
    response = client.head(path)
    assert response.status_code == 200 and response.content == b""


def test_pages_are_not_cached_and_refuse_external_resources(client):
    headers = client.get("/").headers
    assert headers["cache-control"] == "no-store"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp


def test_page_references_no_external_resource(client):
    page = client.get("/spring-sale/").text
    urls = re.findall(r'(?:src|href|action)="([^"]*)"', page)
    assert urls, "no URLs found at all"
    for url in urls:
        assert not re.match(r"[a-z]+://|//", url), f"external resource {url}"
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * page.count("xmlns=")


def test_data_uri_image_is_an_img():
    uri = "data:image/png;base64,iVBORw0KGgo="
    page = TestClient(create_app({**PARAMS, "image": uri, "image_alt": "A chart"})).get("/").text
    assert f'<img src="{uri}" alt="A chart">' in page


def test_copy_as_paragraphs():
    page = TestClient(create_app({**PARAMS, "copy_style": "paragraphs"})).get("/").text
    assert "<p>One</p>" in page and "<li>" not in page


def test_invalid_params_are_refused_when_building_the_app():
    with pytest.raises(InvalidParams, match="^cta: is required$"):
        create_app({"id": "a", "headline": "H"})
