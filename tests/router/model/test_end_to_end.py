"""The model in the product, on a real stack: simulated visitors with known rates, croupier-model train,
model_weight 0.5, and new variants whose split follows the model instead of the flat prior."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest

from croupier.router.experiments import parse_experiment
from croupier.router.hybrid import decode
from croupier.router.settings import Settings
from croupier.router.snapshot import compute_arms
from croupier.router.store import Store
from croupier.scripts.model import main as model_main
from croupier.scripts.simulate import run_simulation
from tests.conftest import eventually, settled_totals
from tests.scripts.conftest import variant_cli  # noqa: F401  (a fixture)
from tests.scripts.test_variant import add_d

TRUE_RATES = {"a": 0.04, "b": 0.14, "c": 0.07}


def stored_model(redis_url: str):
    async def load():
        store = Store(Settings(redis_url=redis_url))
        try:
            return await store.load_model("demo")
        finally:
            await store.close()
    version, doc = asyncio.run(load())
    return decode(doc, version)


def expected_split(admin, model) -> dict[str, float]:
    """The split the router should compute from the live counters, with and without the model."""
    experiment = parse_experiment(admin.get("/experiments/demo").json())
    rows = admin.get("/experiments/demo/stats").json()["variants"]
    counters = {r["id"]: {"trials": float(r["trials"]), "conv:signup": float(r["conversions"])} for r in rows}
    arms = compute_arms(experiment, counters, np.random.default_rng(0), model=model)
    return dict(arms.labelled())


def test_trained_model_steers_new_variants(variant_cli):
    cli, stack = variant_cli, variant_cli.stack
    tally = run_simulation(stack.config.base_url, TRUE_RATES, visitors=1200, seed=11, concurrency=32)
    assert not tally.errors, tally.errors
    settled_totals(stack, "trials")

    out = io.StringIO()
    # --force: the gate has tests of its own; here the model must be stored whatever 240 held-out rows say
    assert model_main(["train", "--experiment", "demo", "--redis-url", stack.config.redis_url, "--quiet",
                       "--json", "--force"], out=out) == 0
    trained = json.loads(out.getvalue())["model"]
    assert trained["rows"] == 960  # the latest 20% held out to validate on
    b = trained["arms"]["b"]
    assert abs(b["rate"] - TRUE_RATES["b"]) < 4 * b["sd"] + 0.01, b

    # no model yet in use: --prior-from-model still works (the model is stored), --prior-rate may not be mixed in
    assert cli("add", "x", "--from-template", "--prior-from-model", "--prior-rate", "0.1").code == 2
    with stack.admin() as admin:
        admin.patch("/experiments/demo", json={"model_weight": 0.5}).raise_for_status()
        shown = eventually(lambda: admin.get("/experiments/demo/stats").json().get("model"))
        assert shown["version"] == 1 and shown["weight"] == 0.5
        assert shown["arms"]["b"]["rate"] == pytest.approx(b["rate"])
        suggested = admin.get("/experiments/demo/model/prior", params={"strength": 100}).json()

        added = add_d(cli, "--json", "--prior-from-model", "--prior-weight", "100")
        assert added.code == 0, added.err
        assert "prior from the model (version 1)" in added.err
        d = next(v for v in admin.get("/experiments/demo").json()["variants"] if v["id"] == "d")
        assert (d["prior_alpha"], d["prior_beta"]) == pytest.approx((suggested["prior_alpha"],
                                                                   suggested["prior_beta"]))
        # a variant added with the flat prior and no data: the model, not Beta(1, 1), sets its split
        admin.post("/experiments/demo/variants", json={"id": "e", "upstream": "127.0.0.1:9"}).raise_for_status()
        model = stored_model(stack.config.redis_url)
        with_model = expected_split(admin, model)
        flat = expected_split(admin, None)
        assert flat["e"] - with_model["e"] > 0.15, (flat, with_model)

        def follows_the_model():
            shares = {r["id"]: r["share"] for r in admin.get("/experiments/demo/stats").json()["variants"]}
            assert all(abs(shares[v] - with_model[v]) < 0.08 for v in with_model), (shares, with_model, flat)
            return True
        eventually(follows_the_model, timeout=5)

    # no model stored: a clear message, nothing deployed
    with stack.admin() as admin:
        admin.patch("/experiments/demo", json={"model_weight": 0}).raise_for_status()
        assert admin.delete("/experiments/demo/model").status_code == 204
        assert admin.get("/experiments/demo/model").status_code == 404
        assert admin.delete("/experiments/demo/model").status_code == 404  # nothing left to remove
    refused = cli("add", "f", "--from-template", "--prior-from-model")
    assert refused.code == 1 and "has no trained model" in refused.err
    assert not cli.params_file("f").exists()
