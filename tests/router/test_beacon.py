"""The beacon's engagement events, in-process against a real redis-server: checked, folded in
once per page view, credited to the cookie's variant and segment, and shown in the stats."""

from __future__ import annotations

import jsonschema
import pytest
from starlette.testclient import TestClient

from croupier.router.app import create_app
from croupier.router.engagement import ACTIVE_CAP_SECONDS, SCROLL_BUCKETS
from croupier.router.openapi import OPENAPI
from croupier.router.settings import Settings
from tests.conftest import eventually

ADMIN = {"Authorization": "Bearer test-admin-token"}
ORIGIN = {"Origin": "http://testserver"}
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


def experiment(exp_id: str, **extra) -> dict:
    return {"id": exp_id, "path_prefix": f"/{exp_id}/", "variants": [
        {"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}], **extra}


@pytest.fixture
def client(redis_url):
    settings = Settings(redis_url=redis_url, admin_token="test-admin-token", secret="s" * 32,
                        refresh_interval=0.05, flush_interval=0.05)
    with TestClient(create_app(settings)) as client:
        for body in (experiment("eng"), experiment("seg", segment_keys=["device"])):
            assert client.post("/api/v1/experiments", json=body, headers=ADMIN).status_code == 201
        snapshots = client.app.state.snapshots
        eventually(lambda: {"eng", "seg"} <= set(snapshots.current.arms))
        yield client


class Page:
    """One visitor's cookie for one experiment, and their page view's reports."""

    def __init__(self, client: TestClient, exp_id: str, user_agent: str = DESKTOP) -> None:
        self.client, self.exp_id = client, exp_id
        client.cookies.clear()  # a new visitor; each page sends its own cookie
        answer = client.get("/_croupier/decide", headers={"X-Original-URI": f"/{exp_id}/", "User-Agent": user_agent})
        assert answer.status_code == 200
        self.variant = answer.headers["x-croupier-variant"]
        self.cookie = answer.headers["set-cookie"].split(";", 1)[0]

    def send(self, body: dict, page_view: str = "page-view-0001"):
        return self.client.post("/_croupier/beacon", json={"experiment": self.exp_id, "id": page_view, **body},
                                headers={**ORIGIN, "Cookie": self.cookie})

    def report(self, active_ms: int, scroll: int, clicks: int = 0, engaged: bool = False,
               page_view: str = "page-view-0001"):
        response = self.send({"type": "engagement", "active_ms": active_ms, "scroll": scroll, "clicks": clicks,
                              "engaged": engaged}, page_view)
        assert response.status_code == 204, response.text
        return response


def stats(client: TestClient, exp_id: str) -> dict:
    response = client.get(f"/api/v1/experiments/{exp_id}/stats", headers=ADMIN)
    assert response.status_code == 200
    return response.json()


def engagement(client: TestClient, exp_id: str) -> dict[str, dict]:
    return {row["id"]: row["engagement"] for row in stats(client, exp_id)["variants"]}


GOOD = {"type": "engagement", "active_ms": 1000, "scroll": 10, "clicks": 0, "engaged": False}


@pytest.mark.parametrize("body, reason, message", [
    ({**GOOD, "active_ms": -5}, "bad_active_ms", "active_ms: must be a whole number of milliseconds"),
    ({**GOOD, "active_ms": "1000"}, "bad_active_ms", "active_ms: must be a whole number of milliseconds"),
    ({**GOOD, "scroll": 150}, "bad_scroll", "scroll: must be a whole number of percent from 0 to 100"),
    ({**GOOD, "clicks": -1}, "bad_clicks", "clicks: must be a whole number of clicks"),
    ({**GOOD, "engaged": "yes"}, "bad_engaged", "engaged: must be true or false"),
    ({key: v for key, v in GOOD.items() if key != "engaged"}, "bad_engaged", "engaged: must be true or false"),
    ({**GOOD, "goal": "signup"}, "bad_goal", "goal: an engagement event has no goal"),
    ({**GOOD, "value": 3}, "bad_value", "value: only a convert event carries a value"),
    ({**GOOD, "dwell": 3}, "unknown_field", "dwell: unknown field"),
    ({"type": "view", "scroll": 50}, "unknown_field", "scroll: only an engagement event carries it"),
])
def test_a_bad_report_is_refused_with_the_field_named_and_records_nothing(client, body, reason, message):
    page = Page(client, "eng")
    response = page.send(body)
    assert response.status_code == 400
    assert response.json()["reason"] == reason and response.json()["error"].startswith(message)
    assert all(e["views"] == 0 for e in engagement(client, "eng").values())


def test_a_report_without_its_page_view_id_is_refused(client):
    page = Page(client, "eng")
    response = client.post("/_croupier/beacon", json={"experiment": "eng", **GOOD},
                           headers={**ORIGIN, "Cookie": page.cookie})
    assert response.status_code == 400 and response.json()["reason"] == "bad_id"


def test_without_the_assignment_cookie_nothing_is_recorded(client):
    response = client.post("/_croupier/beacon", json={"experiment": "eng", "id": "page-view-0001", **GOOD},
                           headers=ORIGIN)
    assert response.status_code == 403 and response.json()["reason"] == "no_assignment"


def test_the_same_report_twice_counts_once_and_an_update_replaces_it(client):
    page = Page(client, "eng")
    page.report(3000, 35, clicks=1)
    page.report(3000, 35, clicks=1)  # a retry, or the page hidden again with nothing new
    shown = engagement(client, "eng")[page.variant]
    assert (shown["views"], shown["engaged"], shown["bounces"], shown["clicks"]) == (1, 0, 1, 1)
    assert shown["active_seconds_mean"] == 3.0 and shown["bounce_rate"] == 1.0
    assert shown["scroll_histogram"] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]

    page.report(14_000, 90, clicks=2)  # shown again, read on: now engaged by its time alone
    page.report(3000, 35, clicks=1)  # the first report once more, late: changes nothing
    shown = engagement(client, "eng")[page.variant]
    assert (shown["views"], shown["engaged"], shown["bounces"], shown["clicks"]) == (1, 1, 0, 2)
    assert shown["active_seconds_mean"] == 14.0 and shown["engaged_rate"] == 1.0
    assert shown["scroll_histogram"] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert shown["clicks_per_view"] == 2.0


def test_figures_over_several_page_views_and_the_active_time_cap(client):
    page = Page(client, "eng")
    page.report(2_000, 20, page_view="page-view-0001")
    page.report(5_000, 60, clicks=2, engaged=True, page_view="page-view-0002")  # a second interaction
    page.report(10_000_000, 100, page_view="page-view-0003")  # a tab left in front for hours
    shown = engagement(client, "eng")[page.variant]
    assert (shown["views"], shown["engaged"], shown["bounces"]) == (3, 2, 1)
    assert shown["active_seconds_mean"] == pytest.approx((2 + 5 + ACTIVE_CAP_SECONDS) / 3)
    low, high = shown["active_seconds_ci95"]
    assert 0 <= low < shown["active_seconds_mean"] < high <= ACTIVE_CAP_SECONDS
    low, high = shown["engaged_ci95"]
    assert low < 2 / 3 < high
    assert shown["scroll_histogram"] == [0, 0, 1, 0, 0, 0, 1, 0, 0, 1] and shown["scroll_median"] == 65.0
    other = engagement(client, "eng")["b" if page.variant == "a" else "a"]
    assert other["views"] == 0 and other["engaged_rate"] is None


def test_the_report_is_logged_with_the_visitor_and_the_page_view(client):
    page = Page(client, "eng")
    page.report(4_000, 50, clicks=1)
    events = client.portal.call(client.app.state.store.events, "eng")
    [entry] = [fields for _, fields in events if fields["type"] == "engagement"]
    assert entry["id"] == "page-view-0001" and entry["variant"] == page.variant
    assert entry["visitor"] and (entry["active_ms"], entry["scroll"], entry["clicks"]) == ("4000", "50", "1")


def test_reports_are_recorded_per_segment(client):
    mobile = [Page(client, "seg", IPHONE) for _ in range(3)]
    desktop = Page(client, "seg", DESKTOP)
    for i, page in enumerate(mobile):
        page.report(12_000, 100, page_view=f"mobile-view-{i:04d}")
    desktop.report(1_000, 10, page_view="desktop-view-0001")
    # the segments shown are the ones the bandit runs, chosen by trials: wait for the assignments
    found = eventually(lambda: (s := stats(client, "seg")).get("engagement_segments", {}).keys()
                       >= {"device=mobile", "device=desktop"} and s, timeout=10)
    by_segment = {segment: {row["id"]: row for row in rows} for segment, rows in found["engagement_segments"].items()}
    assert sum(row["views"] for row in by_segment["device=mobile"].values()) == 3
    assert sum(row["engaged"] for row in by_segment["device=mobile"].values()) == 3
    assert by_segment["device=desktop"][desktop.variant]["bounces"] == 1
    assert by_segment["device=desktop"][desktop.variant]["scroll_histogram"][1] == 1
    assert set(found["engagement_segments"]) == set(found["segments"])


def test_the_stats_match_their_openapi_schema(client):
    page = Page(client, "seg", IPHONE)
    page.report(12_000, 70, clicks=3)
    found = eventually(lambda: (s := stats(client, "seg")).get("engagement_segments") and s, timeout=10)
    assert found["engagement"] == {"active_cap_seconds": ACTIVE_CAP_SECONDS, "engaged_seconds": 10,
                                   "scroll_buckets": SCROLL_BUCKETS}
    schema = {"$ref": "#/components/schemas/Stats", "components": OPENAPI["components"]}
    jsonschema.validate(found, schema, cls=jsonschema.Draft202012Validator)
    engagement_schema = OPENAPI["components"]["schemas"]["Engagement"]
    assert set(found["variants"][0]["engagement"]) == set(engagement_schema["properties"])
