import json

import numpy as np
import pytest

from croupier.router.allocation import apply_floor
from croupier.router.guardrails import (MAX_GUARDRAILS, METRICS, Guardrail, GuardrailError, cap, evaluate,
                                        parse_guardrails, required_burn_in)
from croupier.router.records import InvalidExperiment

# -- declarations ---------------------------------------------------------------


def test_defaults_per_metric():
    parsed = parse_guardrails([{"metric": m} for m in METRICS])
    assert {g.metric: g.direction for g in parsed} == {
        "bounce_rate": "increase", "engaged_rate": "decrease", "active_time": "decrease",
        "conversion_value": "decrease", "error_rate": "increase"}
    g = parsed[0]
    assert (g.threshold, g.relative, g.min_sample, g.action, g.alpha) == (0.0, False, 200, "cap", 0.05)
    assert {g.metric: g.kind for g in parsed}["active_time"] == "mean"


def test_a_declaration_round_trips_through_json():
    declared = [{"metric": "active_time", "direction": "decrease", "threshold": 0.1, "relative": True,
                 "min_sample": 500, "action": "pause", "alpha": 0.01}, {"metric": "error_rate"}]
    parsed = parse_guardrails(declared)
    assert parsed[0].to_dict() == declared[0]
    assert parse_guardrails(json.loads(json.dumps([g.to_dict() for g in parsed]))) == parsed


def test_none_is_no_guardrails():
    assert parse_guardrails(None) == ()
    assert parse_guardrails([]) == ()


@pytest.mark.parametrize("value, message", [
    ({"metric": "bounce_rate"}, "guardrails: must be a list"),
    (["bounce_rate"], "guardrails[0]: must be a JSON object"),
    ([{}], "guardrails[0].metric: is required"),
    ([{"metric": "bounce_rate"}, {"metric": "clicks"}], "guardrails[1].metric: must be one of bounce_rate, "),
    ([{"metric": "bounce_rate", "limit": 1}], "guardrails[0].limit: unknown field"),
    ([{"metric": "bounce_rate", "direction": "up"}], "guardrails[0].direction: must be one of increase, decrease"),
    ([{"metric": "bounce_rate", "threshold": -0.1}], "guardrails[0].threshold: must be a number >= 0"),
    ([{"metric": "bounce_rate", "threshold": "5%"}], "guardrails[0].threshold: must be a number >= 0"),
    ([{"metric": "bounce_rate", "threshold": True}], "guardrails[0].threshold: must be a number >= 0"),
    ([{"metric": "bounce_rate", "threshold": float("inf")}], "guardrails[0].threshold: must be a number >= 0"),
    ([{"metric": "engaged_rate", "threshold": 1, "relative": True}],
     "guardrails[0].threshold: a relative decrease must be below 1"),
    ([{"metric": "bounce_rate", "relative": "yes"}], "guardrails[0].relative: must be true or false"),
    ([{"metric": "bounce_rate", "min_sample": 1}], "guardrails[0].min_sample: must be an integer in [2, "),
    ([{"metric": "bounce_rate", "min_sample": 200.0}], "guardrails[0].min_sample: must be an integer"),
    ([{"metric": "bounce_rate", "action": "stop"}], "guardrails[0].action: must be one of cap, pause"),
    ([{"metric": "bounce_rate", "alpha": 0}], "guardrails[0].alpha: must be a number in (0, 0.5]"),
    ([{"metric": "bounce_rate", "alpha": 0.9}], "guardrails[0].alpha: must be a number in (0, 0.5]"),
    ([{"metric": "bounce_rate"}] * (MAX_GUARDRAILS + 1), f"guardrails: at most {MAX_GUARDRAILS} guardrails"),
])
def test_invalid_declarations_name_the_field(value, message):
    with pytest.raises(GuardrailError) as caught:
        parse_guardrails(value)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, (ValueError, InvalidExperiment))


def test_a_relative_increase_may_exceed_100_percent():
    assert parse_guardrails([{"metric": "error_rate", "threshold": 2, "relative": True}])[0].ratio == 3.0


def test_burn_in_covers_the_largest_min_sample():
    assert required_burn_in(parse_guardrails([{"metric": "bounce_rate"},
                                              {"metric": "error_rate", "min_sample": 1000}])) == 1000
    assert required_burn_in(()) == 0


# -- verdicts -------------------------------------------------------------------


BOUNCE = Guardrail("bounce_rate", threshold=0.05)


def test_a_clear_harm_is_breached():
    verdict = evaluate(BOUNCE, (1000, 400), (1000, 700))
    assert verdict.breached and verdict.low > 0.05
    assert verdict.estimate == pytest.approx(0.3)
    assert verdict.p_value < 0.05
    assert verdict.reason.startswith("bounce_rate: breached, the increase is beyond the tolerated 0.05")


def test_no_verdict_before_min_sample():
    verdict = evaluate(BOUNCE, (150, 60), (1000, 900))
    assert not verdict.breached
    assert verdict.reason == "bounce_rate: waiting for 200 views per arm (control 150, variant 1000)"


def test_a_harm_within_the_threshold_is_tolerated():
    # 3 points worse, known precisely: inside the 5 tolerated
    verdict = evaluate(BOUNCE, (200_000, 80_000), (200_000, 86_000))
    assert not verdict.breached and verdict.high < 0.05
    assert "within the tolerated increase of 0.05" in verdict.reason


def test_the_harmless_direction_never_breaches():
    assert not evaluate(BOUNCE, (5000, 3000), (5000, 1000)).breached
    engaged = Guardrail("engaged_rate")
    assert evaluate(engaged, (5000, 3000), (5000, 1000)).breached
    assert not evaluate(engaged, (5000, 1000), (5000, 3000)).breached


def test_breached_exactly_when_the_interval_lies_beyond_the_threshold():
    rng = np.random.default_rng(0)
    n = rng.integers(200, 3000, size=(2, 2000)).astype(float)
    k = rng.binomial(n.astype(int), rng.uniform(0.3, 0.6, size=(2, 2000))).astype(float)
    for g in (BOUNCE, Guardrail("engaged_rate", threshold=0.02)):
        verdict = evaluate(g, (n[0], k[0]), (n[1], k[1]))
        beyond = verdict.low > 0.05 if g.direction == "increase" else verdict.high < -0.02
        np.testing.assert_array_equal(verdict.breached, beyond)
        assert 0 < verdict.breached.sum() < 2000


def test_relative_thresholds_compare_with_a_multiple_of_control():
    # active time: control 60 s, the variant 40 s (a third less), sd 30 s
    def stats(n, mean):
        return (n, n * mean, n * (mean ** 2 + 30.0 ** 2))

    ten = Guardrail("active_time", threshold=0.1, relative=True)
    half = Guardrail("active_time", threshold=0.5, relative=True)
    assert ten.ratio == 0.9
    assert evaluate(ten, stats(2000, 60.0), stats(2000, 40.0)).breached
    assert not evaluate(half, stats(2000, 60.0), stats(2000, 40.0)).breached
    assert "tolerated decrease of 50% of control" in evaluate(half, stats(2000, 60.0), stats(2000, 40.0)).reason


def test_repeated_looks_at_identical_arms_rarely_breach():
    """A/A with a look every 50 views per arm up to 20,000: the error rate over all looks stays below alpha."""
    rng = np.random.default_rng(5)
    runs, looks = 400, np.arange(200, 20_001, 50)
    k_c = np.cumsum(rng.random((runs, looks[-1])) < 0.4, axis=1)[:, looks - 1]
    k_v = np.cumsum(rng.random((runs, looks[-1])) < 0.4, axis=1)[:, looks - 1]
    n = looks.astype(float)
    ever = evaluate(Guardrail("bounce_rate"), (n, k_c), (n, k_v)).breached.any(axis=1)
    assert ever.mean() <= 0.05


def test_arrays_of_looks_give_arrays_of_reasons():
    verdict = evaluate(BOUNCE, (np.array([100, 1000]), np.array([40, 400])), (np.array([100, 1000]),
                                                                             np.array([70, 700])))
    assert verdict.breached.tolist() == [False, True]
    assert verdict.reason[0].startswith("bounce_rate: waiting") and verdict.reason[1].startswith("bounce_rate: breached")


def test_statistics_must_fit_the_metric():
    with pytest.raises(ValueError, match=r"mean statistics: must be \(n, sum, sum_of_squares\)"):
        evaluate(Guardrail("active_time"), (1000, 400), (1000, 700))


# -- the cap --------------------------------------------------------------------


def test_a_breached_arm_gets_exactly_min_p_floor():
    rng = np.random.default_rng(6)
    probs = rng.dirichlet(np.full(5, 0.5), size=2000)
    breached = rng.random((2000, 5)) < 0.4
    breached[:, 0] = False  # control is never breached
    for floor in (0.0, 0.01, 0.05, 0.3):
        out = cap(probs, breached, floor)
        np.testing.assert_array_equal(out[breached], np.minimum(probs, floor)[breached])
        np.testing.assert_allclose(out.sum(axis=1), 1.0)
        assert np.all(out[~breached] >= probs[~breached])
        # the open arms keep their ratios
        ratio = out[:, 0] / probs[:, 0]
        open_ratio = np.where(~breached, out / probs, ratio[:, None])
        np.testing.assert_allclose(open_ratio, ratio[:, None] * np.ones(5), rtol=1e-9)


def test_after_the_floor_a_breached_arm_sits_exactly_on_it():
    policy = np.array([0.02, 0.9, 0.08])  # the policy loves the breached variant
    floored = apply_floor(policy, 0.01)
    out = cap(floored, [False, True, False], 0.01)
    assert out[1] == 0.01
    assert out.sum() == pytest.approx(1.0)
    assert out[2] / out[0] == pytest.approx(floored[2] / floored[0])


def test_control_takes_the_rest_when_every_variant_is_breached():
    out = cap(np.array([0.1, 0.6, 0.3]), [False, True, True], 0.01)
    np.testing.assert_allclose(out, [0.98, 0.01, 0.01])


def test_open_arms_without_a_share_split_the_rest_evenly():
    out = cap(np.array([0.0, 0.0, 1.0]), [False, False, True], 0.1)
    np.testing.assert_allclose(out, [0.45, 0.45, 0.1])


def test_nothing_breached_changes_nothing():
    probs = np.array([0.2, 0.5, 0.3])
    np.testing.assert_array_equal(cap(probs, [False, False, False], 0.01), probs)


def test_cap_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="control must stay open"):
        cap(np.array([[0.5, 0.5], [0.5, 0.5]]), [[False, True], [True, True]], 0.01)
    with pytest.raises(ValueError, match="floor"):
        cap(np.array([0.5, 0.5]), [False, True], 1.5)
