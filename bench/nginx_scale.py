"""NGINX at scale: the configuration rendered for many experiments, and what loading it costs.

    python -m bench.nginx_scale [--sizes 1,1000,10000]

For each registry size: the rendered file's size, the time to render it, ``nginx -t``
(parse, hash maps, regex compilation: what every reload pays before workers change), a
reload (SIGHUP until workers of the new configuration answer), and NGINX's own cost per
page view: requests per second (wrk, ``--duration`` s, cores pinned as in bench/load.py)
of new visitors at "/" decided by bench/null_scorer.py's listener (a fixed answer), so
every request looks its experiment up in the route maps and the router's cost is out of
the figure.
The experiments are like bench/experiments.py's: three variants each, their own path
prefix, variants on one shared upstream (one variant server serves many experiments; a
distinct address per variant would add an upstream block each).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.load import LOAD_CORE, SERVER_CORE, pin, render_baselines, run_wrk, wrk_script
from croupier.nginx.render import Options, pass_key_path, render, write_config, write_pass_key
from croupier.scripts.processes import Process, free_port, port_open, require_binary, start_nginx, stop_all


def experiment(index: int, upstreams: list[str]) -> dict:
    """The ``index``-th synthetic experiment: own path prefix, three variants, control ``a``."""
    exp_id = f"x{index:05d}"
    return {"id": exp_id, "path_prefix": f"/x/{exp_id}/", "control": "a",
            "variants": [{"id": v, "upstream": upstreams[j % len(upstreams)]} for j, v in enumerate("abc")]}


@dataclass
class ConfigFigures:
    experiments: int
    bytes: int
    render_s: float
    check_s: float
    reload_s: float | None = None
    null_rps: float | None = None  # pages per second with a scorer that decides nothing


def write_rendered(experiments: list[dict], options: Options, conf: Path) -> ConfigFigures:
    """Render to ``conf`` and check it with ``nginx -t``, timing both."""
    started = time.perf_counter()
    text = render(experiments, options)
    rendered = time.perf_counter()
    write_config(text, conf)
    checked = time.perf_counter()
    result = subprocess.run([require_binary("nginx"), "-t", "-q", "-p", str(conf.parent), "-c", str(conf),
                             "-e", str(conf.parent / "error.log")], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"nginx -t rejected the configuration for {len(experiments)} experiments:\n"
                           f"{result.stderr}")
    return ConfigFigures(len(experiments), len(text.encode()), rendered - started,
                         time.perf_counter() - checked)


def workers(master: int) -> set[str]:
    return set(subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split())


def reload_seconds(nginx: Process, port: int, timeout: float = 60.0) -> float:
    """SIGHUP, then wait until a worker the old configuration did not start answers: the old
    workers are told to stop only once the master has loaded the new configuration and
    started new ones. Shutting-down old workers may linger (open connections); they count
    no more."""
    old = workers(nginx.pid)
    started = time.perf_counter()
    nginx.signal(signal.SIGHUP)
    deadline = started + timeout
    while time.perf_counter() < deadline:
        current = workers(nginx.pid)
        if current - old and all(_shutting_down(pid) for pid in current & old):
            try:
                httpx.get(f"http://127.0.0.1:{port}/_croupier/none", timeout=1)
                return time.perf_counter() - started
            except httpx.HTTPError:
                pass
        time.sleep(0.002)
    raise RuntimeError(f"NGINX did not start new workers within {timeout:.0f} s of a reload")


def _shutting_down(pid: str) -> bool:
    """An old worker that closed its listening sockets (its title says so)."""
    try:
        return b"shutting down" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def measure(sizes: list[int], duration: float) -> list[ConfigFigures]:
    run_dir = Path(tempfile.mkdtemp(prefix="croupier-nginx-scale-"))
    (run_dir / "tmp").mkdir()
    port, variant_port, scorer_port = free_port(), free_port(), free_port()
    static_root = run_dir / "static"
    static_root.mkdir()
    (static_root / "page.html").write_text("<!doctype html><title>landing</title><h1>Hello</h1>\n")
    upstream = f"127.0.0.1:{variant_port}"
    options = Options(listen=f"127.0.0.1:{port}", routers=[f"127.0.0.1:{scorer_port}"], prefix=str(run_dir),
                      user="root" if os.geteuid() == 0 else "", fallback_log="off")
    write_pass_key(Path(pass_key_path(options)), "bench-pass-key-" + "y" * 24)
    conf, script = run_dir / "nginx.conf", run_dir / "fresh.lua"
    wrk_script(script, [])
    page_server = render_baselines(run_dir / "variant", {}, upstream, "", "", static_root, variant_only=True)
    processes = [start_nginx(page_server, page_server.parent, variant_port, name="nginx-variant")]
    scorer = Process("null-listener", [sys.executable, "-m", "bench.null_scorer", "--listener", "--port",
                                       str(scorer_port), "--upstream", upstream], run_dir / "null-listener.log")
    processes.append(scorer.start().wait_until(lambda: port_open("127.0.0.1", scorer_port)))
    figures = []
    try:
        for size in sizes:
            # the experiment visited owns "/", the broadest prefix: found after every other
            experiments = [{**experiment(0, [upstream]), "path_prefix": "/"},
                           *(experiment(i, [upstream]) for i in range(1, size))]
            figure = write_rendered(experiments, options, conf)
            if len(processes) == 2:
                processes.append(start_nginx(conf, run_dir, port, name="nginx-scale"))
            figure.reload_s = reload_seconds(processes[2], port)
            pin(processes, SERVER_CORE)
            if duration > 0:
                figure.null_rps = run_wrk(f"http://127.0.0.1:{port}/", script, connections=32,
                                               duration=duration)["rps"]
            figures.append(figure)
        return figures
    finally:
        stop_all(processes)
        shutil.rmtree(run_dir, ignore_errors=True)


def report(figures: list[ConfigFigures]) -> None:
    print(f"{'experiments':>11} {'config KB':>10} {'render s':>9} {'nginx -t s':>11} {'reload s':>9} "
          f"{'null-decide req/s':>17}")
    for f in figures:
        reload = "n/a" if f.reload_s is None else f"{f.reload_s:.3f}"
        rps = "n/a" if f.null_rps is None else f"{f.null_rps:.0f}"
        print(f"{f.experiments:>11} {f.bytes / 1024:>10.0f} {f.render_s:>9.3f} {f.check_s:>11.3f} {reload:>9} "
              f"{rps:>17}")


def parse_sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes: comma-separated counts of experiments, each at least 1")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=[1, 1000, 10000])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of load per size; 0: none")
    args = parser.parse_args(argv)
    for tool in ("pgrep", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"bench.nginx_scale: {tool} is missing (procps, util-linux)")
    print(f"NGINX configuration by registry size (wrk on core {LOAD_CORE}, NGINX on core {SERVER_CORE})")
    report(measure(args.sizes, args.duration))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
