"""NGINX at scale: the configuration rendered for many experiments, and what loading it costs.

    python -m bench.nginx_scale [--sizes 1,1000,10000]

For each registry size: the rendered file's size, the time to render it, ``nginx -t``
(parse, hash maps, regex compilation: what every reload pays before workers change) and
a reload (SIGHUP until workers of the new configuration answer). The experiments are
like bench/experiments.py's: three variants each, their own path prefix, variants on a
few shared upstreams (one variant server serves many experiments; a distinct address per
variant would add an upstream block each).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from nginx.render import Options, pass_key_path, render, write_config, write_pass_key
from scripts.processes import Process, free_port, require_binary, start_nginx

UPSTREAMS = 3  # variant servers shared by every experiment


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


def measure(sizes: list[int]) -> list[ConfigFigures]:
    run_dir = Path(tempfile.mkdtemp(prefix="croupier-nginx-scale-"))
    (run_dir / "tmp").mkdir()
    upstreams = [f"127.0.0.1:{9101 + i}" for i in range(UPSTREAMS)]
    port = free_port()
    options = Options(listen=f"127.0.0.1:{port}", prefix=str(run_dir), user="root" if os.geteuid() == 0 else "",
                      fallback_log="off")
    write_pass_key(Path(pass_key_path(options)), "bench-pass-key-" + "y" * 24)
    conf = run_dir / "nginx.conf"
    nginx = None
    figures = []
    try:
        for size in sizes:
            figure = write_rendered([experiment(i, upstreams) for i in range(size)], options, conf)
            if nginx is None:
                nginx = start_nginx(conf, run_dir, port, name="nginx-scale")
            figure.reload_s = reload_seconds(nginx, port)
            figures.append(figure)
        return figures
    finally:
        if nginx:
            nginx.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def report(figures: list[ConfigFigures]) -> None:
    print(f"{'experiments':>11} {'config KB':>10} {'render s':>9} {'nginx -t s':>11} {'reload s':>9}")
    for f in figures:
        reload = "n/a" if f.reload_s is None else f"{f.reload_s:.3f}"
        print(f"{f.experiments:>11} {f.bytes / 1024:>10.0f} {f.render_s:>9.3f} {f.check_s:>11.3f} {reload:>9}")


def parse_sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes: comma-separated counts of experiments, each at least 1")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=[1, 1000, 10000])
    args = parser.parse_args(argv)
    if not shutil.which("pgrep"):
        raise SystemExit("bench.nginx_scale: pgrep is missing (procps)")
    print("NGINX configuration by registry size")
    report(measure(args.sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
