import numpy as np
import pytest

from croupier.router.drift import (DEFAULT_THRESHOLD, PSI_SIGNIFICANT, RateDrift, forget_before, mix_drift, psi_level,
                                   rate_drift, watch)

MIX = {"before": (0.3, 0.6, 0.1), "after": (0.7, 0.6 * 3 / 7, 0.1 * 3 / 7)}
DEVICE_RATES = np.array([0.02, 0.05, 0.04])  # mobile converts worst


def step_stream(rng, runs, buckets, change, before, after, n=1000):
    """``(T, R, K)`` trials and conversions; arm 0's rate goes from ``before`` to ``after`` at ``change``."""
    trials = np.full((buckets, runs, 2), float(n))
    rates = np.where(np.arange(buckets)[:, None, None] < change, [before, 0.04], [after, 0.04])
    return trials, rng.binomial(n, np.broadcast_to(rates, trials.shape)).astype(float)


def test_a_step_change_is_found_where_it_happened():
    rng = np.random.default_rng(0)
    trials, conversions = step_stream(rng, runs=50, buckets=100, change=60, before=0.05, after=0.035)
    found = rate_drift(trials, conversions)
    assert found.detected[:, 0].all() and not found.detected[:, 1].any()
    assert np.all(np.abs(found.change_at[:, 0] - 60) <= 3)
    assert np.all(found.direction[:, 0] == -1) and np.all(found.change_at[:, 1] == -1)
    assert np.median(found.rate_before[:, 0]) == pytest.approx(0.05, abs=0.002)
    assert np.median(found.rate_after[:, 0]) == pytest.approx(0.035, abs=0.002)
    assert np.median(found.relative_change[:, 0]) == pytest.approx(-0.3, abs=0.03)


def test_a_rise_is_a_rise():
    trials, conversions = step_stream(np.random.default_rng(1), runs=20, buckets=40, change=20, before=0.03,
                                      after=0.045)
    found = rate_drift(trials, conversions)
    assert found.detected[:, 0].all() and np.all(found.direction[:, 0] == 1)


def test_watch_raises_the_alarm_soon_after_the_change():
    rng = np.random.default_rng(2)
    trials, conversions = step_stream(rng, runs=50, buckets=80, change=40, before=0.05, after=0.035)
    alarms = watch(trials, conversions, window=60)
    assert np.all(alarms.first_alarm[:, 0] >= 40) and np.all(alarms.first_direction[:, 0] == -1)
    assert np.median(alarms.first_alarm[:, 0] - 40) <= 10
    assert np.all(np.abs(alarms.first_change[:, 0] - 40) <= 5)  # located from the few buckets since
    assert (alarms.first_alarm[:, 1] == -1).all() and (alarms.count[:, 0] == 1).all()


def test_no_alarm_on_a_stationary_stream():
    """100 runs of 300 buckets, rerun at every bucket: 30,000 looks per arm, none alarms.

    (The default threshold's false alarms are rarer than one in a million looks, but
    not impossible: of 13 seeds tried, one stream held a 6-sigma run of buckets.)
    """
    rng = np.random.default_rng(10)
    n = rng.multinomial(1000, [0.85, 0.1, 0.05], size=(300, 100)).astype(float)
    conversions = rng.binomial(n.astype(int), [0.05, 0.04, 0.03]).astype(float)
    alarms = watch(n, conversions, window=80)
    assert alarms.count.sum() == 0
    assert rate_drift(n, conversions).statistic.max() < DEFAULT_THRESHOLD


def test_no_alarm_on_sparse_traffic():
    """A few conversions per bucket: the min_count rule keeps the binomial's skew from alarming."""
    rng = np.random.default_rng(4)
    n = rng.poisson(60, size=(400, 50, 2)).astype(float)
    conversions = rng.binomial(n.astype(int), 0.03).astype(float)
    assert watch(n, conversions, window=200).count.sum() == 0


def mix_stream(rng, runs, buckets, shift, n=1000):
    """``(T, S, R, 1)``: the device mix moves at ``shift``, every device's rate stays."""
    mix = np.where(np.arange(buckets)[:, None] < shift, MIX["before"], MIX["after"])  # (T, S)
    trials = np.stack([rng.multinomial(n, m, size=runs) for m in mix]).transpose(0, 2, 1)[..., None].astype(float)
    conversions = rng.binomial(trials.astype(int), DEVICE_RATES[None, :, None, None]).astype(float)
    return trials, conversions


def test_a_mix_shift_is_mix_drift_not_rate_drift():
    rng = np.random.default_rng(5)
    trials, conversions = mix_stream(rng, runs=50, buckets=80, shift=40)
    adjusted = rate_drift(trials, conversions, stratified=True)
    assert not adjusted.detected.any()
    # without the strata the overall rate falls by a quarter: that would be a (false) rate alarm
    plain = rate_drift(trials.sum(axis=1), conversions.sum(axis=1))
    assert plain.detected.all() and (plain.direction == -1).all()
    devices = trials[..., 0].sum(axis=0)  # (S, R) over the whole window: split it instead
    reference = trials[:20, :, :, 0].sum(axis=0).T
    recent = trials[-20:, :, :, 0].sum(axis=0).T
    mix = mix_drift(reference, recent)
    assert mix.shifted.all() and (mix.psi > PSI_SIGNIFICANT).all()
    assert devices.shape == (3, 50)


def test_strata_still_see_a_real_change_under_a_mix_shift():
    rng = np.random.default_rng(6)
    trials, conversions = mix_stream(rng, runs=30, buckets=80, shift=40)
    # every device's rate falls 40% from bucket 50 on, ten buckets after the mix moved
    later = rng.binomial(trials[50:].astype(int), 0.6 * DEVICE_RATES[None, :, None, None])
    conversions[50:] = later
    found = rate_drift(trials, conversions, stratified=True)
    assert found.detected.all() and (found.direction == -1).all()
    assert np.all(np.abs(found.change_at - 50) <= 5)


def test_watch_with_strata_is_quiet_on_a_mix_shift():
    trials, conversions = mix_stream(np.random.default_rng(7), runs=20, buckets=60, shift=30)
    assert watch(trials, conversions, window=40, stratified=True).count.sum() == 0


def test_mix_drift_on_a_steady_mix():
    rng = np.random.default_rng(8)
    reference = rng.multinomial(20_000, MIX["before"], size=100)
    recent = rng.multinomial(20_000, MIX["before"], size=100)
    mix = mix_drift(reference, recent)
    assert not mix.shifted.any() and mix.psi.max() < 0.01
    assert np.all((0 <= mix.js) & (mix.js <= 1))


def test_psi_and_js_by_hand():
    mix = mix_drift([30_000, 60_000, 10_000], [70_000, 25_714, 4_286])
    p, q = np.array(MIX["before"]), np.array(MIX["after"])
    assert mix.psi == pytest.approx(((q - p) * np.log(q / p)).sum(), rel=1e-3)
    m = (p + q) / 2
    assert mix.js == pytest.approx(0.5 * (p * np.log2(p / m)).sum() + 0.5 * (q * np.log2(q / m)).sum(), rel=1e-3)
    assert mix_drift([10, 0], [0, 10]).psi < np.inf  # empty categories are smoothed
    assert not mix_drift([10, 50], [50, 10]).shifted  # too few views to say
    assert [psi_level(x) for x in (0.05, 0.15, 0.25)] == ["stable", "moderate", "significant"]


def test_forget_before_lists_the_buckets_before_each_change():
    starts = [1000 + 60 * i for i in range(6)]
    drift = RateDrift(detected=np.array([True, False, True]), change_at=np.array([4, -1, 1]),
                      direction=np.array([-1, 0, 1]), rate_before=np.zeros(3), rate_after=np.zeros(3),
                      relative_change=np.zeros(3), statistic=np.zeros(3))
    assert forget_before(starts, drift, ["a", "b", "c"]) == {"a": starts[:4], "c": starts[:1]}
    with pytest.raises(ValueError, match="3 arms"):
        forget_before(starts, drift, ["a", "b"])


def test_forget_before_on_a_detected_window():
    trials, conversions = step_stream(np.random.default_rng(9), runs=1, buckets=30, change=18, before=0.06,
                                      after=0.03)
    found = rate_drift(trials[:, 0], conversions[:, 0])
    starts = list(range(0, 30 * 60, 60))
    dropped = forget_before(starts, found, ["control", "b"])
    assert list(dropped) == ["control"] and len(dropped["control"]) == found.change_at[0]


def test_shapes_and_tiny_windows():
    with pytest.raises(ValueError, match="differ in shape"):
        rate_drift(np.ones((5, 2)), np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"\(T, S, \.\.\., K\)"):
        rate_drift(np.ones((5, 2)), np.ones((5, 2)), stratified=True)
    with pytest.raises(ValueError, match="window"):
        watch(np.ones((5, 2)), np.ones((5, 2)), window=1)
    one = rate_drift(np.full((1, 2), 100.0), np.full((1, 2), 5.0))
    assert not one.detected.any() and (one.change_at == -1).all()
