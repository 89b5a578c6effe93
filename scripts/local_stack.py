"""The running local stack as other commands see it: ``run/stack.json`` and its NGINX.

``scripts/stack.py`` writes the state file while the stack runs; this reads it back
and re-renders NGINX's configuration with the options the stack itself used, so a
variant added from another terminal joins NGINX's allowlist.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from croupier.nginx.render import Options, RenderError, render, write_config
from croupier.scripts.processes import ROOT, StartError, check_nginx_config, reload_nginx_pid

DEFAULT_RUN_DIR = ROOT / "run"


class StackNotFound(RuntimeError):
    pass


@dataclass(frozen=True)
class RunningStack:
    run_dir: Path
    admin_url: str
    admin_token: str
    http_port: int
    routers: list[str]
    nginx_conf: Path
    nginx_pid: int | None
    decide_timeout: str
    saved_options: dict | None = None  # croupier.nginx.render Options as the stack rendered them, when stack.json has them
    api_key: str = ""  # the channels and batch API's key (the default tenant's)

    def nginx_options(self) -> Options:
        if self.saved_options:
            known = Options.__dataclass_fields__
            return Options(**{k: v for k, v in self.saved_options.items() if k in known})
        # An older stack.json without them: what LocalStack.write_nginx_conf passes.
        options = Options(target="local", listen=f"127.0.0.1:{self.http_port}", routers=list(self.routers),
                          prefix=str(self.nginx_conf.parent), decide_timeout=self.decide_timeout)
        if "user" in Options.__dataclass_fields__ and os.geteuid() == 0:
            options.user = "root"  # the stack runs NGINX's workers as root when it runs as root
        return options

    def reload_nginx(self, experiments: list[dict]) -> None:
        """Render from ``experiments`` (the registry), check with nginx -t, reload, wait for new workers."""
        if not self.nginx_pid:
            raise StartError(f"{self.run_dir / 'stack.json'} names no NGINX process to reload")
        try:
            text = render(experiments, self.nginx_options())
        except RenderError as exc:
            raise StartError(f"cannot render NGINX's configuration: {exc}") from None
        # Written beside the live file and checked before it replaces it: a rejected
        # configuration must not be what the next reload (or restart) picks up.
        candidate = self.nginx_conf.with_name("nginx.candidate.conf")
        write_config(text, candidate)
        try:
            check_nginx_config(candidate, self.nginx_conf.parent)
        finally:
            candidate.unlink(missing_ok=True)
        write_config(text, self.nginx_conf)
        reload_nginx_pid(self.nginx_pid, self.nginx_conf, self.nginx_conf.parent)


def load_stack(run_dir: Path | None = None) -> RunningStack:
    """The stack whose state file is in ``run_dir`` (default ``run/``); ``StackNotFound`` when none runs."""
    run_dir = Path(run_dir or DEFAULT_RUN_DIR)
    path = run_dir / "stack.json"
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise StackNotFound(f"no local stack found: {path} does not exist (start one with "
                            f"`python -m croupier.scripts.stack`, or pass --stack-dir)") from None
    except (OSError, ValueError) as exc:
        raise StackNotFound(f"{path}: cannot read the stack's state ({exc})") from None
    try:
        return RunningStack(
            run_dir=Path(state.get("run_dir") or run_dir), admin_url=state["admin_url"],
            admin_token=state["admin_token"], http_port=int(state["http_port"]), routers=list(state["routers"]),
            nginx_conf=Path(state["nginx_conf"]), nginx_pid=state.get("nginx_pid"),
            decide_timeout=state.get("decide_timeout", "250ms"), saved_options=state.get("nginx_options"),
            api_key=state.get("api_key", ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise StackNotFound(f"{path}: incomplete stack state (missing or bad {exc}); restart the stack") from None


def find_stack(run_dir: Path | None) -> RunningStack | None:
    try:
        return load_stack(run_dir)
    except StackNotFound:
        return None
