"""NGINX configuration: rendered from the registry, accepted by `nginx -t`."""

import json
from pathlib import Path

import pytest

from nginx.render import (Options, RenderError, control_pattern, group_name, main, pass_key_path, render,
                          write_pass_key)
from scripts.processes import check_nginx_config

EXPERIMENTS = [
    {"id": "demo", "path_prefix": "/", "host": "", "control": "a", "variants": [
        {"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}]},
    {"id": "sale", "path_prefix": "/spring-sale/", "host": "shop.example.com", "control": "x", "variants": [
        {"id": "x", "upstream": "variant-x.croupier.svc:8080"}, {"id": "y", "upstream": "127.0.0.1:9102"}]},
]


def test_allowlist_and_controls():
    text = render(EXPERIMENTS, Options(prefix="/tmp/x", resolver="127.0.0.1"))
    assert '"127.0.0.1:9101" variant_127_0_0_1_9101;' in text
    assert text.count("upstream variant_127_0_0_1_9102") == 1  # shared upstreams appear once
    assert '"variant-x.croupier.svc:8080" variant-x.croupier.svc:8080;' in text  # names resolve per request
    # the longer, host-specific prefix comes first: NGINX takes the first regex that matches
    assert text.index(control_pattern("shop.example.com", "/spring-sale/")) < text.index(control_pattern("", "/"))
    assert 'proxy_set_header Connection "";' in text.split("location = /_croupier/decide")[1].split("}")[0]


@pytest.mark.parametrize("target", ["local", "compose", "k8s"])
def test_every_target_passes_nginx_t(tmp_path, target):
    (tmp_path / "tmp").mkdir()
    options = Options(target=target, prefix=str(tmp_path), resolver="127.0.0.1",
                      upstream_pattern=r"^variant-[a-z0-9-]+\.croupier\.svc:8080$" if target == "k8s" else "")
    write_pass_key(Path(pass_key_path(options)), "k" * 32)
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(EXPERIMENTS, options))
    check_nginx_config(conf, tmp_path)


def test_bad_input_is_refused():
    with pytest.raises(RenderError, match="nowhere"):
        render([], Options())
    bad = [{**EXPERIMENTS[0], "variants": [{"id": "a", "upstream": "evil; include /etc/passwd:1"}]}]
    with pytest.raises(RenderError, match="host:port"):
        render(bad, Options())
    with pytest.raises(RenderError, match="resolver"):
        render(EXPERIMENTS, Options())
    with pytest.raises(RenderError, match="target"):
        render(EXPERIMENTS, Options(target="mars"))


def test_group_names_are_safe():
    assert group_name("variant-x.croupier.svc:8080") == "variant_variant_x_croupier_svc_8080"


def test_command_line(tmp_path, capsys):
    source = tmp_path / "experiments.json"
    source.write_text(json.dumps(EXPERIMENTS))
    assert main(["--experiments", str(source), "--resolver", "127.0.0.1", "--out", str(tmp_path / "n.conf")]) == 0
    assert "auth_request /_croupier/decide;" in (tmp_path / "n.conf").read_text()
    assert main(["--experiments", str(tmp_path / "missing.json")]) == 1
    assert "nginx.render" in capsys.readouterr().err
