"""NGINX configuration: rendered from the registry, accepted by `nginx -t`."""

import json
import random
import re
from pathlib import Path

import pytest

from croupier.nginx.render import (Options, RenderError, group_name, main, pass_key_path, prefix_regexes, render, routes,
                          write_pass_key)
from croupier.router.experiments import parse_experiment
from croupier.router.snapshot import Snapshot
from croupier.scripts.processes import check_nginx_config

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
    # the host's regexes come first: NGINX takes the first that matches
    assert text.index(r'"~^shop\.example\.com(?<croupier_path>') < text.index('"~^[^/]*(?<croupier_path>/)"')
    assert '"shop.example.com|/spring-sale/" sale;' in text and '"|/" demo;' in text
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
    assert "croupier.nginx.render" in capsys.readouterr().err


def nginx_match(regexes: list[dict], table: dict[str, str], host: str, uri: str) -> str | None:
    """What the rendered maps give: the first regex matching ``$host$uri`` names the route
    (PCRE and Python agree on these patterns but for the named group's spelling)."""
    for r in regexes:
        if m := re.match(r["pattern"].replace("(?<", "(?P<"), host + uri):
            return table.get(r["route"].replace("$croupier_path", m["croupier_path"]))
    return None


def test_routes_find_what_the_router_finds():
    """Longest prefix, host-specific first at equal length: the router's rule, with tries cut
    into many small regexes (a tiny budget) as 10,000 experiments cut them."""
    rand = random.Random(7)
    pieces = ["/", "a", "b", "ab", "/x", "-", ".", "%20", "$", "(", "e1", "e10"]
    prefixes = {"/" + "".join(rand.choices(pieces, k=rand.randint(0, 4))) for _ in range(300)}
    experiments, hosts = [], ["", "", "", "a.example.com", "b.example.com"]
    for i, prefix in enumerate(sorted(prefixes)):
        host = rand.choice(hosts)
        experiments.append({"id": f"e{i}", "path_prefix": prefix, "host": host, "control": "a",
                            "variants": [{"id": "a", "upstream": "127.0.0.1:9101"}]})
    experiments.append({"id": "shop", "path_prefix": "/", "host": "a.example.com", "control": "a",
                        "variants": [{"id": "a", "upstream": "127.0.0.1:9101"}]})
    regexes, table = routes(experiments, budget=120)
    assert len(regexes) > 10
    snapshot = Snapshot.build([parse_experiment(e) for e in experiments], {}, {}, 1)
    for _ in range(3000):
        host = rand.choice(["a.example.com", "b.example.com", "c.example.com"])
        uri = "/" + "".join(rand.choices(pieces, k=rand.randint(0, 6)))
        expected = snapshot.match(host, uri)
        assert nginx_match(regexes, table, host, uri) == (expected.id if expected else None), (host, uri)


def test_prefix_regexes_stay_within_budget():
    prefixes = {f"/p/{i:05d}/" for i in range(5000)} | {"/", "/p/"}
    found = prefix_regexes(prefixes, budget=500)
    assert all(len(r) <= 500 for r in found)
    assert found[-2:] == ["/p/", "/"]  # the shorter prefixes above the cut subtrees, shortest last


def test_ten_thousand_experiments_load(tmp_path):
    """Sized hash maps and a few regexes: NGINX accepts 10,000 experiments (its defaults refuse them)."""
    (tmp_path / "tmp").mkdir()
    experiments = [{"id": f"e{i:05d}", "path_prefix": f"/x/e{i:05d}/", "control": "a",
                    "variants": [{"id": v, "upstream": f"127.0.0.1:{9101 + j}"} for j, v in enumerate("abc")]}
                   for i in range(10_000)]
    options = Options(prefix=str(tmp_path))
    write_pass_key(Path(pass_key_path(options)), "k" * 32)
    text = render(experiments, options)
    assert text.count('"~^[^/]*(?<croupier_path>') < 50
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    check_nginx_config(conf, tmp_path)


FACTORIAL = {"id": "mvt", "path_prefix": "/mvt/", "policy": "factorial_thompson", "variants": [
    {"id": "page", "upstream": "127.0.0.1:9103"}],
    "factors": {"headline": {"plain": {}, "savings": {}}, "cta": {"go": {}, "buy": {}}}}


def test_a_factorial_experiment_fails_open_to_its_control_arm_and_routes_any_arm_pass(tmp_path):
    (tmp_path / "tmp").mkdir()
    options = Options(prefix=str(tmp_path), resolver="127.0.0.1")
    write_pass_key(Path(pass_key_path(options)), "k" * 32)
    text = render([*EXPERIMENTS, FACTORIAL], options)
    assert '"exp:mvt" plain_go;' in text  # the control arm: every factor's first level
    assert r'"~^1\|mvt\|" variant_127_0_0_1_9103;' in text  # one entry for every arm's pass
    assert "1|mvt|page" not in text
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    check_nginx_config(conf, tmp_path)
    with pytest.raises(RenderError, match="experiment 'mvt': factors.cta: needs at least 2 levels"):
        render([{**FACTORIAL, "factors": {"cta": {"go": {}}}}], options)
