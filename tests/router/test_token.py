import pytest

from croupier.router.token import Assignment, TokenError, new_visitor_id, sign, verify

KEYS = {"k1": b"a" * 32, "k0": b"b" * 32}
NOW = 1_800_000_000


def token(**overrides) -> str:
    fields = {"visitor": new_visitor_id(), "experiment": "demo", "variant": "b", "issued": NOW, **overrides}
    return sign(Assignment(**fields), "k1", KEYS["k1"])


def test_round_trip():
    t = token()
    assert verify(t, KEYS, now=NOW + 10, max_age=3600).variant == "b"


def test_old_key_still_verifies():
    t = sign(Assignment(new_visitor_id(), "demo", "a", NOW), "k0", KEYS["k0"])
    assert verify(t, KEYS, now=NOW, max_age=10).variant == "a"


@pytest.mark.parametrize("mutate, reason", [
    (lambda t: t.replace(".demo.b.", ".demo.c."), "bad_signature"),
    (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "bad_signature"),
    (lambda t: t.replace("v1.k1.", "v1.k9."), "unknown_key"),
    (lambda t: "garbage", "malformed"),
    (lambda t: t + ".extra", "malformed"),
    (lambda t: t.replace("v1.", "v2.", 1), "malformed"),
])
def test_tampering_is_detected(mutate, reason):
    with pytest.raises(TokenError) as exc:
        verify(mutate(token()), KEYS, now=NOW, max_age=3600)
    assert exc.value.reason == reason


def test_expired_future_and_cross_experiment_tokens():
    with pytest.raises(TokenError, match="expired"):
        verify(token(issued=NOW - 7200), KEYS, now=NOW, max_age=3600)
    with pytest.raises(TokenError, match="from_future"):
        verify(token(issued=NOW + 3600), KEYS, now=NOW, max_age=3600)
    with pytest.raises(TokenError, match="wrong_experiment"):
        verify(token(), KEYS, now=NOW, max_age=3600, experiment="other")
