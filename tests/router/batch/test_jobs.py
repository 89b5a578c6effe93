"""Batch jobs: uploaded once, processed in the background, progress and results from any
router; a job whose router was killed is resumed by another and assigns nobody twice."""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx

from croupier.router.batch_jobs import split_job_id
from tests.conftest import eventually
from tests.router.batch.conftest import customers, experiment, key, lines, two_routers


def test_job_ids_name_their_experiment():
    assert split_job_id("promo.0123456789abcdef") == ("promo", "0123456789abcdef")
    assert split_job_id("promo") is None and split_job_id("Promo.0123456789abcdef") is None
    assert split_job_id("promo.xyz") is None


def test_a_job_reports_progress_and_its_results_in_order(api):
    api.create(experiment(variants="abc"))
    body = customers(4500) + lines([{"customer_id": "bad id"}])
    created = api.client.post("/api/v1/batches", params={"experiment": "promo", "channel": "sms"}, content=body,
                              headers=key(""))
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["total"] == 4501 and job["status"] == "running"

    def finished():
        progress = api.client.get(job["progress"], headers=key("")).json()
        assert progress["status"] == "done", progress
        return progress

    progress = eventually(finished, timeout=30)
    assert (progress["done"], progress["total"], progress["new"], progress["errors"]) == (4501, 4501, 4500, 1)
    assert progress["channel"] == "sms" and sum(progress["variants"].values()) == 4500
    results = api.client.get(job["results"], headers=key(""))
    assert results.headers["x-croupier-job-status"] == "done"
    rows = [json.loads(line) for line in results.text.splitlines()]
    assert [r.get("customer_id") for r in rows[:-1]] == [f"c{i}" for i in range(4500)]
    assert rows[-1]["line"] == 4501 and rows[-1]["field"] == "customer_id"
    assert Counter(r["variant"] for r in rows[:-1]) == Counter(progress["variants"])
    # the channels API sees the job's assignments
    decided = api.decide(experiment="promo", customer_id="c7").json()
    assert (decided["variant"], decided["reason"]) == (rows[7]["variant"], "returning")
    eventually(lambda: api.total("promo", "trials") == 4500)


def test_another_tenant_cannot_see_a_job(api):
    api.create(experiment())
    job = api.client.post("/api/v1/batches", params={"experiment": "promo"}, content=customers(3),
                          headers=key("")).json()
    assert api.client.get(job["progress"], headers=key("acme")).status_code == 404
    assert api.client.get("/api/v1/batches/promo.0000000000000000", headers=key("")).status_code == 404
    assert api.client.get("/api/v1/batches/nonsense", headers=key("")).status_code == 404


def test_a_job_whose_router_was_killed_is_resumed_by_another(tmp_path):
    with two_routers(tmp_path) as (redis_port, routers, urls):
        first, second = urls
        httpx.post(f"{first}/api/v1/experiments", json=experiment(), headers={
            "Authorization": "Bearer test-admin-token"}).raise_for_status()
        for url in (first, second):
            eventually(lambda: httpx.post(f"{url}/api/v1/batches/assign", params={"experiment": "promo"},
                                          content=b"", headers=key("")).status_code == 200, timeout=10)
        n = 60_000
        job = httpx.post(f"{first}/api/v1/batches", params={"experiment": "promo"}, content=customers(n),
                         headers=key(""), timeout=30).json()
        eventually(lambda: httpx.get(f"{first}{job['progress']}", headers=key("")).json()["done"] > 0, timeout=30)
        routers[0].kill()
        stalled = httpx.get(f"{second}{job['progress']}", headers=key("")).json()
        assert stalled["status"] == "running" and stalled["done"] < n

        def finished():  # asking the second router resumes the job once the first one's lease lapsed
            progress = httpx.get(f"{second}{job['progress']}", headers=key("")).json()
            assert progress["status"] == "done", progress
            return progress

        progress = eventually(finished, timeout=120, interval=0.5)
        assert progress["done"] == progress["total"] == n and progress["errors"] == 0
        rows = [json.loads(line) for line in
                httpx.get(f"{second}{job['results']}", headers=key(""), timeout=30).text.splitlines()]
        assert [r["customer_id"] for r in rows] == [f"c{i}" for i in range(n)]
        # nobody assigned twice: each customer's stored assignment is the one in the results
        again = httpx.post(f"{second}/api/v1/batches/assign", params={"experiment": "promo"}, content=customers(n),
                           headers=key(""), timeout=120).text.splitlines()
        assert [json.loads(line)["variant"] for line in again] == [r["variant"] for r in rows]
        assert {json.loads(line)["reason"] for line in again} == {"returning"}
        time.sleep(0.5)
        stats = httpx.get(f"{second}/api/v1/experiments/promo/stats",
                          headers={"Authorization": "Bearer test-admin-token"}).json()
        assert sum(v["trials"] for v in stats["variants"]) <= n  # never more than one trial a customer
