"""A variant that never becomes healthy, and bad input: nothing is registered, nothing left behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from croupier.router.rules import ID
from croupier.scripts.processes import ROOT, variant_argv
from tests.conftest import variant_stats

MARKER = "croupier-test-never-answers"


def processes_with(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            pass
    return found


def assert_nothing_left(cli, variant_id: str = "d", conf_before: str | None = None) -> None:
    assert variant_id not in variant_stats(cli.stack)
    assert not cli.params_file(variant_id).exists()
    assert not list(cli.pid_dir.glob(f"*/{variant_id}.pid"))
    if conf_before is not None:
        assert cli.stack.nginx_conf.read_text() == conf_before


def add(cli, *extra: str):
    return cli("add", "d", "--from-template", "--headline", "Never seen", *extra)


def test_unhealthy_variants_are_rolled_back(variant_cli, monkeypatch):
    cli = variant_cli
    conf = cli.stack.nginx_conf.read_text()

    with socket.socket() as taken:  # a port someone else holds
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = add(cli, "--port", str(taken.getsockname()[1]))
    assert result.code == 1 and "already in use" in result.err
    assert_nothing_left(cli, conf_before=conf)

    # a server that refuses its params file exits before answering /healthz
    bad = cli.params_dir.parent / "bad.json"
    bad.write_text('{"id": "d", "headline": "x", "cta": "y", "colors": {"primary": "blue"}}')
    monkeypatch.setattr("croupier.scripts.targets.local.variant_argv", lambda params, port: variant_argv(bad, port))
    result = add(cli)
    assert result.code == 1 and "exited with 1 before it answered /healthz" in result.err
    assert "colors.primary" in result.err  # the server's own message, from its log
    assert_nothing_left(cli, conf_before=conf)

    # a server that never answers: stopped when --health-timeout passes
    never = [sys.executable, "-c", "import time; time.sleep(60)", MARKER]
    monkeypatch.setattr("croupier.scripts.targets.local.variant_argv", lambda params, port: never)
    result = add(cli, "--health-timeout", "1")
    assert result.code == 1 and "did not answer /healthz within 1 s" in result.err
    assert "waiting for" in result.err and "rolling back" in result.err
    assert processes_with(MARKER) == []
    assert_nothing_left(cli, conf_before=conf)


BAD_ADDS = [
    (["--experiment", "nope"], 1, "experiment 'nope' not found"),
    (["--primary", "blue"], 2, "'blue' is not a colour like '#1f7a5c'"),
    (["--headline", "x" * 141], 1, "headline: must be at most 140 characters, got 141 (--headline)"),
    (["--image", "cat.png"], 2, "use one of growth-chart, phone, piggy-bank, spring"),
    (["--prior-rate", "1.5", "--prior-weight", "10"], 2, "--prior-rate must be between 0 and 1"),
    (["--prior-rate", "0.1"], 2, "--prior-rate and --prior-weight go together"),
    (["--image-ref", "registry/x:1"], 2, "--image-ref needs --target docker or k8s"),
]


def test_bad_input_changes_nothing(variant_cli):
    cli = variant_cli
    conf = cli.stack.nginx_conf.read_text()
    for argv, code, message in BAD_ADDS:
        result = add(cli, *argv)
        assert (result.code, message) == (code, message) and message in result.err, result.err
        assert_nothing_left(cli, conf_before=conf)

    bad_id = cli("add", "D!", "--from-template", "--headline", "x")
    assert bad_id.code == 2 and f"an id {ID.message}" in bad_id.err
    taken = cli("add", "b", "--from-template", "--headline", "x")
    assert taken.code == 1 and "variant 'b' already exists in experiment 'demo'" in taken.err
    missing = cli("pause", "zz", "--json")
    assert missing.code == 1 and missing.json() == {"error": "variant 'zz' not found"}
    control = cli("remove", "a")
    assert control.code == 1 and "the control variant cannot be removed" in control.err
    wrong_token = cli("list", "--token", "wrong")
    assert wrong_token.code == 1 and "missing or wrong bearer token" in wrong_token.err
    assert set(variant_stats(cli.stack)) == {"a", "b", "c"}
    assert cli.stack.nginx_conf.read_text() == conf

    # no Docker engine here: a clear error before anything is written or registered
    cli.monkeypatch.setenv("DOCKER_HOST", f"unix://{cli.params_dir.parent}/no-docker.sock")
    docker = add(cli, "--target", "docker")
    assert docker.code == 1 and "no Docker engine is reachable" in docker.err
    assert_nothing_left(cli, conf_before=conf)


def test_the_module_entry_point(variant_cli):
    """``python -m croupier.scripts.variant``: JSON on stdout, progress and errors on stderr, exit codes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROUPIER_")}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "croupier.scripts.variant", *argv], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=30)

    listed = run("--stack-dir", str(variant_cli.stack.config.run_dir), "--json", "list")
    assert listed.returncode == 0, listed.stderr
    assert [v["id"] for v in json.loads(listed.stdout)["variants"]] == ["a", "b", "c"]
    usage = run("add", "d")
    assert usage.returncode == 2 and "add needs --from-template" in usage.stderr
    nowhere = run("--admin-url", "http://127.0.0.1:9", "--token", "t", "list")
    assert nowhere.returncode == 1 and "cannot reach the admin API at http://127.0.0.1:9" in nowhere.stderr
