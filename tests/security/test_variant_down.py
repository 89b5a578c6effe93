"""A variant down: the visitor still gets a page (control), and NGINX's fallback log
records the variant they were assigned next to the one they were served."""

from __future__ import annotations

import json

import pytest

from croupier.nginx.render import Options, RenderError, render
from tests.conftest import Visitor, page_variant
from tests.nginx.test_render import EXPERIMENTS


def fallback_entries(stack) -> list[dict]:
    log = stack.nginx_conf.parent / "fallback.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_visitor_of_a_dead_variant_gets_control_and_the_fallback_is_logged(make_stack):
    stack = make_stack()
    visitors = [Visitor(stack.config.base_url) for _ in range(30)]
    on_b = [v for v in visitors if v.variant() == "b"]
    assert on_b, "no visitor was assigned b"
    assert fallback_entries(stack) == []  # nothing fell back while every variant was up

    stack.variants["b"].kill()
    for visitor in on_b:
        response = visitor.get("/")
        assert response.status_code == 200
        assert page_variant(response) == "a"  # control, not an error page
    entries = fallback_entries(stack)
    assert len(entries) == len(on_b)
    b_address = f"127.0.0.1:{stack.config.variant_base_port + 1}"
    a_address = f"127.0.0.1:{stack.config.variant_base_port}"
    for entry in entries:
        assert (entry["experiment"], entry["assigned"], entry["served"], entry["status"]) == ("demo", "b", "a", "200")
        assert b_address in entry["upstream"] and entry["upstream"].endswith(a_address)  # tried b, then served a
    # visitors of live variants are not logged
    others = [v for v in visitors if v not in on_b]
    assert all(v.variant() in {"a", "c"} for v in others)
    assert len(fallback_entries(stack)) == len(on_b)
    for v in visitors:
        v.close()


def test_fallback_log_can_be_placed_or_turned_off():
    assert "access_log /var/log/croupier/fallback.log croupier_fallback;" in render(
        EXPERIMENTS, Options(resolver="127.0.0.1", fallback_log="/var/log/croupier/fallback.log"))
    assert "croupier_fallback;" not in render(EXPERIMENTS, Options(resolver="127.0.0.1", fallback_log="off"))
    assert "access_log /dev/stdout croupier_fallback;" in render(EXPERIMENTS, Options(resolver="127.0.0.1"))
    with pytest.raises(RenderError, match="fallback_log"):
        render(EXPERIMENTS, Options(resolver="127.0.0.1", fallback_log="/tmp/x; include /etc/passwd"))
