"""Forged, tampered, expired and cross-experiment assignment cookies, through NGINX.

The beacon refuses them (403) and counts nothing; decide treats the visitor as
new (a fresh signed cookie); both count the refusal in croupier_tokens_rejected.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from croupier.router.passes import token_of
from croupier.router.token import Assignment, new_visitor_id, sign, verify
from tests.conftest import Visitor, eventually, page_variant, variant_stats

KID = "k1"  # the stack's CROUPIER_SECRET_ID (the default)


def tokens_rejected(stack, reason: str) -> float:
    text = httpx.get(f"{stack.config.admin_url}/metrics").text
    found = re.search(rf'croupier_tokens_rejected_total\{{reason="{reason}"\}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def signed(stack, experiment: str = "demo", variant: str = "b", issued: int | None = None,
           key: bytes | None = None, kid: str = KID) -> str:
    assignment = Assignment(new_visitor_id(), experiment, variant, int(time.time()) if issued is None else issued)
    return sign(assignment, kid, key or stack.config.secret.encode())


@pytest.fixture(scope="module")
def other_experiment(stack) -> str:
    """A second experiment, created through the admin API, on the same variant servers."""
    upstreams = [f"127.0.0.1:{stack.config.variant_base_port + i}" for i in range(2)]
    with stack.admin() as admin:
        admin.post("/experiments", json={"id": "other", "path_prefix": "/other/", "variants": [
            {"id": "a", "upstream": upstreams[0]}, {"id": "b", "upstream": upstreams[1]}]}).raise_for_status()
    return "other"


def tamper(token: str) -> str:
    parts = token.split(".")
    parts[4] = "c" if parts[4] != "c" else "b"  # claim another variant under the old signature
    return ".".join(parts)


CASES = {
    "forged with a guessed key": (lambda s, o: signed(s, key=b"not-the-site-secret-at-all"), "bad_signature"),
    "forged under an unknown key id": (lambda s, o: signed(s, kid="k9"), "unknown_key"),
    "not a token at all": (lambda s, o: "v1.k1.garbage", "malformed"),
    "tampered": (lambda s, o: tamper(signed(s)), "bad_signature"),
    "expired": (lambda s, o: signed(s, issued=int(time.time()) - 91 * 86400), "expired"),
    "from another experiment": (lambda s, o: signed(s, experiment=o), "wrong_experiment"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_token_is_refused_by_the_beacon_and_decide_reassigns(stack, other_experiment, case):
    make, reason = CASES[case]
    bad = make(stack, other_experiment)
    visitor = Visitor(stack.config.base_url)
    visitor.client.cookies.set("croupier_demo", bad)
    before = variant_stats(stack)
    rejected_before = tokens_rejected(stack, reason)

    answers = [visitor.beacon({"experiment": "demo", "type": kind}) for kind in ("view", "click", "convert")]
    for response in answers:
        assert response.status_code == 403, response.text
        assert response.json()["reason"] == "bad_token"
        assert reason in response.json()["error"]
    assert tokens_rejected(stack, reason) - rejected_before == 3

    # decide does not trust it either: a fresh assignment, signed by the site, for a new visitor
    response = httpx.get(stack.config.base_url + "/", headers={
        "User-Agent": visitor.client.headers["user-agent"], "Cookie": f"croupier_demo={bad}"})
    assert response.status_code == 200 and page_variant(response) in {"a", "b", "c"}
    fresh = token_of(response.headers["set-cookie"].split(";")[0].removeprefix("croupier_demo="))
    held = verify(fresh, {KID: stack.config.secret.encode()}, now=int(time.time()), max_age=3600, experiment="demo")
    assert held.visitor not in bad
    assert tokens_rejected(stack, reason) - rejected_before == 4

    after = variant_stats(stack)
    for variant, stats in before.items():
        for counter in ("views", "clicks", "conversions"):
            assert after[variant][counter] == stats[counter], (variant, counter)
    visitor.close()


def test_the_other_experiments_own_token_still_works_there(stack, other_experiment):
    # the cross-experiment refusal is about the cookie's use, not a broken token
    token = signed(stack, experiment=other_experiment, variant="a")
    visitor = Visitor(stack.config.base_url)
    visitor.client.cookies.set(f"croupier_{other_experiment}", token)
    # (eventually: the routers' snapshot learns of the new experiment within a refresh)
    eventually(lambda: visitor.beacon({"experiment": other_experiment, "type": "view"}).status_code == 204)
    visitor.close()
