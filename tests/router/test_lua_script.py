"""Lua scripts called by name: the header's order, and the errors that name what is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from croupier.router.lua_script import parse_header

LUA = Path(__file__).parents[2] / "router" / "lua"

HEADER = """-- What it does.
--
-- KEYS[1]  stats           a hash
-- KEYS[2]  dedupe (optional) a marker
--
-- ARGV[1]  kind            view | click
-- ARGV[2]  ttl             seconds

local stats = KEYS[1]
-- KEYS[3]  notes           a comment below the header: not an input
"""


def test_inputs_are_ordered_as_the_header_lists_them():
    keys, args = parse_header("demo.lua", HEADER)
    assert keys.ordered({"dedupe": "k2", "stats": "k1"}) == ["k1", "k2"]
    assert keys.ordered({"stats": "k1"}) == ["k1"]  # an optional key at the end may be left out
    assert args.ordered({"ttl": 60, "kind": "view"}) == ["view", 60]


@pytest.mark.parametrize("keys, says", [
    ({"dedupe": "k2"}, "demo.lua: missing KEYS ['stats']"),
    ({"stats": "k1", "stat": "k"}, "demo.lua: unknown KEYS ['stat']; it takes ['stats', 'dedupe']"),
])
def test_a_missing_or_unknown_name_is_refused_by_name(keys, says):
    script_keys, _ = parse_header("demo.lua", HEADER)
    with pytest.raises(TypeError) as raised:
        script_keys.ordered(keys)
    assert str(raised.value) == says


def test_an_optional_input_cannot_be_left_out_before_a_given_one():
    text = "-- ARGV[1]  a\n-- ARGV[2]  b (optional)\n-- ARGV[3]  c (optional)\n"
    _, args = parse_header("demo.lua", text)
    assert args.ordered({"a": 1, "b": 2}) == [1, 2]
    with pytest.raises(TypeError, match="demo.lua: ARGV given after the optional 'b' left out"):
        args.ordered({"a": 1, "c": 3})


@pytest.mark.parametrize("text, says", [
    ("-- KEYS[1]  a\n-- KEYS[3]  b\n", r"demo.lua: the header's KEYS are numbered \[1, 3\], not 1 to 2"),
    ("-- ARGV[1]  a\n-- ARGV[2]  a\n", r"demo.lua: the header names a ARGV twice"),
    ("-- ARGV[1]  a (optional)\n-- ARGV[2]  b\n", r"demo.lua: a required ARGV follows an optional one"),
])
def test_a_malformed_header_is_refused(text, says):
    with pytest.raises(ValueError, match=says):
        parse_header("demo.lua", text)


@pytest.mark.parametrize("path", sorted(LUA.glob("*.lua")), ids=lambda p: p.name)
def test_each_script_names_its_inputs_as_its_header_does(path):
    """The header is what Python calls by; the ``local name = KEYS[i]`` lines are what the
    script reads: they must agree, input for input."""
    text = path.read_text()
    keys, args = parse_header(path.name, text)
    declared = {"KEYS": {}, "ARGV": {}}
    for names, values in re.findall(r"^local ([\w, ]+) = (.+)$", text, re.MULTILINE):
        for name, value in zip(names.split(", "), values.split(", ")):
            if found := re.fullmatch(r"(?:tonumber\()?(KEYS|ARGV)\[(\d+)\]\)?", value.strip()):
                declared[found[1]][int(found[2])] = name
    assert [declared["KEYS"].get(i + 1) for i in range(len(keys.names))] == list(keys.names)
    assert [declared["ARGV"].get(i + 1) for i in range(len(args.names))] == list(args.names)
    assert len(declared["KEYS"]) == len(keys.names) and len(declared["ARGV"]) == len(args.names)
