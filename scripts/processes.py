"""Start and stop the stack's processes: redis-server, routers, variants and NGINX.

Shared by the local stack runner and the test fixtures, so both run the real
servers the same way. Every process is stopped by its process id.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

ROOT = Path(__file__).resolve().parent.parent

INSTALL_HINTS = {
    "redis-server": "apt-get install -y redis-server",
    "redis-cli": "apt-get install -y redis-tools",
    "nginx": "apt-get install -y nginx-light",
    "wrk": "apt-get install -y wrk",
    "chromium": "apt-get install -y chromium",
}


class MissingBinary(RuntimeError):
    pass


class StartError(RuntimeError):
    pass


class PortInUse(StartError):
    pass


def require_binary(name: str) -> str:
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}")
                                        if os.access(p, os.X_OK)), None)
    if not found:
        raise MissingBinary(f"{name} is not installed; install it with: {INSTALL_HINTS.get(name, name)}"
                            " (or run scripts/setup.sh)")
    return found


def _probe_socket(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    # the servers we start listen with SO_REUSEADDR, so a port that only has
    # connections in TIME-WAIT is free for them too
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def _server_port_range() -> range:
    """Ports below the kernel's ephemeral range: no outgoing connection takes one of them
    between the moment we find it free and the moment a server binds it (after a load
    test, most of the ephemeral range is held by connections in TIME-WAIT)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(10000, max(low, 10001))


def _bindable(host: str, ports: range) -> bool:
    socks = []
    try:
        for port in ports:
            s = _probe_socket(host)
            socks.append(s)
            s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive free ports (for processes numbered from a base port)."""
    candidates = _server_port_range()
    for _ in range(500):
        base = random.randrange(candidates.start, candidates.stop - count)
        if _bindable(host, range(base, base + count)):
            return base
    raise StartError(f"no {count} consecutive free ports on {host} in {candidates.start}-{candidates.stop - 1}")


def free_port(host: str = "127.0.0.1") -> int:
    return free_port_block(1, host)


def require_free_ports(ports: list[tuple[int, str, str]], host: str = "127.0.0.1") -> None:
    """Refuse to start when a port is taken: a server of ours that cannot bind its port exits,
    but whatever already listens there would answer in its place. ``ports``: (port, what
    listens there, the option that moves it)."""
    problems = []
    given: dict[int, tuple[str, str]] = {}
    for port, what, option in ports:
        if port in given:
            problems.append(f"port {port} is given to both {given[port][0]} ({given[port][1]}) and {what} ({option})")
            continue
        given[port] = (what, option)
        if not _bindable(host, range(port, port + 1)):
            problems.append(f"port {port} ({what}) is already in use by another process on {host}; "
                            f"choose a free one with {option}")
    if problems:
        raise PortInUse("; ".join(problems))


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Process:
    """A server started in its own session (so a signal to its group reaches every process it
    forked), with how to tell it is ready, so the same object can be started again."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT
    popen: subprocess.Popen | None = None
    ready: Callable[[], bool] | None = None
    ready_what: str = "ready"

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env={**os.environ, **self.env}, cwd=self.cwd, start_new_session=True)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        """True while it runs. Once it has exited, whatever it forked is killed before it is reaped:
        NGINX's workers (and uvicorn's) outlive a killed parent and keep holding its port."""
        if self.popen is None or self.popen.returncode is not None:
            return False
        try:
            if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                return True
            # exited but not reaped: its pid, its group's id, cannot have been handed to anyone else
            self._kill_group()
        except ChildProcessError:
            pass  # reaped elsewhere (pid_alive); its group's id is no longer known to be ours
        self.popen.poll()
        return False

    def _kill_group(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.kill()

    def kill(self) -> None:
        """SIGKILL it and every process of its group."""
        if self.alive():
            self._kill_group()
            self.popen.wait(5)

    def exit_description(self) -> str:
        code = self.popen.returncode if self.popen else None
        if code is None:
            return "is running"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool] | None = None, timeout: float = 20.0,
                   what: str | None = None) -> Process:
        ready = ready or self.ready
        what = what or self.ready_what
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise StartError(f"{self.name} {self.exit_description()} before it was {what}:\n"
                                 f"{self.log_tail()}")
            if ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise StartError(f"{self.name} was not {what} within {timeout:.0f} s:\n{self.log_tail()}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def start_redis(run_dir: Path, port: int, *, appendonly: bool = False, name: str = "redis",
                extra: list[str] | None = None) -> Process:
    data = run_dir / name
    data.mkdir(parents=True, exist_ok=True)
    argv = [require_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
            "--save", "", "--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec",
            "--protected-mode", "yes", *(extra or [])]
    process = Process(name, argv, run_dir / f"{name}.log", ready_what="accepting connections")
    # only our own server counts: another one already listening on the port would answer too
    process.ready = lambda: redis_server_pid(port) == process.pid
    return process.start().wait_until()


def redis_server_pid(port: int) -> int | None:
    """The pid of the redis-server answering on ``port``; None while none answers."""
    try:
        # no retries: a silent listener (not Redis) must cost one short timeout, not redis-py's retry rounds
        with redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5,
                         retry=Retry(NoBackoff(), 0)) as client:
            return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None


def start_router(run_dir: Path, port: int, env: dict[str, str], *, name: str = "router") -> Process:
    env = {**env, "CROUPIER_HOST": "127.0.0.1", "CROUPIER_PORT": str(port)}
    return Process(name, [sys.executable, "-m", "croupier.router"], run_dir / f"{name}.log", env=env,
                   ready=lambda: http_ok(f"http://127.0.0.1:{port}/livez"),
                   ready_what="answering /livez").start().wait_until()


def variant_argv(params: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "croupier.variants", "--params", str(params), "--host", host, "--port", str(port)]


def start_variant(run_dir: Path, params: Path, port: int, *, name: str) -> Process:
    argv = variant_argv(params, port)
    return Process(name, argv, run_dir / f"{name}.log", ready=lambda: http_ok(f"http://127.0.0.1:{port}/healthz"),
                   ready_what="answering /healthz").start().wait_until()


def check_nginx_config(conf: Path, prefix: Path) -> None:
    result = subprocess.run([require_binary("nginx"), "-t", "-p", str(prefix), "-c", str(conf),
                             "-e", str(prefix / "error.log")],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise StartError(f"nginx -t rejected {conf}:\n{result.stderr}")


def start_nginx(conf: Path, prefix: Path, port: int, *, name: str = "nginx") -> Process:
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    check_nginx_config(conf, prefix)
    argv = [require_binary("nginx"), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
            "-g", "daemon off;"]
    return Process(name, argv, prefix / f"{name}.log", ready=lambda: port_open("127.0.0.1", port),
                   ready_what="listening").start().wait_until()


def reload_nginx(nginx: Process, conf: Path, prefix: Path) -> None:
    """Check the new configuration first, so a bad one never replaces a working one."""
    check_nginx_config(conf, prefix)
    nginx.signal(signal.SIGHUP)


def stop_all(processes: list[Process]) -> None:
    for process in reversed(processes):
        process.stop()


# Keeping a stack's processes up: one thread notices a process that died and starts the
# same Process again (same command, environment and log file) once its backoff has passed.

@dataclass(frozen=True)
class Backoff:
    """The wait before the n-th restart in a row: ``first`` doubling up to ``cap``. A process
    that stayed up ``stable`` seconds starts from ``first`` again when it next dies."""

    first: float = 0.5
    cap: float = 10.0
    stable: float = 30.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.first * 2 ** max(failures - 1, 0))


@dataclass
class _Watch:
    process: Process  # held, so that its id() is not handed to another object while watched
    up_since: float
    failures: int = 0
    down_since: float = 0.0
    restart_at: float | None = None  # while it waits out its backoff
    starting_since: float | None = None  # while it was restarted but is not ready yet


def console(message: str) -> None:
    print(f"croupier: {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


class Supervisor:
    """Restarts the processes in ``processes`` that die. The list is read on every pass, so a
    process added to it later is watched too; ``on_back`` is called with each restarted
    process once its ``ready`` check passes."""

    def __init__(self, processes: list[Process], *, backoff: Backoff = Backoff(),
                 log: Callable[[str], None] = console, on_back: Callable[[Process], None] = lambda p: None,
                 interval: float = 0.1, ready_timeout: float = 20.0) -> None:
        self.processes = processes
        self.backoff = backoff
        self.log = log
        self.on_back = on_back
        self.interval = interval
        self.ready_timeout = ready_timeout
        self._watches: dict[int, _Watch] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop restarting; returns once no restart is under way, so every process is in ``processes``."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            watched = list(self.processes)
            self._watches = {id(p): self._watches[id(p)] for p in watched if id(p) in self._watches}
            for process in watched:
                try:
                    self._check(process, time.monotonic())
                except Exception as exc:  # one process's trouble must not end the watch over the others
                    self.log(f"supervising {process.name} failed: {exc}")

    def _check(self, process: Process, now: float) -> None:
        watch = self._watches.setdefault(id(process), _Watch(process, up_since=now))
        if watch.starting_since is not None:
            self._check_restarted(process, watch, now)
        elif watch.restart_at is not None:
            if now >= watch.restart_at:
                watch.restart_at, watch.starting_since = None, now
                process.start()
        elif not process.alive():
            if now - watch.up_since >= self.backoff.stable:
                watch.failures = 0
            watch.down_since = now
            self._schedule(process, watch, now, process.exit_description())

    def _check_restarted(self, process: Process, watch: _Watch, now: float) -> None:
        if not process.alive():
            last = process.log_tail(1)
            self._schedule(process, watch, now, f"{process.exit_description()} while starting"
                           + (f" ({last})" if last else ""))
        elif process.ready is None or process.ready():
            watch.starting_since, watch.up_since = None, now
            self.log(f"{process.name} is back (pid {process.pid}), {now - watch.down_since:.1f} s after it went down")
            self.on_back(process)
        elif now - watch.starting_since > self.ready_timeout:
            process.kill()
            self._schedule(process, watch, now, f"was not {process.ready_what} within {self.ready_timeout:.0f} s")

    def _schedule(self, process: Process, watch: _Watch, now: float, what_happened: str) -> None:
        watch.failures += 1
        delay = self.backoff.delay(watch.failures)
        watch.starting_since, watch.restart_at = None, now + delay
        self.log(f"{process.name} (pid {process.pid}) {what_happened}; restarting it in {delay:g} s "
                 f"(see {process.log_path})")


# Processes that outlive the command that started them (the variant script's local
# variants): tracked by a pid file, stopped by pid from a later command.

def start_detached(name: str, argv: list[str], log_path: Path, pid_file: Path) -> Process:
    """Start ``argv`` in its own session and record its pid and command line, so a later
    command can stop it (and tell it from an unrelated process that reused the pid)."""
    process = Process(name, argv, log_path).start()
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{process.pid}\n{' '.join(argv)}\n")
    return process


def pid_file_process(pid_file: Path) -> int | None:
    """The pid ``start_detached`` recorded in ``pid_file`` while that very process runs, else None."""
    try:
        pid_text, _, command = pid_file.read_text().partition("\n")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) and pid_command(pid) == command.strip() else None


def stop_pid_file(pid_file: Path, timeout: float = 10.0) -> int | None:
    """Stop the process recorded in ``pid_file`` and delete the file; the pid stopped, or None."""
    pid = pid_file_process(pid_file)
    if pid is not None:
        stop_pid(pid, timeout)
    pid_file.unlink(missing_ok=True)
    return pid


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it first when it is our own exited child (no zombie counts)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: another command started it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not zombie(pid)


def zombie(pid: int) -> bool:
    """Exited, waiting for its parent to reap it; an orphan's new parent (init) may take its time."""
    return proc_stat(pid)[:1] == ["Z"]


def proc_stat(pid: int | str) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, parent pid, ...); [] once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def pid_command(pid: int) -> str:
    """The process's command line ('' when it is gone), to check a pid file still names our process."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``; for processes we hold no handle to."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)
    raise StartError(f"process {pid} did not exit after SIGKILL")


def nginx_workers(master_pid: int) -> set[int]:
    return {int(entry.name) for entry in Path("/proc").glob("[0-9]*")
            if proc_stat(entry.name)[1:2] == [str(master_pid)]}


def reload_nginx_pid(master_pid: int, conf: Path, prefix: Path, timeout: float = 5.0) -> None:
    """``reload_nginx`` for an NGINX started by another command: check, SIGHUP, and wait until
    new workers run, so the new configuration is serving when this returns."""
    check_nginx_config(conf, prefix)
    if not pid_alive(master_pid):
        raise StartError(f"nginx (pid {master_pid}) is not running")
    before = nginx_workers(master_pid)
    os.kill(master_pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nginx_workers(master_pid) - before:
            return
        time.sleep(0.05)
    raise StartError(f"nginx (pid {master_pid}) did not start new workers within {timeout:.0f} s of the reload; "
                     f"see {prefix / 'error.log'}")


# Redis Cluster and Sentinel on loopback, for the scale-out stack and its tests.

def start_redis_cluster_node(run_dir: Path, port: int, bus_port: int, *, node_timeout_ms: int = 2000) -> Process:
    """One master of a Redis Cluster, append-only, its data and ``nodes.conf`` in ``run_dir/redis-<port>``,
    so a restart with the same ``run_dir`` and port rejoins the cluster with its data.

    ``cluster-require-full-coverage no``: while one master is away, the others keep serving
    their experiments instead of refusing every command."""
    return start_redis(run_dir, port, appendonly=True, name=f"redis-{port}", extra=[
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(bus_port),
        "--cluster-node-timeout", str(node_timeout_ms), "--cluster-require-full-coverage", "no"])


def redis_cli(port: int, *args: str, timeout: float = 10.0) -> str:
    result = subprocess.run([require_binary("redis-cli"), "-h", "127.0.0.1", "-p", str(port), *args],
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise StartError(f"redis-cli -p {port} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def cluster_info(port: int) -> dict[str, str]:
    lines = redis_cli(port, "cluster", "info").splitlines()
    return dict(line.strip().split(":", 1) for line in lines if ":" in line)


def create_redis_cluster(ports: list[int], timeout: float = 20.0) -> None:
    """Join the nodes into one cluster of masters (no replicas), unless they already are one
    (a stack restarted on the same run directory), and wait until every node says it is ok."""
    if any(int(cluster_info(port).get("cluster_known_nodes", 1)) < len(ports) for port in ports):
        redis_cli(ports[0], "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                  "--cluster-replicas", "0", "--cluster-yes", timeout=timeout)
    wait_cluster_ok(ports, timeout)


def wait_cluster_ok(ports: list[int], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = {port: cluster_info(port).get("cluster_state") for port in ports}
        if all(state == "ok" for state in states.values()):
            return
        if time.monotonic() > deadline:
            raise StartError(f"Redis Cluster not ok within {timeout:.0f} s: cluster_state by port {states}")
        time.sleep(0.05)
