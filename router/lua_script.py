"""Lua scripts called by name: ``script(keys={"stats": ...}, args={"goal": ...})``.

Each file in ``router/lua/`` starts with a header that lists its inputs in order,
one a line: ``-- KEYS[1]  stats  ...`` and ``-- ARGV[1]  type  ...``; the word after
the index is the input's name, and ``(optional)`` right after it marks an input the
caller may leave out (only at the end of its list: Lua sees a shorter list). The
header is the one place the order lives: Python passes names, the wrapper builds
the positional lists, and a missing or unknown name fails before Redis is asked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HEADER_LINE = re.compile(r"^--\s+(KEYS|ARGV)\[(\d+)\]\s+([A-Za-z_]\w*)(\s+\(optional\))?")


@dataclass(frozen=True)
class Inputs:
    """One list of a script's inputs (its KEYS or its ARGV), in the header's order."""

    script: str
    kind: str  # KEYS | ARGV
    names: tuple[str, ...]
    required: int  # the first ``required`` names must be given; the rest are optional

    def ordered(self, given: Mapping[str, Any]) -> list:
        unknown = given.keys() - set(self.names)
        if unknown:
            raise TypeError(f"{self.script}: unknown {self.kind} {sorted(unknown)}; it takes {list(self.names)}")
        missing = [name for name in self.names[:self.required] if name not in given]
        if missing:
            raise TypeError(f"{self.script}: missing {self.kind} {missing}")
        count = next((i for i, name in enumerate(self.names) if name not in given), len(self.names))
        if any(name in given for name in self.names[count:]):
            # Lua reads inputs by position: an optional input cannot follow one left out
            raise TypeError(f"{self.script}: {self.kind} given after the optional {self.names[count]!r} left out")
        return [given[name] for name in self.names[:count]]


def parse_header(script: str, text: str) -> tuple[Inputs, Inputs]:
    """The KEYS and ARGV a script's header lists, checked: numbered 1, 2, ... without gaps,
    names unique, optional inputs only at the end."""
    found: dict[str, list[tuple[int, str, bool]]] = {"KEYS": [], "ARGV": []}
    for line in text.splitlines():
        if not line.startswith("--"):
            break  # the header is the leading comment block
        if match := _HEADER_LINE.match(line):
            kind, index, name, optional = match.groups()
            found[kind].append((int(index), name, bool(optional)))
    return _inputs(script, "KEYS", found["KEYS"]), _inputs(script, "ARGV", found["ARGV"])


def _inputs(script: str, kind: str, entries: list[tuple[int, str, bool]]) -> Inputs:
    indices = [index for index, _, _ in entries]
    if indices != list(range(1, len(entries) + 1)):
        raise ValueError(f"{script}: the header's {kind} are numbered {indices}, not 1 to {len(entries)}")
    names = tuple(name for _, name, _ in entries)
    if len(set(names)) != len(names):
        raise ValueError(f"{script}: the header names a {kind} twice: {list(names)}")
    optional = [opt for _, _, opt in entries]
    required = optional.index(True) if True in optional else len(entries)
    if not all(optional[required:]):
        raise ValueError(f"{script}: a required {kind} follows an optional one in the header")
    return Inputs(script, kind, names, required)


class LuaScript:
    """A script registered once with the client: EVALSHA, loading it again when Redis answers
    NOSCRIPT (a restarted or failed-over node), as redis-py's ``register_script`` does."""

    def __init__(self, client: Any, path: Path) -> None:
        text = path.read_text()
        self.keys, self.args = parse_header(path.name, text)
        self._script = client.register_script(text)

    async def __call__(self, keys: Mapping[str, str], args: Mapping[str, Any], more_keys: Sequence[str] = ()) -> Any:
        """``more_keys``: keys after the header's last one, for a script whose header says its
        last key is the first of a list (claim_customers.lua's buckets)."""
        return await self._script(keys=self.keys.ordered(keys) + list(more_keys), args=self.args.ordered(args))
