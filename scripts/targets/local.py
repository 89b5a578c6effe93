"""The local target: the variant's page server as a process of the local stack.

Detached from the command that starts it (its own session, a pid file under the
stack's run directory), so it keeps serving after the command returns and a later
``remove`` can stop it. It serves a params file, or a factorial experiment's declaration
file in place (so ``add-level --declaration`` on that file reaches it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from croupier.scripts.processes import free_port, pid_file_process, port_open, start_detached, stop_pid_file, variant_argv
from croupier.scripts.progress import Progress
from croupier.scripts.targets import Deployment, DeployError, VariantSpec

HOST = "127.0.0.1"
Command = Callable[[Path, int], list[str]]


def experiment_argv(declaration: Path, port: int) -> list[str]:
    """The page server's command line for every arm of a factorial experiment: ``variant_argv``'s,
    reading the declaration (``--experiment``) instead of a params file."""
    argv = variant_argv(declaration, port)
    argv[argv.index("--params")] = "--experiment"
    return argv


def serves(port: int, variant_id: str) -> bool:
    """Healthy and really this variant: a port can be answered by some other server."""
    try:
        response = httpx.get(f"http://{HOST}:{port}/healthz", timeout=0.5)
        return response.status_code == 200 and response.json().get("variant") == variant_id
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


class LocalTarget:
    name = "local"

    def __init__(self, run_dir: Path, *, port: int | None = None, command: Command | None = None) -> None:
        self.run_dir = run_dir
        self.port = port
        self.command = command or variant_argv

    def pid_file(self, experiment: str, variant_id: str) -> Path:
        return self.run_dir / "variants" / experiment / f"{variant_id}.pid"

    def log_file(self, experiment: str, variant_id: str) -> Path:
        return self.run_dir / f"variant-{experiment}-{variant_id}.log"

    def deploy(self, spec: VariantSpec, progress: Progress, health_timeout: float) -> Deployment:
        served = spec.declaration_file or spec.params_file
        if served is None or spec.image:
            raise DeployError("the local target serves a params or declaration file: use --from-template, "
                              "not --image-ref")
        pid_file = self.pid_file(spec.experiment, spec.variant_id)
        running = pid_file_process(pid_file)
        if running:
            # a factorial experiment's page server is not one of its variants: remove cannot stop it
            how = f"kill {running}" if spec.declaration_file is not None else f"remove {spec.variant_id}"
            raise DeployError(f"a variant server for {spec.variant_id!r} of experiment {spec.experiment!r} still "
                              f"runs (pid {running}, {pid_file}); stop it first: {how}")
        pid_file.unlink(missing_ok=True)  # left by a server that is gone
        port = self.port or free_port(HOST)
        if port_open(HOST, port):
            raise DeployError(f"port {port} on {HOST} is already in use; pick another with --port")
        log = self.log_file(spec.experiment, spec.variant_id)
        progress.step(f"starting variant server {spec.variant_id!r} on {HOST}:{port} (log {log})")
        # absolute: the server runs from the project's folder, not the caller's
        argv = (experiment_argv(served.resolve(), port) if spec.declaration_file is not None
                else self.command(served, port))
        process = start_detached(f"variant-{spec.variant_id}", argv, log, pid_file)

        def healthy() -> bool:
            if not process.alive():
                raise DeployError(f"the variant server exited with {process.popen.returncode} before it "
                                  f"answered /healthz:\n{process.log_tail(15)}")
            return serves(port, spec.variant_id)

        try:
            if not progress.wait(f"waiting for http://{HOST}:{port}/healthz", healthy, health_timeout):
                raise DeployError(f"the variant server did not answer /healthz within {health_timeout:g} s "
                                  f"(log {log}):\n{process.log_tail(15)}")
        except BaseException:
            process.stop(timeout=5)
            pid_file.unlink(missing_ok=True)
            raise
        return Deployment(upstream=f"{HOST}:{port}", where=f"pid {process.pid} on {HOST}:{port}")

    def undeploy(self, experiment: str, variant_id: str, progress: Progress) -> list[str]:
        pid_file = self.pid_file(experiment, variant_id)
        if not pid_file.exists():
            return []
        progress.step(f"stopping variant server {variant_id!r}")
        pid = stop_pid_file(pid_file)
        return [f"process {pid}"] if pid else []
