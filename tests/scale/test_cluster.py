"""Two routers behind NGINX on a three-master Redis Cluster, real processes: exact
counts, experiments on every master, routers learning from each other, and a
master restarted under traffic."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from croupier.scripts.processes import redis_cli, wait_cluster_ok
from tests.conftest import BROWSER_UA, eventually
from tests.scale.conftest import admin_of, experiment_doc, experiment_key, ids_per_master, owner_of
from tests.scale.traffic import run_traffic


@pytest.fixture(scope="module")
def spread(cluster_stack) -> dict[int, list[str]]:
    """One experiment per master (besides the demo), created and served through NGINX."""
    per_master = ids_per_master(cluster_stack, "spread")
    with cluster_stack.admin() as admin:
        for ids in per_master.values():
            for exp_id in ids:
                admin.post("/experiments", json=experiment_doc(cluster_stack, exp_id)).raise_for_status()
    cluster_stack.reload_nginx()
    return per_master


def counted(stack, router: int, experiment: str) -> tuple[dict[str, int], dict[str, int]]:
    """Trials and conversions per variant, as one router's admin API reports them."""
    with admin_of(stack, router) as admin:
        rows = admin.get(f"/experiments/{experiment}/stats").raise_for_status().json()["variants"]
    return ({r["id"]: r["trials"] for r in rows if r["trials"]},
            {r["id"]: r["conversions"] for r in rows if r["conversions"]})


def settled(stack, experiment: str) -> tuple[dict[str, int], dict[str, int]]:
    """The counts once queued assignments are written: two reads a few flushes apart agree."""
    previous = counted(stack, 0, experiment)
    while True:
        time.sleep(0.4)
        current = counted(stack, 0, experiment)
        if current == previous:
            return current
        previous = current


def no_crossslot_logged(stack) -> None:
    for router in stack.routers:
        log = router.log_path.read_text(errors="replace")
        assert "CROSSSLOT" not in log and "same key slot" not in log, router.log_tail()


def test_experiments_spread_over_every_master(cluster_stack, spread):
    ports = cluster_stack.config.redis_ports
    assert sorted(spread) == sorted(ports)
    owners = {exp_id: owner_of(cluster_stack, experiment_key(exp_id)) for ids in spread.values() for exp_id in ids}
    assert set(owners.values()) == set(ports)
    with cluster_stack.admin() as admin:
        listed = {e["id"] for e in admin.get("/experiments").raise_for_status().json()["experiments"]}
    assert set(owners) <= listed


def test_traffic_through_nginx_is_counted_exactly_on_every_master(cluster_stack, spread):
    experiments = ["demo"] + [exp_id for ids in spread.values() for exp_id in ids]
    paths = ["/"] + [f"/{exp_id}/" for exp_id in experiments[1:]]
    seen = run_traffic(cluster_stack.config.base_url, paths, visitors=800, rate=0.3, concurrency=12, seed=11)
    assert not seen.errors, seen.errors
    assert set(seen.pages) == {200}
    assert {status for (_, status) in seen.beacons} == {204}
    for experiment in experiments:
        trials, conversions = settled(cluster_stack, experiment)
        assert trials == seen.assigned_to(experiment), experiment
        assert conversions == seen.converted_in(experiment), experiment
        assert counted(cluster_stack, 1, experiment) == (trials, conversions)  # the other router agrees
        # the experiment's keys live on the master that owns its slot, and only there
        owner = owner_of(cluster_stack, experiment_key(experiment))
        for port in cluster_stack.config.redis_ports:
            answer = redis_cli(port, "exists", experiment_key(experiment)).strip()
            assert answer == ("1" if port == owner else f"MOVED {answer.split()[1]} 127.0.0.1:{owner}"), port
    no_crossslot_logged(cluster_stack)


def decide(stack, router: int, path: str, cookie: str = "") -> httpx.Response:
    port = stack.config.router_ports[router]
    headers = {"X-Original-URI": path, "Host": "127.0.0.1", "User-Agent": BROWSER_UA}
    if cookie:
        headers["Cookie"] = cookie
    return httpx.get(f"http://127.0.0.1:{port}/_croupier/decide", headers=headers, timeout=5)


def test_a_conversion_through_one_router_steers_the_other_within_the_refresh_interval(cluster_stack):
    refresh = float(cluster_stack.config.router_env["CROUPIER_REFRESH_INTERVAL"])
    doc = experiment_doc(cluster_stack, "learn", policy="epsilon_greedy", policy_params={"epsilon": 0.0},
                         min_share=0.0)
    with cluster_stack.admin() as admin:
        admin.post("/experiments", json=doc).raise_for_status()

    def assigned_b():  # a new visitor through router 0 until one gets b (no evidence yet: an even split)
        response = decide(cluster_stack, 0, "/learn/")
        if response.headers.get("x-croupier-experiment") == "learn" and \
                response.headers.get("x-croupier-variant") == "b" and "set-cookie" in response.headers:
            return response.headers["set-cookie"].split(";", 1)[0]

    cookie = eventually(assigned_b, timeout=5)
    eventually(lambda: counted(cluster_stack, 1, "learn")[0].get("b"), timeout=5)  # b's trial is written
    eventually(lambda: decide(cluster_stack, 1, "/learn/").headers.get("x-croupier-experiment") == "learn")
    assert {decide(cluster_stack, 1, "/learn/").headers["x-croupier-variant"] for _ in range(30)} == {"a", "b"}

    beacon = httpx.post(f"http://127.0.0.1:{cluster_stack.config.router_ports[0]}/_croupier/beacon",
                        json={"experiment": "learn", "type": "convert", "goal": "signup"},
                        headers={"Cookie": cookie, "User-Agent": BROWSER_UA}, timeout=5)
    assert beacon.status_code == 204
    acknowledged = time.monotonic()

    with admin_of(cluster_stack, 1) as admin:
        def router_1_split() -> dict[str, float]:  # the traffic split in router 1's live snapshot
            return {v["id"]: v["share"] for v in admin.get("/experiments/learn/stats").json()["variants"]}

        eventually(lambda: router_1_split() == {"a": 0.0, "b": 1.0}, timeout=5, interval=0.01)
        elapsed = time.monotonic() - acknowledged
    # one refresh interval, plus the admin call and a loaded two-core machine's scheduling
    assert elapsed < refresh + 0.3, f"router 1 followed after {elapsed:.2f} s (refresh {refresh} s)"
    assert {decide(cluster_stack, 1, "/learn/").headers["x-croupier-variant"] for _ in range(20)} == {"b"}


def test_the_admin_api_gives_the_same_answer_from_any_router(cluster_stack):
    with cluster_stack.admin() as admin:
        admin.post("/experiments", json=experiment_doc(cluster_stack, "race")).raise_for_status()
    # concurrent changes through both routers: compare-and-set on the cluster loses none
    base = cluster_stack.config.variant_base_port

    def add(i: int) -> int:
        with admin_of(cluster_stack, i % 2) as admin:
            return admin.post("/experiments/race/variants", json={
                "id": f"v{i}", "upstream": f"127.0.0.1:{base + 2}"}).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:  # an exception in any call is raised here
        results = list(pool.map(add, range(12)))
    assert len(results) == 12 and set(results) <= {200, 201}, results

    answers = []
    for router in (0, 1):
        with admin_of(cluster_stack, router) as admin:
            listed = admin.get("/experiments").raise_for_status().json()
            race = admin.get("/experiments/race").raise_for_status().json()
            answers.append((listed, race))
    assert answers[0] == answers[1]
    assert {v["id"] for v in answers[0][1]["variants"]} == {"a", "b"} | {f"v{i}" for i in range(12)}
    with admin_of(cluster_stack, 1) as admin:
        admin.patch("/experiments/race", json={"name": "renamed via router 1"}).raise_for_status()
    with admin_of(cluster_stack, 0) as admin:
        assert admin.get("/experiments/race").json()["name"] == "renamed via router 1"


def test_a_master_restarted_under_traffic_loses_no_acknowledged_conversion(cluster_stack, spread):
    stack = cluster_stack
    registry_node = owner_of(stack, "croupier:experiments")
    # the victim: a master that holds experiments but not the registry, so the others keep counting
    victim_port = next(port for port in stack.config.redis_ports if port != registry_node)
    victim = stack.config.redis_ports.index(victim_port)
    on_victim = set(spread[victim_port])
    experiments = [exp_id for ids in spread.values() for exp_id in ids]
    before = {e: settled(stack, e) for e in experiments}

    down = threading.Event()
    result = {}
    traffic = threading.Thread(target=lambda: result.update(seen=run_traffic(
        stack.config.base_url, [f"/{e}/" for e in experiments], seconds=6.0, rate=0.5, concurrency=8,
        seed=5, flag=down)))
    traffic.start()
    time.sleep(1.5)
    down.set()
    stack.redis_nodes[victim].stop()  # SIGTERM: the master writes its append-only file and exits
    time.sleep(1.5)
    stack.start_redis_node(victim)  # same data directory and nodes.conf, appendonly yes
    wait_cluster_ok(stack.config.redis_ports)
    down.clear()
    traffic.join(timeout=30)
    assert not traffic.is_alive() and "seen" in result, "the traffic thread died or did not finish"
    seen = result["seen"]

    assert not seen.errors, seen.errors
    assert set(seen.pages) == {200}  # visitors kept getting pages throughout
    assert any(e in on_victim and s == 503 for e, s in seen.flagged), seen.flagged  # it was really down
    for (exp_id, status), n in seen.beacons.items():
        if exp_id not in on_victim:
            assert status == 204, (exp_id, status, n)  # experiments on the other masters were unaffected
    for exp_id in experiments:
        trials, conversions = settled(stack, exp_id)
        old_trials, old_conversions = before[exp_id]
        converted = seen.converted_in(exp_id)
        # every variant's conversions: those from before the run count even where none came during it
        acked = {v: old_conversions.get(v, 0) + converted.get(v, 0) for v in {*old_conversions, *converted}}
        for v, n in acked.items():
            assert conversions.get(v, 0) >= n, (exp_id, v, conversions, acked)  # every 204 was kept
        # and nothing beyond what was sent: a 503 may still have been taken (its reply lost)
        refused = seen.beacons[(exp_id, 503)]
        assert sum(acked.values()) <= sum(conversions.values()) <= sum(acked.values()) + refused, exp_id
        # queued assignments were written once when their master returned, none lost, none twice
        assigned = {v: old_trials.get(v, 0) + n for v, n in seen.assigned_to(exp_id).items()}
        assert trials == {**old_trials, **assigned}, (exp_id, trials, old_trials, seen.assigned_to(exp_id))
    no_crossslot_logged(stack)
