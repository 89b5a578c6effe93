"""The local stack keeps itself up: what dies is restarted while NGINX keeps serving,
a stop leaves nothing behind, and a taken port stops it at start-up."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from croupier.scripts.processes import (ROOT, Backoff, Process, StartError, Supervisor, free_port, free_port_block, http_ok,
                               nginx_workers, pid_alive, redis_server_pid, start_redis)
from croupier.scripts.stack import LocalStack
from tests.conftest import BROWSER_UA, eventually, stack_config


class Traffic:
    """New visitors (no cookie), one after another from a thread, until stopped or ``limit``;
    each answer recorded as (time, status or error, whether the router decided it)."""

    def __init__(self, base_url: str, limit: int = 600, pause: float = 0.02) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=5, headers={"User-Agent": BROWSER_UA})
        self.limit, self.pause = limit, pause
        self.answers: list[tuple[float, int | str, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.answers) < self.limit:
            self.client.cookies.clear()
            try:
                response = self.client.get("/")
                answer: int | str = response.status_code
                # a router's decision assigns the visitor; NGINX's control fallback sets no cookie
                decided = "croupier_demo" in response.headers.get("set-cookie", "")
            except httpx.HTTPError as exc:
                answer, decided = f"{type(exc).__name__}: {exc}", False
            self.answers.append((time.monotonic(), answer, decided))
            time.sleep(self.pause)

    def failures(self) -> list:
        return [a for a in self.answers if a[1] != 200]

    def after(self, moment: float) -> list:
        return [a for a in self.answers if a[0] > moment]


@pytest.fixture
def supervised(tmp_path):
    """A stack as ``python -m croupier.scripts.stack`` runs it: started, then supervised."""
    stack = LocalStack(stack_config(tmp_path / "stack")).start()
    stack.supervise()
    yield stack
    stack.stop()


def back_after(process: Process, old_pid: int, ready, timeout: float = 10.0) -> float:
    """Seconds until ``process`` runs again under a new pid and ``ready`` says it serves."""
    started = time.monotonic()
    eventually(lambda: process.pid != old_pid and process.alive() and ready(), timeout=timeout)
    return time.monotonic() - started


def new_visitor_decided(base_url: str) -> bool:
    response = httpx.get(f"{base_url}/", headers={"User-Agent": BROWSER_UA}, timeout=5)
    assert response.status_code == 200
    return "croupier_demo" in response.headers.get("set-cookie", "")


def test_a_killed_router_is_restarted_while_every_page_is_served(supervised, figure):
    stack = supervised
    router = stack.routers[0]
    old_pid = router.pid
    with Traffic(stack.config.base_url) as traffic:
        time.sleep(1.0)
        os.kill(old_pid, signal.SIGKILL)
        seconds = back_after(router, old_pid, lambda: http_ok(f"{stack.config.admin_url}/livez"))
        back = time.monotonic()
        time.sleep(3.0)
    figure(f"router back {seconds:.1f} s after SIGKILL; {len(traffic.answers)} pages, "
           f"{sum(not a[2] for a in traffic.answers)} served by the control fallback")
    assert seconds < 8  # 1.3 to 2.7 s measured on a busy two-core machine: 0.5 s of backoff, the rest start-up
    assert len(traffic.answers) > 50
    assert traffic.failures() == []
    # once the router is back, newcomers are assigned by the bandit again, not sent to control
    assert new_visitor_decided(stack.config.base_url)
    assert all(decided for _, _, decided in traffic.after(back + 0.5))
    assert json.loads(stack.state_file.read_text())["pids"]["router-0"] == router.pid


def test_a_killed_redis_is_restarted_with_its_data_while_every_page_is_served(supervised, figure):
    stack = supervised
    port = stack.config.redis_port
    old_pid = stack.redis.pid
    with Traffic(stack.config.base_url) as traffic:
        time.sleep(1.0)
        os.kill(old_pid, signal.SIGKILL)
        seconds = back_after(stack.redis, old_pid, lambda: redis_server_pid(port) == stack.redis.pid)
        time.sleep(1.0)
    figure(f"redis back {seconds:.1f} s after SIGKILL; {len(traffic.answers)} pages")
    assert seconds < 5
    assert traffic.failures() == []
    # append-only: the demo experiment survived, so the router still decides and counts
    assert new_visitor_decided(stack.config.base_url)
    with stack.admin() as admin:
        assert admin.get("/experiments/demo").status_code == 200


def test_stopping_a_supervised_stack_leaves_no_process(supervised):
    stack = supervised
    router = stack.routers[0]
    old_pid = router.pid
    os.kill(old_pid, signal.SIGKILL)
    back_after(router, old_pid, lambda: http_ok(f"{stack.config.admin_url}/livez"))
    pids = [old_pid, *(p.pid for p in stack.processes), *nginx_workers(stack.nginx.pid)]
    # a second death just before the stop: its restart must not outlive the stop
    os.kill(stack.variants["b"].pid, signal.SIGKILL)
    stack.stop()
    assert [pid for pid in pids if pid_alive(pid)] == []


def run_command(run_dir: Path, *args: str) -> subprocess.Popen:
    http_port, router_port, decide_port, redis_port = (free_port() for _ in range(4))
    argv = [sys.executable, "-m", "croupier.scripts.stack", "--run-dir", str(run_dir), "--http-port", str(http_port),
            "--router-port", str(router_port), "--decide-port", str(decide_port),
            "--redis-port", str(redis_port), "--variant-base-port", str(free_port_block(3)), *args]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CROUPIER_ADMIN_TOKEN": "test-token"})


def read_until(stream, marker: str, timeout: float) -> list[str]:
    """Lines of ``stream`` up to the first holding ``marker``, read in a thread so a silent
    stream cannot hang the test."""
    lines: list[str] = []
    found = threading.Event()

    def read():
        for line in stream:
            lines.append(line)
            if marker in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(timeout), f"no {marker!r} within {timeout:.0f} s; got:\n{''.join(lines)}"
    return lines


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_command_restarts_nginx_and_its_stop_signal_ends_everything(tmp_path, stop_signal):
    command = run_command(tmp_path / "run")
    try:
        read_until(command.stdout, "ready: http://", timeout=60)
        state = json.loads((tmp_path / "run" / "stack.json").read_text())
        nginx_pid = state["pids"]["nginx"]
        pids = [*state["pids"].values(), *nginx_workers(nginx_pid)]
        # NGINX's workers outlive a killed master and hold its port: the restart must clear them
        os.kill(nginx_pid, signal.SIGKILL)
        said = "".join(read_until(command.stderr, "nginx is back", timeout=10))
        assert f"nginx (pid {nginx_pid}) was killed by SIGKILL; restarting it in 0.5 s" in said
        assert httpx.get(state["base_url"] + "/", timeout=5).status_code == 200
        restarted = json.loads((tmp_path / "run" / "stack.json").read_text())["pids"]["nginx"]
        pids += [restarted, *nginx_workers(restarted)]
        # the router dies just before the stop: whether or not its restart began, nothing may outlive the stop
        os.kill(state["pids"]["router-0"], signal.SIGKILL)
        command.send_signal(stop_signal)
        assert command.wait(30) == 0
    finally:
        if command.poll() is None:
            command.kill()
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not (tmp_path / "run" / "stack.json").exists()


def test_a_taken_redis_port_stops_the_command_at_start_up(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = run_command(tmp_path / "run", "--redis-port", str(port))
        out, err = command.communicate(timeout=30)
    assert command.returncode == 1
    assert f"port {port} (Redis) is already in use by another process" in err
    assert "--redis-port" in err
    assert "ready:" not in out
    assert not (tmp_path / "run").exists()  # nothing was started


def test_start_redis_does_not_take_another_listener_for_its_server(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(StartError, match="before it was accepting connections"):
            start_redis(tmp_path, taken.getsockname()[1])


def test_backoff_doubles_to_its_cap():
    assert [Backoff(first=0.5, cap=10).delay(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_a_process_that_keeps_dying_is_restarted_ever_later(tmp_path):
    said: list[str] = []
    process = Process("crasher", ["sh", "-c", "echo about to fail; exit 3"], tmp_path / "crasher.log",
                      ready=lambda: False).start()
    supervisor = Supervisor([process], backoff=Backoff(first=0.05, cap=0.2), log=said.append,
                            interval=0.01).start()
    try:
        eventually(lambda: len(said) >= 5, timeout=5)
    finally:
        supervisor.stop()
    assert "crasher (pid" in said[0] and "exited with code 3; restarting it in 0.05 s" in said[0]
    # a restarted process that dies before it is ready: the wait grows, and its log says why
    assert all("exited with code 3 while starting (about to fail)" in line for line in said[1:5])
    assert [line.split("restarting it in ")[1].split(" s ")[0] for line in said[:5]] == ["0.05", "0.1", "0.2",
                                                                                          "0.2", "0.2"]
