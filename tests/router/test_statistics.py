import json
import math

import numpy as np
import pytest

from croupier.router.policies import ArmStats
from croupier.router.statistics import (chi2_sf, posterior_summary, regularized_gamma_q, srm_check,
                               stratified_lift)

# chi-square critical values from standard tables: (x, dof, upper tail)
CHI2_TABLE = [(3.841458820694124, 1, 0.05), (6.634896601021214, 1, 0.01), (10.827566170662733, 1, 0.001),
              (5.991464547107979, 2, 0.05), (18.307038053275146, 10, 0.05), (29.58829844507442, 10, 0.001),
              (124.34211340400407, 100, 0.05)]


@pytest.mark.parametrize("x, dof, tail", CHI2_TABLE)
def test_chi2_sf_matches_tables(x, dof, tail):
    assert math.isclose(chi2_sf(x, dof), tail, rel_tol=1e-9)


@pytest.mark.parametrize("a", [0.5, 1.0, 3.0, 7.5, 40.0])
@pytest.mark.parametrize("x", [0.01, 0.5, 2.0, 10.0, 60.0])
def test_incomplete_gamma_identities(a, x):
    q = regularized_gamma_q(a, x)
    p = 1.0 - q  # the lower regularised incomplete gamma
    if a == 0.5:
        assert math.isclose(p, math.erf(math.sqrt(x)), rel_tol=1e-12, abs_tol=1e-15)
    if a == 1.0:
        assert math.isclose(q, math.exp(-x), rel_tol=1e-12)
    if a == 3.0:  # Q(n, x) = e^-x sum_{k<n} x^k / k!
        assert math.isclose(q, math.exp(-x) * (1 + x + x * x / 2), rel_tol=1e-12)


def test_incomplete_gamma_rejects_bad_input():
    with pytest.raises(ValueError):
        regularized_gamma_q(0.0, 1.0)


def test_posterior_summary_keys_and_ordering():
    out = posterior_summary(ArmStats.from_counts([1000, 1000], [50, 80]), np.random.default_rng(0))
    assert set(out) == {"mean", "ci_low", "ci_high", "p_best", "expected_loss"}
    assert out["p_best"][1] > 0.99 and out["expected_loss"][0] > out["expected_loss"][1]
    assert np.all(out["ci_low"] < out["mean"]) and np.all(out["mean"] < out["ci_high"])


def test_srm_follows_a_moving_split():
    """90/10 then 10/90: fine against the shares the policy gave, a glaring mismatch against pooled 50/50."""
    rng = np.random.default_rng(0)
    shares = np.array([[0.9, 0.1], [0.1, 0.9]])
    observed = np.vstack([rng.multinomial(10_000, s) for s in shares])
    ok = srm_check(observed, shares * 10_000)
    assert not ok["alert"] and ok["dof"] == 2 and ok["p_value"] > 0.001
    pooled_wrongly = srm_check(observed, np.full((2, 2), 5000.0))
    assert pooled_wrongly["alert"]
    json.dumps(ok)


def test_srm_alerts_on_a_real_mismatch():
    observed = np.array([[5200, 4800], [5150, 4850]])
    out = srm_check(observed, np.full((2, 2), 5000.0))
    assert out["alert"] and out["p_value"] < 0.001


def test_srm_merges_sparse_periods_and_flags_unexpected_arms():
    observed = np.array([[1, 1, 0]] * 10 + [[3, 2, 1]])
    expected = np.array([[1.0, 1.0, 0.0]] * 10 + [[3.0, 3.0, 0.0]])
    out = srm_check(observed, expected)
    assert out["periods"] == 2
    assert out["unexpected_assignments"] == 1 and out["alert"]


def test_stratified_lift_survives_simpson():
    """Arm 1 got its traffic while the base rate was high; per period the arms are equal."""
    trials = np.array([[9000, 1000], [1000, 9000]])
    successes = np.array([[900, 100], [300, 2700]])  # 10% then 30%, for both arms
    out = stratified_lift(trials, successes, control=0)
    assert out["pooled_lift"][1] > 1.0  # pooled: arm 1 looks 2x better
    assert abs(out["stratified_lift"][1]) < 1e-12
    assert out["stratified_diff_ci_low"][1] < 0 < out["stratified_diff_ci_high"][1]
    json.dumps(out)


def test_stratified_lift_finds_a_real_lift_and_skips_missing_periods():
    trials = np.array([[1000, 0], [1000, 1000], [1000, 1000]])
    successes = np.array([[100, 0], [100, 150], [100, 150]])
    out = stratified_lift(trials, successes, control=0)
    assert math.isclose(out["stratified_lift"][1], 0.5)
    assert out["periods_used"] == [3, 2]
    assert out["stratified_diff_ci_low"][1] > 0


def test_stratified_lift_without_data_gives_none():
    out = stratified_lift(np.zeros((2, 2)), np.zeros((2, 2)))
    assert out["pooled_rate"] == [None, None] and out["stratified_lift"] == [None, None]
    json.dumps(out)
