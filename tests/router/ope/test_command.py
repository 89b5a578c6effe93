"""The command: from a JSONL export, and end to end on a real stack with simulated visitors."""

from __future__ import annotations

import io
import json

import pytest

from croupier.router.policies import ThompsonSampling
from croupier.scripts.ope import main, parse_policy, UsageError
from croupier.scripts.simulate import run_simulation
from tests.conftest import settled_totals
from tests.router.ope.sim import ARMS, RATES, bandit_logging

TRUE_RATES = {"a": 0.04, "b": 0.14, "c": 0.07}


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--quiet", *argv], out=out)
    return code, out.getvalue()


def write_export(path, log) -> None:
    """A simulated log as the stream would hold it: one assignment per visitor, then their conversion."""
    lines = []
    for i in range(log.n):
        probs = {arm: float(p) for arm, p in zip(log.arms, log.probs[i]) if p > 0}
        variant = log.arms[log.actions[i]]
        lines.append({"id": f"{1000 + i}-0", "type": "assign", "variant": variant, "visitor": f"v{i}",
                      "reason": "holdout" if log.uniform[i] else "new", "probs": json.dumps(probs),
                      "ts": str(1000 + i)})
        if log.rewards[i]:
            lines.append({"id": f"{1000 + i}-1", "type": "convert", "variant": variant, "visitor": f"v{i}",
                          "goal": "signup", "value": "", "ts": str(1000 + i), "id_": ""})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_from_file_json(tmp_path):
    log = bandit_logging(0, ThompsonSampling(draws=500), n=4000, holdout=0.3)
    path = tmp_path / "log.jsonl"
    write_export(path, log)
    code, text = run("--from-file", str(path), "--json", "--seed", "1", "--policy", "fixed:*", "--policy", "uniform",
                     "--policy", "logging", "--policy", "thompson", "--policy", "sequential:thompson:draws=500",
                     "--policy", "epsilon_greedy:epsilon=0.1", "--policy", "replay:thompson:draws=500",
                     "--confidence", "0.999", "--dr-model", "logistic")
    assert code == 0, text
    doc = json.loads(text)
    assert doc["goal"] == "signup" and doc["join"]["assignments"] == 4000
    assert doc["join"]["holdout"] == int(log.uniform.sum())
    for arm, rate in zip(ARMS, RATES):
        for kind in ("ips", "snips", "dr"):
            est = doc["policies"][f"fixed:{arm}"][kind]
            assert est["ci_low"] <= rate <= est["ci_high"], (arm, kind, est)
    assert doc["policies"]["logging"]["ips"]["value"] == pytest.approx(doc["observed"]["value"])
    assert doc["policies"]["replay:thompson:draws=500"]["replay"]["n"] > 0
    assert doc["policies"]["thompson"]["ips"]["value"] > RATES.mean()


def test_table_and_errors(tmp_path):
    log = bandit_logging(1, ThompsonSampling(draws=500), n=1000)
    path = tmp_path / "log.jsonl"
    write_export(path, log)
    code, text = run("--from-file", str(path))
    assert code == 0
    assert "observed (logging policy)" in text and "fixed:b" in text and "thompson" in text
    code, text = run("--from-file", str(path), "--policy", "fixed:z", "--policy", "replay:thompson")
    assert code == 1
    assert "arm 'z' is not in the log" in text and "needs uniformly logged rows" in text
    assert run("--from-file", str(path), "--policy", "nosuch")[0] == 2
    assert run("--from-file", str(tmp_path / "missing.jsonl"))[0] == 1
    (tmp_path / "empty.jsonl").write_text("")
    assert run("--from-file", str(tmp_path / "empty.jsonl"))[0] == 1
    (tmp_path / "bad.jsonl").write_text("[1]\n")
    assert run("--from-file", str(tmp_path / "bad.jsonl"))[0] == 2
    with pytest.raises(UsageError, match="not key=value"):
        parse_policy("thompson:draws")
    assert parse_policy("replay:epsilon_greedy:epsilon=0.2") == ("replay", "epsilon_greedy", {"epsilon": 0.2})


def test_end_to_end_on_a_real_stack(stack, tmp_path):
    """Simulated visitors through NGINX with known rates; the estimate for always-<variant>
    covers that variant's true rate."""
    with stack.admin() as admin:
        admin.patch("/experiments/demo", json={"holdout": 0.3, "min_share": 0.1}).raise_for_status()
    tally = run_simulation(stack.config.base_url, TRUE_RATES, visitors=1500, seed=7, concurrency=32)
    assert not tally.errors, tally.errors
    settled_totals(stack, "trials")
    export = tmp_path / "demo.jsonl"
    code, text = run("--experiment", "demo", "--redis-url", stack.config.redis_url, "--json", "--seed", "0",
                     "--confidence", "0.999", "--policy", "fixed:*", "--policy", "replay:thompson:draws=500",
                     "--refresh", "20", "--export", str(export))
    assert code == 0, text
    doc = json.loads(text)
    assert doc["goal"] == "signup"
    assert doc["join"]["assignments"] == 1500 and doc["join"]["unattributed"] == 0
    assert doc["join"]["attributed"] == sum(tally.converted.values())
    for arm, rate in TRUE_RATES.items():
        for kind in ("ips", "snips", "dr"):
            est = doc["policies"][f"fixed:{arm}"][kind]
            assert est["ci_low"] <= rate <= est["ci_high"], (arm, kind, est)
    assert doc["policies"]["replay:thompson:draws=500"]["replay"]["n"] > 50
    # the export reads back to the same figures
    code, again = run("--from-file", str(export), "--json", "--seed", "0", "--confidence", "0.999",
                      "--policy", "fixed:*", "--policy", "replay:thompson:draws=500", "--refresh", "20")
    assert json.loads(again)["policies"]["fixed:b"] == doc["policies"]["fixed:b"]


def test_compare_strategies_from_a_file(tmp_path):
    log = bandit_logging(3, ThompsonSampling(draws=500), n=3000, holdout=0.2)
    path = tmp_path / "log.jsonl"
    write_export(path, log)
    code, text = run("--from-file", str(path), "--compare", "--json", "--seed", "0", "--confidence", "0.999")
    assert code == 0, text
    doc = json.loads(text)
    assert doc["policies"] == {}  # --compare alone: the comparison only
    found = {s["name"]: s for s in doc["strategies"]}
    assert list(found) == ["thompson", "ucb1", "epsilon_greedy", "fixed:a", "fixed:b", "fixed:c", "even"]
    for arm, rate in zip(ARMS, RATES):
        assert found[f"fixed:{arm}"]["low"] <= rate <= found[f"fixed:{arm}"]["high"]
    code, text = run("--from-file", str(path), "--compare", "--compare-model", "fit", "--seed", "0")
    assert code == 0, text
    table = text[text.index("strategy comparison on 3000 logged assignments"):].splitlines()
    assert table[2].startswith("Always b") or table[2].split()[0] in ("Thompson", "UCB1", "Epsilon-greedy")
    assert any(line.startswith("Model's choice per visitor") for line in table)
    assert len(table) == 2 + 8
