"""The committed NGINX configurations for compose and Kubernetes: current, and accepted by nginx -t."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from croupier.nginx.deploy import COMPOSE, K8S, START_SCRIPT, TARGETS, stale_files
from croupier.nginx.render import PASS_KEY_FILE, pass_key_conf
from croupier.router.rules import PASS_KEY
from croupier.scripts.processes import ROOT, check_nginx_config


def test_committed_files_are_what_the_renderer_renders_today():
    stale = [str(p.relative_to(ROOT)) for p in stale_files()]
    assert not stale, f"{', '.join(stale)} differ from a fresh render: run python -m croupier.nginx.deploy and commit"


def for_this_machine(text: str, tmp_path) -> str:
    """What only exists where the file is deployed, pointed at this machine: the router
    names in the upstream block (NGINX resolves them at load), the resolver (its
    name too) and the image's cache directory. Everything else is checked as committed."""
    text, routers = re.subn(r"(?m)^(\s*server )[A-Za-z0-9.-]+:(\d+)( max_fails=0;)$", r"\g<1>127.0.0.1:\2\3", text)
    assert routers >= 1
    text, resolvers = re.subn(r"(?m)^(\s*resolver )\S+", r"\g<1>127.0.0.1", text)
    assert resolvers == 1
    return text.replace("/var/cache/nginx/", f"{tmp_path}/cache/").replace(PASS_KEY_FILE, f"{tmp_path}/pass-key.conf")


def run_start_script(tmp_path, key: str, *nginx_args: str, path: str | None = None) -> subprocess.CompletedProcess:
    """nginx/start.sh as the container runs it, its key file written under ``tmp_path``."""
    env = {"PATH": path or os.environ["PATH"], "CROUPIER_PASS_KEY": key,
           "CROUPIER_PASS_KEY_FILE": str(tmp_path / "pass-key.conf")}
    return subprocess.run(["sh", str(START_SCRIPT), *nginx_args], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_nginx_accepts_the_committed_configuration(tmp_path, target):
    """What the container runs: the start script writes the key file, then nginx (here -t) reads it."""
    (tmp_path / "cache").mkdir()  # the image's /var/cache/nginx (an emptyDir or tmpfs there)
    conf = tmp_path / "nginx.conf"
    conf.write_text(for_this_machine(TARGETS[target].config_path.read_text(), tmp_path))
    result = run_start_script(tmp_path, "k" * 40, "-t", "-p", str(tmp_path), "-c", str(conf),
                              "-e", str(tmp_path / "error.log"))
    assert result.returncode == 0, result.stderr
    check_nginx_config(conf, tmp_path)


def test_the_start_script_writes_the_key_file_render_expects(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nginx").write_text('#!/bin/sh\necho "nginx $*"\n')
    (fake / "nginx").chmod(0o755)
    path = f"{fake}:{os.environ['PATH']}"
    key = "Abc_-" + "9" * 40
    result = run_start_script(tmp_path, key, "-c", "/etc/x.conf", "-g", "daemon off;", path=path)
    assert result.returncode == 0 and result.stdout == "nginx -c /etc/x.conf -g daemon off;\n"
    assert (tmp_path / "pass-key.conf").read_text() == pass_key_conf(key)
    # where it writes in a container is where the committed configurations include it from
    assert f'file="${{CROUPIER_PASS_KEY_FILE:-{PASS_KEY_FILE}}}"' in START_SCRIPT.read_text()
    assert (tmp_path / "pass-key.conf").stat().st_mode & 0o077 == 0  # the key is readable by NGINX's user only
    for bad in ("", "short", 'x" ; }' + "x" * 40, "k" * 129, "k" * 31):
        (tmp_path / "pass-key.conf").unlink(missing_ok=True)
        result = run_start_script(tmp_path, bad, path=path)
        assert result.returncode == 1 and "nginx" not in result.stdout
        assert PASS_KEY.error("CROUPIER_PASS_KEY") in result.stderr  # the routers' rule, in the same words
        assert not (tmp_path / "pass-key.conf").exists()
        assert not PASS_KEY.ok(bad)
    for good in ("k" * 32, "k" * 128):  # the rule's bounds
        assert run_start_script(tmp_path, good, path=path).returncode == 0 and PASS_KEY.ok(good)


def test_compose_config_lists_both_routers_and_the_compose_resolver():
    text = COMPOSE.config_path.read_text()
    upstream = text.split("upstream croupier_router {")[1].split("}")[0]
    assert re.findall(r"server (\S+) ", upstream) == ["router-1:8000", "router-2:8000"]
    # decide subrequests go to the routers' decide listeners (docker-compose.yml: CROUPIER_DECIDE_PORT)
    decide = text.split("upstream croupier_decide {")[1].split("}")[0]
    assert re.findall(r"server (\S+) ", decide) == ["router-1:8001", "router-2:8001"]
    assert "proxy_pass http://croupier_decide;" in text.split("location = /_croupier/decide")[1].split("}")[0]
    assert "resolver 127.0.0.11 " in text  # Docker's embedded DNS
    assert "listen 8080;" in text


def test_k8s_config_allowlists_only_variant_services():
    text = K8S.config_path.read_text()
    assert "server router.croupier.svc.cluster.local:8000 " in text
    pattern = re.search(r'"~(\^variant-[^"]+)" \$croupier_upstream;', text).group(1)
    assert re.fullmatch(pattern, "variant-demo-d.croupier.svc.cluster.local:8080")
    for forbidden in ("redis.croupier.svc.cluster.local:6379", "router.croupier.svc.cluster.local:8000",
                      "169.254.169.254:80", "variant-x.evil.example:8080"):
        assert not re.fullmatch(pattern, forbidden), forbidden
