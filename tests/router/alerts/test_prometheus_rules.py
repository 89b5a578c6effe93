"""k8s/prometheus-rules.yml: valid for Prometheus (promtool check rules), firing as intended on
sample series (promtool test rules, prometheus-rules.test.yml), and naming only metrics the
router exports. A missing promtool is a failure that says how to install it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from croupier.router.metrics import Metrics

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[2] / "k8s" / "prometheus-rules.yml"
RULE_TESTS = HERE / "prometheus-rules.test.yml"
PROMTOOL_HINT = "apt-get install -y prometheus (Debian's package ships promtool), or run scripts/setup.sh"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(f"promtool is not installed; install it with: {PROMTOOL_HINT}", pytrace=False)
    return found


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=HERE)


def test_the_rules_file_is_valid(promtool):
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_fire_as_their_unit_tests_expect(promtool):
    result = run(promtool, "test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_name_only_metrics_the_router_exports():
    exported = set()
    for family in Metrics().registry.collect():
        exported.add(family.name)
        if family.type == "counter":
            exported.add(f"{family.name}_total")
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    named = {name for rule in rules for name in re.findall(r"\bcroupier_[a-z_]+", rule["expr"])}
    assert named and named <= exported, f"not exported by router/metrics.py: {sorted(named - exported)}"
    alerts = {rule["alert"] for rule in rules}
    assert {"CroupierSampleRatioMismatch", "CroupierGuardrailBreached", "CroupierDriftDetected",
            "CroupierWebhookDeliveriesFailing", "CroupierSnapshotTooOld", "CroupierArchiveFallingBehind"} <= alerts
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == alerts, f"rules without a unit test: {sorted(alerts - tested)}"
