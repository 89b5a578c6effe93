"""A campaign on the local stack, as the README tells it: croupier-campaign assigns a CSV
through the batch API (interrupted and run again), sends conversions back, and the stats
show them."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time

import httpx

from croupier.scripts.campaign import main
from tests.conftest import eventually, variant_stats


def write_list(path, n: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "country", "region", "email"])
        for i in range(n):
            writer.writerow([f"cust-{i:05d}", "fr" if i % 2 else "de", "north", f"c{i}@example.com"])


def read_output(path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_assign_interrupt_resume_convert_and_see_the_stats(make_stack, tmp_path, capsys):
    stack = make_stack()
    base = stack.config.variant_base_port
    with stack.admin() as admin:
        admin.post("/experiments", json={"id": "spring-email", "path_prefix": "/spring-email/", "variants": [
            {"id": "plain", "upstream": f"127.0.0.1:{base}", "params": {"subject": "Spring is here"}},
            {"id": "cashback", "upstream": f"127.0.0.1:{base + 1}", "params": {"subject": "5% back"}}]},
        ).raise_for_status()
    key = {"Authorization": f"Bearer {stack.config.api_key}"}
    eventually(lambda: httpx.post(f"{stack.config.admin_url}/api/v1/batches/assign", headers=key, content=b"",
                                  params={"experiment": "spring-email"}).status_code == 200, timeout=10)
    customers, out = tmp_path / "customers.csv", tmp_path / "assigned.csv"
    write_list(customers, 3000)
    common = ["--experiment", "spring-email", "--stack-dir", str(stack.config.run_dir)]

    # interrupted part-way (Ctrl-C), then run again: it continues where it stopped
    run = subprocess.Popen([sys.executable, "-m", "croupier.scripts.campaign", "assign", str(customers),
                            "--out", str(out), "--chunk", "50", "--channel", "email", *common],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while (not out.exists() or len(read_output(out)) < 300) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 130, err
    assert "run the same command again" in err
    first = read_output(out)
    assert 300 <= len(first) < 3000

    assert main(["assign", str(customers), "--out", str(out), "--channel", "email", *common]) == 0
    summary = capsys.readouterr().out
    rows = read_output(out)
    assert sorted(r["customer_id"] for r in rows) == [f"cust-{i:05d}" for i in range(3000)]  # each once
    assert f"skipped {len(first)} already in the output" in summary
    assert {r["variant"] for r in rows} == {"plain", "cashback"} and all(r["token"] for r in rows)
    assert {r["params"] for r in rows} == {'{"subject":"Spring is here"}', '{"subject":"5% back"}'}
    stats = eventually(lambda: (s := variant_stats(stack, "spring-email")) and
                       sum(v["trials"] for v in s.values()) == 3000 and s, timeout=10)
    assert {v: stats[v]["trials"] for v in stats} == {v: sum(r["variant"] == v for r in rows) for v in stats}

    # the same list again: nobody assigned or counted twice
    again = tmp_path / "again.csv"
    assert main(["assign", str(customers), "--out", str(again), *common, "--quiet"]) == 0
    assert "returning 3000" in capsys.readouterr().out
    assert [(r["customer_id"], r["variant"]) for r in read_output(again)] == \
        sorted((r["customer_id"], r["variant"]) for r in rows)

    # conversions back, by customer id and by token; a customer never assigned is reported
    conversions = tmp_path / "conversions.csv"
    converted = rows[:10]
    with conversions.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "token", "value"])
        for r in converted[:9]:
            writer.writerow([r["customer_id"], "", "12.5"])
        writer.writerow(["", converted[9]["token"], ""])
        writer.writerow(["nobody", "", ""])
    assert main(["convert", str(conversions), *common]) == 1
    printed = capsys.readouterr().out
    assert "sent 10 conversion(s)" in printed and "counted 10" in printed
    assert "row 12 (nobody): customer_id: no assignment" in printed
    expected = {v: sum(r["variant"] == v for r in converted) for v in ("plain", "cashback")}
    eventually(lambda: {v: s["conversions"] for v, s in variant_stats(stack, "spring-email").items()} == expected,
               timeout=10)
