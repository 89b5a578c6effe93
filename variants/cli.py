"""``python -m croupier.variants``: serve one variant, or every arm of a factorial experiment,
with uvicorn.

``ServerConfig`` is the seam between the command line, the environment and the
server; tests build it with ``parse_config(argv, environ)`` instead of touching
``os.environ``. Flags win over ``VARIANT_*`` variables, which containers use.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# Shorter than the grace period a container runtime gives before SIGKILL (10 s by default).
GRACEFUL_SHUTDOWN_SECONDS = 5


class ConfigError(ValueError):
    """A flag or ``VARIANT_*`` variable the server cannot start with; the message names it."""


@dataclass(frozen=True)
class ServerConfig:
    params_path: str  # one variant's params; "" with experiment_path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    log_level: str = "info"
    experiment_path: str = ""  # a factorial experiment's declaration: the server renders any of its arms


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m croupier.variants",
                                     description="Serve one landing-page variant, or every arm of a factorial experiment.")
    parser.add_argument("--params", help="variant params JSON file (env VARIANT_PARAMS)")
    parser.add_argument("--experiment", help="a factorial experiment's JSON, as posted to the admin API: serve any "
                                             "of its arms, reloaded when the file changes (env VARIANT_EXPERIMENT)")
    parser.add_argument("--host", help=f"address to listen on (env VARIANT_HOST, default {DEFAULT_HOST})")
    parser.add_argument("--port", help=f"port to listen on (env VARIANT_PORT, default {DEFAULT_PORT})")
    parser.add_argument("--log-level", help="uvicorn log level (env VARIANT_LOG_LEVEL, default info)")
    return parser


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> ServerConfig:
    args = _parser().parse_args(argv)
    params_path = args.params or environ.get("VARIANT_PARAMS", "")
    experiment_path = args.experiment or environ.get("VARIANT_EXPERIMENT", "")
    if args.params and args.experiment:
        raise ConfigError("--params and --experiment: give one (a variant's params, or a factorial experiment)")
    if args.params or args.experiment:  # a flag wins over either variable
        params_path, experiment_path = args.params or "", args.experiment or ""
    if params_path and experiment_path:
        raise ConfigError("VARIANT_PARAMS and VARIANT_EXPERIMENT: set one")
    if not params_path and not experiment_path:
        raise ConfigError("--params (or VARIANT_PARAMS) is required: the variant's params JSON file "
                          "(or --experiment, a factorial experiment's JSON)")
    port_text, port_source = ((args.port, "--port") if args.port is not None
                              else (environ.get("VARIANT_PORT", str(DEFAULT_PORT)), "VARIANT_PORT"))
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"{port_source}: must be a port number 0-65535, got {port_text!r}")
    log_level = (args.log_level or environ.get("VARIANT_LOG_LEVEL", "info")).lower()
    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise ConfigError(f"VARIANT_LOG_LEVEL: unknown level {log_level!r}")
    return ServerConfig(
        params_path=params_path,
        host=args.host or environ.get("VARIANT_HOST", DEFAULT_HOST),
        port=int(port_text),
        log_level=log_level,
        experiment_path=experiment_path,
    )


def main(argv: Sequence[str] | None = None) -> None:
    # Imported here so `--help` and config errors answer without loading the server.
    import uvicorn

    from croupier.variants.app import create_app
    from croupier.variants.factorial import FactorialPages
    from croupier.variants.params import InvalidParams, load_params

    try:
        config = parse_config(sys.argv[1:] if argv is None else argv, os.environ)
        app = create_app(FactorialPages(config.experiment_path) if config.experiment_path
                         else load_params(config.params_path))
    except (ConfigError, InvalidParams) as exc:
        sys.exit(f"variants: {exc}")
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level,
                server_header=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
