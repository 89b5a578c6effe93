"""nginx/demo.py: the demo experiment the local stack, compose and Kubernetes serve."""

from __future__ import annotations

from croupier.nginx.demo import DEMO_VARIANTS, demo_experiment
from croupier.router.experiments import parse_experiment


def test_the_demo_is_a_valid_experiment_with_the_upstreams_asked_for():
    demo = demo_experiment(lambda exp, vid: f"{exp}-{vid}:80")
    experiment = parse_experiment(demo)
    assert [v.id for v in experiment.variants] == list(DEMO_VARIANTS) and experiment.control == DEMO_VARIANTS[0]
    assert [v.upstream for v in experiment.variants] == [f"demo-{vid}:80" for vid in DEMO_VARIANTS]
    assert all(v.params["id"] == v.id for v in experiment.variants)  # each variant's page is its own

