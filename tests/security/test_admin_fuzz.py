"""The admin API fuzzed from its own OpenAPI document (schemathesis), against a real router.

Bounded: a few dozen examples per operation, no deadline per example. Any 5xx is a bug.
Half of the generated cases are pointed at experiments and variants that exist,
so the fuzz reaches the update paths and not only the 404s.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from croupier.router.openapi import OPENAPI

schema = schemathesis.openapi.from_dict(OPENAPI)
EXAMPLES = 25
EXISTING = {"id": ("demo", "fuzz"), "vid": ("a", "b", "c")}
tally: Counter = Counter()


@pytest.fixture(scope="module")
def api(stack):
    """The stack's router, with an extra experiment the fuzz may change and remove."""
    def ensure_fuzz_experiment() -> None:
        with stack.admin() as admin:
            admin.post("/experiments", json={"id": "fuzz", "path_prefix": "/fuzz/", "variants": [
                {"id": "a", "upstream": f"127.0.0.1:{stack.config.variant_base_port}"},
                {"id": "b", "upstream": f"127.0.0.1:{stack.config.variant_base_port + 1}"}]})

    ensure_fuzz_experiment()
    with requests.Session() as session:  # one keep-alive connection for every case
        session.headers["Authorization"] = f"Bearer {stack.config.admin_token}"
        yield stack, session, ensure_fuzz_experiment
    print(f"\nadmin API fuzz: {sum(tally.values())} cases, statuses {dict(sorted(tally.items()))}")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_admin_operation_answers_5xx(api, case):
    stack, session, ensure_fuzz_experiment = api
    rng = random.Random(repr(case.body) + repr(case.path_parameters))
    for name, existing in EXISTING.items():
        if case.path_parameters and name in case.path_parameters and rng.random() < 0.5:
            case.path_parameters[name] = rng.choice(existing)
    response = case.call(base_url=f"{stack.config.admin_url}/api/v1", session=session, timeout=10)
    tally[response.status_code] += 1
    if case.method == "DELETE":
        ensure_fuzz_experiment()
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:500])
