"""The whole stack on one machine, no Docker: redis-server, router(s), the demo's
three variants and NGINX, all on loopback.

    python -m croupier.scripts.stack [--simulate] [--http-port 8080] ...

With ``--routers N`` it runs N routers behind NGINX; with ``--redis-cluster`` a
three-master Redis Cluster (ports ``--redis-port`` and the next two) instead of one
redis-server.

Creates the demo experiment (id ``demo``, served at ``/``, variants ``a`` (control),
``b``, ``c``), renders NGINX's configuration from the registry, prints the URLs and
a line starting ``ready: http://``, and stops every process it started on Ctrl-C or
SIGTERM. Until then it restarts whatever dies (Redis, a router, a variant, NGINX) with
backoff, and says so on stderr; NGINX serves the control variant while the router is
away. A port already taken stops it at start-up with the option that moves it.
With ``--simulate`` it also sends simulated visitors through NGINX and shows the
traffic shares converging.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from croupier.nginx.demo import DEMO_DIR, DEMO_VARIANTS, demo_experiment
from croupier.nginx.render import Options, pass_key_path, render, write_config, write_pass_key
from croupier.scripts.processes import (ROOT, MissingBinary, Process, StartError, Supervisor, create_redis_cluster,
                               reload_nginx, require_free_ports, start_nginx, start_redis, start_redis_cluster_node,
                               start_router, start_variant, stop_all, stop_pid_file)

CLUSTER_NODES = 3  # the fewest masters a Redis Cluster is created with


@dataclass
class StackConfig:
    run_dir: Path = ROOT / "run"
    http_port: int = 8080
    router_port: int = 8000
    decide_port: int = 8100  # the first router's decide listener (CROUPIER_DECIDE_PORT); the others follow
    routers: int = 1
    redis_port: int = 6390
    redis_cluster: bool = False  # three masters on redis_port and the next two ports
    redis_cluster_bus_port: int = 0  # first cluster bus port; 0: Redis's default, redis_port + 10000
    variant_base_port: int = 9101
    admin_token: str = ""
    api_key: str = ""  # the channels and batch API's key of the default tenant; default: a new random one
    secret: str = ""
    pass_key: str = ""  # shared by the routers and NGINX (routing passes); default: a new random one
    appendonly: bool = True
    router_env: dict[str, str] = field(default_factory=dict)
    decide_timeout: str = "250ms"
    archive: bool = False  # run croupier-archive into run_dir/archive, the routers with CROUPIER_ARCHIVE=on

    @property
    def router_ports(self) -> list[int]:
        return [self.router_port + i for i in range(self.routers)]

    @property
    def decide_ports(self) -> list[int]:
        return [self.decide_port + i for i in range(self.routers)]

    @property
    def redis_ports(self) -> list[int]:
        return [self.redis_port + i for i in range(CLUSTER_NODES if self.redis_cluster else 1)]

    @property
    def redis_bus_ports(self) -> list[int]:
        if not self.redis_cluster:
            return []
        first = self.redis_cluster_bus_port or self.redis_port + 10000
        return [first + i for i in range(CLUSTER_NODES)]

    def ports(self, *, variants: bool = True) -> list[tuple[int, str, str]]:
        """Every port the stack listens on: (port, what listens there, the option that moves it)."""
        ports = [(self.http_port, "NGINX", "--http-port")]
        ports += [(p, f"router-{i}", "--router-port") for i, p in enumerate(self.router_ports)]
        ports += [(p, f"router-{i}'s decide listener", "--decide-port") for i, p in enumerate(self.decide_ports)]
        redis = "Redis Cluster node" if self.redis_cluster else "Redis"
        ports += [(p, redis, "--redis-port") for p in self.redis_ports]
        ports += [(p, "Redis Cluster bus (Redis's port + 10000)", "--redis-port") for p in self.redis_bus_ports]
        if variants:
            ports += [(self.variant_base_port + i, f"variant {vid}", "--variant-base-port")
                      for i, vid in enumerate(DEMO_VARIANTS)]
        return ports

    @property
    def redis_url(self) -> str:
        if self.redis_cluster:
            return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.redis_ports)
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.router_port}"


class LocalStack:
    """Starts the processes in dependency order and keeps them for ``stop``."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.config.admin_token = config.admin_token or secrets.token_urlsafe(18)
        self.config.api_key = config.api_key or secrets.token_urlsafe(24)
        self.config.secret = config.secret or secrets.token_urlsafe(32)
        self.config.pass_key = config.pass_key or secrets.token_urlsafe(32)
        self.processes: list[Process] = []
        self.redis: Process | None = None  # with a cluster: its first node
        self.redis_nodes: list[Process] = []
        self.routers: list[Process] = []
        self.variants: dict[str, Process] = {}
        self.nginx: Process | None = None
        self.supervisor: Supervisor | None = None

    @property
    def nginx_conf(self) -> Path:
        return self.config.run_dir / "nginx" / "nginx.conf"

    def router_env(self) -> dict[str, str]:
        c = self.config
        return {"CROUPIER_REDIS_URL": c.redis_url, "CROUPIER_SECRET": c.secret,
                "CROUPIER_ADMIN_TOKEN": c.admin_token, "CROUPIER_PASS_KEY": c.pass_key,
                "CROUPIER_API_KEYS": f"default:{c.api_key}", **({"CROUPIER_ARCHIVE": "on"} if c.archive else {}),
                **c.router_env}

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.config.admin_url}/api/v1", timeout=5,
                            headers={"Authorization": f"Bearer {self.config.admin_token}"})

    def start(self, *, variants: bool = True, demo: bool = True) -> LocalStack:
        c = self.config
        require_free_ports(c.ports(variants=variants))
        c.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            if c.redis_cluster:
                for i in range(CLUSTER_NODES):
                    self.start_redis_node(i)
                create_redis_cluster(c.redis_ports)
            else:
                self.redis = self._keep(start_redis(c.run_dir, c.redis_port, appendonly=c.appendonly))
            for i, port in enumerate(c.router_ports):
                self.start_router(i, port)
            if c.archive:
                self.start_archiver()
            if variants:
                for i, vid in enumerate(DEMO_VARIANTS):
                    self.variants[vid] = self._keep(start_variant(
                        c.run_dir, DEMO_DIR / f"{vid}.json", c.variant_base_port + i, name=f"variant-{vid}"))
            if demo:
                self.ensure_demo()
            self.write_nginx_conf()
            self.nginx = self._keep(start_nginx(self.nginx_conf, self.nginx_conf.parent, c.http_port))
            self.write_state()
        except BaseException:
            self.stop()
            raise
        return self

    def start_router(self, index: int, port: int) -> Process:
        env = {**self.router_env(), "CROUPIER_DECIDE_PORT": str(self.config.decide_ports[index])}
        return self._keep(start_router(self.config.run_dir, port, env, name=f"router-{index}"), self.routers, index)

    def start_archiver(self) -> Process:
        """croupier-archive into run/archive; small files often, as suits a demo (docs/archive.md)."""
        c = self.config
        argv = [sys.executable, "-m", "croupier.scripts.archive", "run", "--dir", str(c.run_dir / "archive"),
                "--redis-url", c.redis_url, "--interval", "2", "--flush-seconds", "10"]
        return self._keep(Process("archiver", argv, c.run_dir / "archiver.log", env=self.router_env()).start())

    def start_redis_node(self, index: int) -> Process:
        """Start (or restart, with its data and cluster configuration) the cluster's ``index``-th master."""
        c = self.config
        node = self._keep(start_redis_cluster_node(c.run_dir, c.redis_ports[index], c.redis_bus_ports[index]),
                          self.redis_nodes, index)
        self.redis = self.redis_nodes[0]
        return node

    def supervise(self) -> Supervisor:
        """Restart whatever of this stack dies (Redis, routers, variants, NGINX) until ``stop``."""
        self.supervisor = Supervisor(self.processes, on_back=lambda process: self.write_state()).start()
        return self.supervisor

    def _keep(self, process: Process, role: list[Process] | None = None, index: int = 0) -> Process:
        """Record a started process, as ``role[index]`` when given. One started again by hand
        replaces the old entry everywhere, so a supervisor does not restart the old one too."""
        old = role[index] if role is not None and index < len(role) else None
        if old is not None:
            role[index] = process
            self.processes[:] = [process if p is old else p for p in self.processes]
            return process
        if role is not None:
            role.append(process)
        self.processes.append(process)
        return process

    def ensure_demo(self) -> None:
        """Create the demo experiment, or point its variants at this stack's ports."""
        base = self.config.variant_base_port
        wanted = demo_experiment(lambda _exp, vid: f"127.0.0.1:{base + DEMO_VARIANTS.index(vid)}")
        with self.admin() as admin:
            response = admin.post("/experiments", json=wanted)
            if response.status_code == 409:
                current = admin.get("/experiments/demo").json()
                for variant in wanted["variants"]:
                    known = {v["id"]: v for v in current["variants"]}
                    if variant["id"] in known:
                        admin.patch(f"/experiments/demo/variants/{variant['id']}",
                                    json={"upstream": variant["upstream"]}).raise_for_status()
                    else:
                        admin.post("/experiments/demo/variants", json=variant).raise_for_status()
            else:
                response.raise_for_status()

    def nginx_options(self) -> Options:
        """How this stack renders NGINX's configuration; saved in stack.json so that other
        tools (the variant script) re-render it exactly the same way."""
        c = self.config
        return Options(target="local", listen=f"127.0.0.1:{c.http_port}",
                       routers=[f"127.0.0.1:{p}" for p in c.router_ports],
                       decide_routers=[f"127.0.0.1:{p}" for p in c.decide_ports],
                       prefix=str(self.nginx_conf.parent), decide_timeout=c.decide_timeout,
                       user="root" if os.geteuid() == 0 else "")

    def write_nginx_conf(self) -> None:
        with self.admin() as admin:
            experiments = admin.get("/experiments").raise_for_status().json()["experiments"]
        options = self.nginx_options()
        write_pass_key(Path(pass_key_path(options)), self.config.pass_key)
        write_config(render(experiments, options), self.nginx_conf)

    def reload_nginx(self) -> None:
        """Re-render from the registry (new variants join the allowlist) and reload."""
        self.write_nginx_conf()
        if self.nginx:
            reload_nginx(self.nginx, self.nginx_conf, self.nginx_conf.parent)

    @property
    def state_file(self) -> Path:
        return self.config.run_dir / "stack.json"

    def write_state(self) -> None:
        """What other tools (the variant script) need to find this running stack. Holds the
        admin token, so it is readable by this user only."""
        c = self.config
        state = {"base_url": c.base_url, "admin_url": c.admin_url, "admin_token": c.admin_token,
                 "api_key": c.api_key,
                 "run_dir": str(c.run_dir), "http_port": c.http_port,
                 "routers": [f"127.0.0.1:{p}" for p in c.router_ports],
                 "nginx_conf": str(self.nginx_conf), "nginx_pid": self.nginx.pid if self.nginx else None,
                 "pids": {p.name: p.pid for p in self.processes},
                 "redis_port": c.redis_port, "redis_url": c.redis_url, "decide_timeout": c.decide_timeout,
                 "nginx_options": asdict(self.nginx_options())}
        # rewritten while the stack runs (a restarted NGINX has a new pid): replaced whole, never read half-written
        partial = self.state_file.with_suffix(".json.partial")
        partial.unlink(missing_ok=True)
        partial.touch(mode=0o600)
        partial.write_text(json.dumps(state, indent=2))
        partial.replace(self.state_file)

    def stop(self) -> None:
        if self.supervisor:  # first, so that nothing it restarts outlives the stop below
            self.supervisor.stop()
            self.supervisor = None
        # variant servers the variant script added to this stack run detached, with pid files
        for pid_file in sorted((self.config.run_dir / "variants").glob("*/*.pid")):
            stop_pid_file(pid_file)
        stop_all(self.processes)
        self.processes.clear()
        self.state_file.unlink(missing_ok=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="Run Croupier's whole stack locally (no Docker).")
    parser.add_argument("--http-port", type=int, default=int(env.get("CROUPIER_HTTP_PORT", 8080)),
                        help="NGINX's port (CROUPIER_HTTP_PORT, default 8080)")
    parser.add_argument("--router-port", type=int, default=int(env.get("CROUPIER_ROUTER_PORT", 8000)),
                        help="first router's port (default 8000)")
    parser.add_argument("--decide-port", type=int, default=8100,
                        help="first router's decide listener, where NGINX's decide subrequests go (default 8100)")
    parser.add_argument("--routers", type=int, default=int(env.get("CROUPIER_ROUTERS", 1)),
                        help="router processes behind NGINX (default 1)")
    parser.add_argument("--redis-port", type=int, default=int(env.get("CROUPIER_REDIS_PORT", 6390)),
                        help="Redis's port; with --redis-cluster the first of three (default 6390)")
    parser.add_argument("--redis-cluster", action="store_true",
                        help="run a three-master Redis Cluster on loopback instead of one redis-server")
    parser.add_argument("--variant-base-port", type=int, default=int(env.get("CROUPIER_VARIANT_PORT", 9101)))
    parser.add_argument("--run-dir", type=Path, default=ROOT / "run", help="logs, Redis data, NGINX config")
    parser.add_argument("--simulate", action="store_true", help="send simulated visitors through NGINX")
    parser.add_argument("--archive", action="store_true",
                        help="also run croupier-archive, writing the event streams to run/archive (docs/archive.md)")
    parser.add_argument("--visitors", type=int, default=20000, help="simulated visitors (with --simulate)")
    parser.add_argument("--rates", default="a=0.04,b=0.09,c=0.05",
                        help="true conversion rates of the simulated visitors")
    args = parser.parse_args(argv)
    if args.routers < 1:
        parser.error("--routers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    router_env = {}
    if args.simulate:
        # every simulated visitor comes from 127.0.0.1: the per-address beacon limit
        # would treat them as one flooding client
        router_env["CROUPIER_BEACON_RATE"] = "0"
    config = StackConfig(router_env=router_env, run_dir=args.run_dir, http_port=args.http_port,
                         router_port=args.router_port, decide_port=args.decide_port,
                         routers=args.routers, redis_port=args.redis_port, redis_cluster=args.redis_cluster,
                         variant_base_port=args.variant_base_port, archive=args.archive,
                         admin_token=os.environ.get("CROUPIER_ADMIN_TOKEN", ""),
                         api_key=os.environ.get("CROUPIER_API_KEY", ""),
                         secret=os.environ.get("CROUPIER_SECRET", ""),
                         pass_key=os.environ.get("CROUPIER_PASS_KEY", ""))
    generated = not config.admin_token
    stack = LocalStack(config)
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        redis_what = f"a {CLUSTER_NODES}-master redis cluster" if config.redis_cluster else "redis"
        print(f"starting {redis_what}, {config.routers} router(s), {len(DEMO_VARIANTS)} variants and nginx "
              f"(logs in {config.run_dir}) ...", flush=True)
        stack.start()
        stack.supervise()
    except (MissingBinary, StartError, httpx.HTTPError) as exc:
        print(f"croupier: could not start the stack: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"  landing page   {config.base_url}/")
        print(f"  admin API      {config.admin_url}/api/v1/experiments  (Authorization: Bearer ...)")
        print(f"  stats          {config.admin_url}/api/v1/experiments/demo/stats")
        print(f"  dashboard      {config.admin_url}/dashboard/  (sign in with the admin token)")
        print(f"  metrics        {config.admin_url}/metrics")
        print(f"  admin token    {config.admin_token}" + ("  (generated; set CROUPIER_ADMIN_TOKEN to choose)"
                                                         if generated else ""))
        print(f"  API key        {config.api_key}  (channels and batch API; croupier-campaign reads it "
              f"from {config.run_dir / 'stack.json'})")
        print(f"ready: {config.base_url}/", flush=True)
        if args.simulate:
            from croupier.scripts.simulate import parse_rates, run_simulation
            run_simulation(config.base_url, parse_rates(args.rates), visitors=args.visitors,
                           stats_url=f"{config.admin_url}/api/v1/experiments/demo/stats",
                           admin_token=config.admin_token, stop=stopping, live=True)
            print("simulation finished; the stack keeps running. Ctrl-C stops it.", flush=True)
        while not stopping.wait(0.5):
            pass  # the supervisor restarts what dies; only a signal ends the stack
        return 0
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
