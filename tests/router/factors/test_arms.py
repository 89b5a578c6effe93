"""A factorial experiment's arms: the lookups the variant server uses one arm at a time, the
enumeration the policy uses, and that both agree with the generated variants. Pure."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from croupier.router.experiments import parse_experiment
from croupier.router.factors import MAX_COMBINATIONS, merge_params
from tests.router.factors.spring import SPRING, spring


def test_lookups_by_arm_id():
    factorial = parse_experiment(SPRING).factorial
    assert factorial.n_levels == (2, 2, 2)
    assert factorial.levels_of("savings_buy-now_none") == (1, 1, 0)
    assert factorial.arm_id((1, 1, 0)) == "savings_buy-now_none"
    assert factorial.arm_name((1, 1, 0)) == "headline: savings · cta: buy-now · offer: none"
    for unknown in ("savings_buy-now_cashback",  # excluded
                    "savings_buy-now", "savings_buy-now_none_x", "gold_go_none", "page", "", "Savings_go_none",
                    "savings__none", None, 7):
        assert factorial.levels_of(unknown) is None, unknown
    assert factorial.merged_params("plain_go_cashback") == {
        "headline": "Spring sale", "cta": "Go", "badge": "5% cashback",
        "colors": {"primary": "#111111", "accent": "#333333"}}
    with pytest.raises(KeyError):
        factorial.merged_params("plain_buy-now_cashback")


def test_arms_array_matches_the_variants():
    experiment = parse_experiment(SPRING)
    arms = experiment.factorial.arms()
    assert arms.shape == (6, 3) and arms.dtype.kind == "i"
    assert [experiment.factorial.arm_id(row) for row in arms.tolist()] == [v.id for v in experiment.variants]
    with pytest.raises(ValueError):
        arms[0, 0] = 1  # cached: read-only


def test_merge_rule():
    base = {"headline": "A", "colors": {"primary": "#111111", "accent": "#222222"}, "copy": ["x", "y"],
            "price": {"amount": "€1", "period": "a month"}}
    merged = merge_params(base, {"colors": {"accent": "#333333"}, "copy": ["z"], "price": "€2"})
    assert merged == {"headline": "A", "colors": {"primary": "#111111", "accent": "#333333"}, "copy": ["z"],
                      "price": "€2"}
    assert base["colors"]["accent"] == "#222222"  # inputs unchanged
    assert merge_params(base, {}) is base


def test_the_later_factor_wins_a_key_both_set():
    experiment = parse_experiment(spring(factors={
        "headline": {"a": {"headline": "From headline"}, "b": {}},
        "banner": {"x": {}, "y": {"headline": "From banner", "colors": {"primary": "#444444"}}}}, constraints=[]))
    assert experiment.factorial.merged_params("a_y")["headline"] == "From banner"
    assert experiment.factorial.merged_params("a_y")["colors"] == {"primary": "#444444", "accent": "#222222"}
    assert experiment.factorial.merged_params("a_x")["headline"] == "From headline"


def big_declaration() -> dict:
    """8 factors, 16,384 combinations: the most a declaration may have."""
    sizes = (4, 4, 4, 4, 4, 4, 2, 2)
    factors = {f"factor-{i}": {f"level-{j}": ({} if j == 0 else {f"key{i}": f"value {j}", "colors": {"accent": "#0000aa"}})
                               for j in range(n)} for i, n in enumerate(sizes)}
    return spring(factors=factors, constraints=[{"factor-0": "level-1", "factor-7": "level-1"}], min_share=0.0)


def test_sixteen_thousand_combinations():
    """Parsing the largest declaration builds its 16,384 - 2,048 arms once. Measured on a
    two-core machine shared with other test suites (load average 2 to 6): 110-180 ms per
    parse, best of 5, with the garbage collector on; 75-125 ms with it off. The walk of the
    combinations and the variants it builds are nearly all of it. Not asserted: the machine's
    load decides the figure."""
    data = big_declaration()
    took = []
    for _ in range(5):
        started = time.perf_counter()
        experiment = parse_experiment(data)
        took.append(time.perf_counter() - started)
    print(f"parse of {len(experiment.variants)} arms: best {1000 * min(took):.0f} ms")
    assert len(experiment.variants) == MAX_COMBINATIONS - MAX_COMBINATIONS // 8
    sizes = experiment.factorial.n_levels
    expected = [c for c in itertools.product(*(range(n) for n in sizes)) if not (c[0] == 1 and c[7] == 1)]
    assert experiment.factorial.arms().tolist() == [list(c) for c in expected]
    assert [v.id for v in experiment.variants[:2]] == ["level-0_" * 7 + "level-0", "level-0_" * 7 + "level-1"]
    some = experiment.variants[5000]
    assert some.params == experiment.factorial.merged_params(some.id)
    assert np.array_equal(experiment.factorial.arms()[5000], experiment.factorial.levels_of(some.id))
    assert parse_experiment(json.loads(json.dumps(experiment.to_dict()))) == experiment


def test_the_variant_servers_part_needs_no_numpy():
    """The variant image has the standard library, rules.py, records.py and factors.py: parsing
    a declaration and finding an arm's params must work there."""
    code = """
import json, sys
sys.modules["numpy"] = None  # an import of numpy raises ImportError
from croupier.router.factors import parse_declaration
factorial = parse_declaration(json.load(sys.stdin)).factorial
arm = "level-1_" * 7 + "level-0"
assert factorial.levels_of(arm) == (1,) * 7 + (0,)
assert factorial.merged_params(arm)["key6"] == "value 1"
assert "croupier.router.experiments" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], input=json.dumps(big_declaration()),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
