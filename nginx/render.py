"""Render Croupier's NGINX configuration from the experiment registry.

The registry decides two things NGINX must know without asking the router:
which upstreams may ever be proxied to (the allowlist) and, per host and path
prefix, which variant is control (the fail-open target). Targets differ only in
paths, listen address and name resolution.

    python -m croupier.nginx.render --admin-url http://127.0.0.1:8000 --token T --out run/nginx.conf
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from croupier.router.factors import Declaration, parse_declaration
from croupier.router.records import InvalidExperiment
from croupier.router.rules import COOKIE_PREFIX, DEFAULT_COOKIE_PREFIX, DEFAULT_GEO_HEADER, GEO_HEADER, ID, PASS_KEY, UPSTREAM

TEMPLATE = "croupier.conf.j2"
PASS_KEY_FILE = "/var/run/croupier-pass-key.conf"  # compose and Kubernetes: on a tmpfs, written at start
TARGETS = ("local", "compose", "k8s")
_FILE = re.compile(r"/[A-Za-z0-9_./-]+")  # an absolute path NGINX can read without quoting
_QUOTABLE = re.compile(r'[^"\\\s{}]*')  # a host or path prefix NGINX reads inside double quotes
REGEX_BUDGET = 3500  # characters of one prefix regex (NGINX reads at most 4096 per parameter)


class RenderError(ValueError):
    pass


@dataclass
class Options:
    """What differs between the local stack, compose and Kubernetes."""

    target: str = "local"
    listen: str = "127.0.0.1:8080"
    listen_v6: str = ""
    routers: list[str] = field(default_factory=lambda: ["127.0.0.1:8000"])
    # where the decide subrequests go: the routers' decide listeners (CROUPIER_DECIDE_PORT);
    # empty: the routers above, which answer decide on their app's port too
    decide_routers: list[str] = field(default_factory=list)
    default_upstream: str = ""  # for paths no experiment owns; empty: the first experiment's control
    upstream_pattern: str = ""  # extra allowlist regex, e.g. for Kubernetes service names
    prefix: str = ""  # local: directory for pid, logs and temp files
    resolver: str = ""
    worker_processes: str = "1"
    access_log: str = "off"
    # where pages served by the control fallback are logged (assigned vs served variant);
    # default: <prefix>/fallback.log, or standard output; "off" for none
    fallback_log: str = ""
    decide_connect_timeout: str = "100ms"
    decide_timeout: str = "250ms"
    variant_connect_timeout: str = "1s"
    variant_timeout: str = "30s"
    beacon_max_bytes: int = 4096
    reuseport: bool = False
    user: str = ""  # worker user; the local stack sets the invoking user when it runs as root
    cookie_prefix: str = DEFAULT_COOKIE_PREFIX  # the router's CROUPIER_COOKIE_PREFIX
    # The visitor's country and city for the router's context (CROUPIER_GEO_HEADER names the header).
    # NGINX expressions from a trusted source only, e.g. "$geoip2_data_country_iso_code" (GeoIP2 module)
    # or "$http_cf_ipcountry" behind a CDN that always sets it; empty: no geo.
    geo_header: str = DEFAULT_GEO_HEADER
    geo_country: str = ""
    geo_city: str = ""
    # The file defining $croupier_pass_key (write_pass_key), the routers' CROUPIER_PASS_KEY;
    # default: <prefix>/pass-key.conf, or PASS_KEY_FILE where the container writes it at start.
    pass_key_file: str = ""


def group_name(address: str) -> str:
    """An NGINX upstream name for a variant address (``127.0.0.1:9101`` → ``variant_127_0_0_1_9101``)."""
    return "variant_" + re.sub(r"[^A-Za-z0-9]", "_", address)


def is_ip_literal(address: str) -> bool:
    try:
        ipaddress.ip_address(address.rsplit(":", 1)[0].strip("[]"))
        return True
    except ValueError:
        return False


@functools.lru_cache(maxsize=4096)  # called for every variant; ip_address() is slow
def proxy_target(address: str) -> str:
    """What ``proxy_pass http://...`` gets for an address.

    An IP address becomes a named upstream group (with keepalive). A DNS name
    (a compose or Kubernetes service) stays a name that NGINX resolves at request
    time through ``resolver``: an upstream block would resolve it once, at
    start-up, and fail to start when the service is not there yet.
    """
    return group_name(address) if is_ip_literal(address) else address


def prefix_regexes(prefixes: set[str], budget: int = REGEX_BUDGET) -> list[str]:
    """Regular expressions that together find the longest of ``prefixes`` starting a string.

    Each is a trie of prefixes written as nested alternatives, so matching costs the length of
    the path, not the number of experiments (one regex per experiment, tried in turn, cost
    ~50 ns each on every page view: half a millisecond with 10,000). A greedy ``?`` tries the
    longer prefix before the shorter. A trie larger than ``budget`` characters is cut into
    subtrees (NGINX reads no parameter past 4 KB); the subtrees are disjoint and come
    before the shorter prefixes above them, so the first regex NGINX finds matching still
    holds the longest prefix.
    """
    branches = [(common, suffixes, re.escape(common) + _trie(suffixes)) for common, suffixes in _branches(prefixes)]
    if len(whole := _joined([b for _, _, b in branches], "" in prefixes)) <= budget:
        return [whole]
    out, packed, size = [], [], 0
    for common, suffixes, branch in branches:
        if len(branch) > budget:
            out += [re.escape(common) + r for r in prefix_regexes(suffixes, budget)]
            continue
        if packed and size + len(branch) > budget:
            out.append(_alternatives(packed))
            packed, size = [], 0
        packed.append(branch)
        size += len(branch) + 1
    if packed:
        out.append(_alternatives(packed))
    if "" in prefixes:  # this node is itself a prefix: the shortest match here, so last
        out.append("")
    return out


def _branches(prefixes: set[str]) -> list[tuple[str, set[str]]]:
    """The non-empty prefixes grouped by first character: each group's common start and the rest."""
    groups: dict[str, list[str]] = {}
    for p in sorted(p for p in prefixes if p):
        groups.setdefault(p[0], []).append(p)
    return [(common := os.path.commonprefix(g), {p[len(common):] for p in g}) for g in groups.values()]


def _trie(prefixes: set[str]) -> str:
    return _joined([re.escape(common) + _trie(suffixes) for common, suffixes in _branches(prefixes)], "" in prefixes)


def _joined(branches: list[str], terminal: bool) -> str:
    """A trie node's regex from its branches'; ``terminal``: the node is itself a prefix, taken
    when no branch matches (the greedy ``?`` tries the branches first)."""
    if not terminal:
        return _alternatives(branches)
    return f"(?:{'|'.join(branches)})?" if branches else ""


def _alternatives(branches: list[str]) -> str:
    return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"


def routes(experiments: list[dict], budget: int = REGEX_BUDGET) -> tuple[list[dict], dict[str, str]]:
    """NGINX's view of the router's rule (router/snapshot.py): the experiment owning a page is
    the one with the longest path prefix, a host-specific one winning over an any-host one of
    the same length. Returns the regexes over ``$host$uri`` (in the order NGINX must try them;
    each captures ``$croupier_path`` and names its route ``<host>|<prefix>``) and, per route,
    its experiment: an exact-match hash, as cheap with 10,000 experiments as with one."""
    owners: dict[str, dict[str, str]] = {}  # host ("" any) -> prefix -> experiment
    for exp in experiments:
        host, prefix = exp.get("host", ""), exp.get("path_prefix", "/")
        for value, name in ((host, "host"), (prefix, "path_prefix")):
            if not _QUOTABLE.fullmatch(value):
                raise RenderError(f"{name}: no quotes, backslashes, braces or spaces, got {value!r}")
        owners.setdefault(host, {}).setdefault(prefix, exp["id"])
    any_host = owners.get("", {})
    table, regexes = {}, []
    for host in sorted(h for h in owners if h) + [""]:
        own = owners[host]
        # an any-host prefix longer than one of the host's own wins over it: the host's tries
        # hold those too (the others the any-host regexes, tried after, find)
        lengths = {len(q) for q in own} if host else set()
        prefixes = {**{p: e for p, e in any_host.items() if any(p[:n] in own for n in lengths)}, **own}
        table.update({f"{host}|{prefix}": exp_id for prefix, exp_id in prefixes.items()})
        start = re.escape(host) if host else "[^/]*"
        regexes += [{"pattern": f"^{start}(?<croupier_path>{r})", "route": f"{host}|$croupier_path"}
                    for r in prefix_regexes(set(prefixes), budget)]
    return regexes, table


def map_hash_sizes(keys: list[int], longest: int) -> tuple[int, int]:
    """``map_hash_max_size`` and ``map_hash_bucket_size`` for maps of ``keys`` entries at most,
    the longest key ``longest`` bytes: NGINX's defaults (2048, 64) fail past a few thousand."""
    max_size = max(2048, 2 * max(keys, default=0))
    bucket = max(64, -(-2 * (longest + 16) // 64) * 64)
    return max_size, bucket


def _declaration(exp: dict) -> Declaration:
    try:
        return parse_declaration(exp)
    except InvalidExperiment as exc:
        raise RenderError(f"experiment {exp.get('id')!r}: {exc}") from None


def render(experiments: list[dict], options: Options) -> str:
    if options.target not in TARGETS:
        raise RenderError(f"target: must be one of {', '.join(TARGETS)}")
    if not options.routers:
        raise RenderError("routers: at least one router address is needed")
    addresses: dict[str, None] = {}
    declared = {exp["id"]: _declaration(exp) for exp in experiments if exp.get("factors")}
    for exp in experiments:
        for variant in exp["variants"]:
            addresses[variant["upstream"]] = None
            # ids are written into the configuration (the control and pass maps)
            for value in (exp["id"], variant["id"]):
                if not ID.ok(value):
                    raise RenderError(f"{ID.error('id')}, got {value!r} (an experiment's or a variant's)")
    if options.default_upstream:
        addresses[options.default_upstream] = None
    for address in [*addresses, *options.routers, *options.decide_routers]:
        if not UPSTREAM.ok(address):
            raise RenderError(f"{UPSTREAM.error('upstream')}, got {address!r}")
    if options.upstream_pattern:
        re.compile(options.upstream_pattern)
    if not COOKIE_PREFIX.ok(options.cookie_prefix):
        raise RenderError(COOKIE_PREFIX.error("cookie_prefix") + " (the router's CROUPIER_COOKIE_PREFIX)")
    if not GEO_HEADER.ok(options.geo_header):
        raise RenderError(GEO_HEADER.error("geo_header") + " (the router's CROUPIER_GEO_HEADER)")
    for name in ("geo_country", "geo_city"):
        if not re.fullmatch(r"(\$[A-Za-z0-9_]{1,64})?", getattr(options, name)):
            raise RenderError(f"{name}: must be one NGINX variable such as $geoip2_data_country_iso_code, or empty")
    if options.pass_key_file and not _FILE.fullmatch(options.pass_key_file):
        raise RenderError(f"pass_key_file: must be an absolute path, got {options.pass_key_file!r}")
    if options.fallback_log not in ("", "off") and not _FILE.fullmatch(options.fallback_log):
        raise RenderError(f"fallback_log: must be 'off' or an absolute path, got {options.fallback_log!r}")
    names = [a for a in addresses if not is_ip_literal(a)]
    if names and not options.resolver:
        raise RenderError(f"upstream {names[0]!r} is a DNS name: set a resolver (--resolver) for the "
                          f"{options.target} target")
    controls = []
    for exp in experiments:
        factorial = declared.get(exp["id"])
        if factorial is not None:  # its one variant, the page server, renders the control arm
            control = {"upstream": exp["variants"][0]["upstream"], "id": factorial.control}
        else:
            control = next(v for v in exp["variants"] if v["id"] == exp["control"])
        controls.append({"group": proxy_target(control["upstream"]), "variant": control["id"],
                         "experiment": exp["id"]})
    if options.default_upstream:
        default_group = proxy_target(options.default_upstream)
    elif controls:
        # the experiment the router would match last: the shortest prefix, any host
        last = sorted(range(len(experiments)), key=lambda i: (-len(experiments[i].get("path_prefix", "/")),
                                                              experiments[i].get("host", "") == ""))[-1]
        default_group = controls[last]["group"]
    else:
        raise RenderError("no experiment and no default upstream: NGINX would have nowhere to send visitors")
    route_regexes, route_table = routes(experiments)
    # A factorial experiment's arms all live on its one page server: one regex entry routes a
    # pass for any of them (up to 16,384 arms) instead of an entry each; the arm the pass names
    # is the router's (secure_link checked it), and the page server renders an arm it does not
    # know as the control.
    pass_routes = [{"experiment": exp["id"], "variant": v["id"], "group": proxy_target(v["upstream"]),
                    "any": exp["id"] in declared}
                   for exp in experiments for v in exp["variants"]]
    prefix = options.prefix
    env = Environment(loader=FileSystemLoader(Path(__file__).parent), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    return env.get_template(TEMPLATE).render(
        **{k: getattr(options, k) for k in Options.__dataclass_fields__
           if k not in ("prefix", "default_upstream", "pass_key_file", "fallback_log", "decide_routers")},
        decide_routers=options.decide_routers or options.routers,
        fallback_log=options.fallback_log or (f"{prefix}/fallback.log" if prefix else "/dev/stdout"),
        pass_key_file=pass_key_path(options),
        pass_routes=pass_routes,
        upstreams=[{"address": a, "group": proxy_target(a)} for a in addresses],
        controls=controls,
        route_regexes=route_regexes,
        route_table=route_table,
        map_hash=map_hash_sizes([len(pass_routes), len(route_table), len(addresses)], max(map(len, [
            *route_table, *addresses, *(f"1|{r['experiment']}|{r['variant']}" for r in pass_routes)]))),
        default_group=default_group,
        pid=f"{prefix}/nginx.pid" if prefix else "",
        error_log=f"{prefix}/error.log" if prefix else "/dev/stderr",
        temp_dir=f"{prefix}/tmp" if prefix else "",
    )


def pass_key_path(options: Options) -> str:
    """Where NGINX reads the pass key from, for these options."""
    return options.pass_key_file or (f"{options.prefix}/pass-key.conf" if options.prefix else PASS_KEY_FILE)


def pass_key_conf(key: str) -> str:
    """The file NGINX includes for the routing passes' key (Options.pass_key_file). Compose and
    Kubernetes write the same line from CROUPIER_PASS_KEY when the container starts."""
    if not PASS_KEY.ok(key):
        raise RenderError(PASS_KEY.error("pass key") + " (CROUPIER_PASS_KEY)")
    return f'map $host $croupier_pass_key {{ default "{key}"; }}\n'


def write_pass_key(path: Path, key: str) -> None:
    """Write the pass key file, readable by its owner only."""
    write_config(pass_key_conf(key), path, mode=0o600)


def fetch_experiments(admin_url: str, token: str) -> list[dict]:
    response = httpx.get(f"{admin_url.rstrip('/')}/api/v1/experiments",
                         headers={"Authorization": f"Bearer {token}"}, timeout=5)
    response.raise_for_status()
    return response.json()["experiments"]


def write_config(text: str, path: Path, mode: int | None = None) -> None:
    """Write atomically, so a reloading NGINX never reads half a file; ``mode``: the file's
    permissions, set before anything is written (for secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    if mode is not None:
        tmp.unlink(missing_ok=True)
        tmp.touch(mode=mode)
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--admin-url", help="router to read the registry from")
    source.add_argument("--experiments", type=Path, help="JSON file: a list of experiments")
    parser.add_argument("--token", default=os.environ.get("CROUPIER_ADMIN_TOKEN", ""))
    parser.add_argument("--target", choices=TARGETS, default="local")
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--router", action="append", dest="routers", help="router address (repeatable)")
    parser.add_argument("--decide-router", action="append", dest="decide_routers", default=[],
                        help="a router's decide listener, CROUPIER_DECIDE_PORT (repeatable; default: --router)")
    parser.add_argument("--pass-key-file", default="", help="the file defining the pass key NGINX includes")
    parser.add_argument("--default-upstream", default="")
    parser.add_argument("--upstream-pattern", default="")
    parser.add_argument("--resolver", default="")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--out", type=Path, help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    try:
        if args.admin_url:
            experiments = fetch_experiments(args.admin_url, args.token)
        else:
            experiments = json.loads(args.experiments.read_text())
        text = render(experiments, Options(
            target=args.target, listen=args.listen, routers=args.routers or ["127.0.0.1:8000"],
            decide_routers=args.decide_routers, pass_key_file=args.pass_key_file,
            default_upstream=args.default_upstream, upstream_pattern=args.upstream_pattern,
            resolver=args.resolver, prefix=args.prefix))
    except (RenderError, httpx.HTTPError, OSError, ValueError, KeyError) as exc:
        print(f"croupier.nginx.render: {exc}", file=sys.stderr)
        return 1
    if args.out:
        write_config(text, args.out)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
