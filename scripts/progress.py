"""Progress of the variant script's long steps, on standard error (standard output
stays for results, so ``--json`` output parses), and waiting with elapsed seconds."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet

    def step(self, message: str) -> None:
        if not self.quiet:
            print(f"{message} ...", file=self.stream, flush=True)

    def note(self, message: str) -> None:
        if not self.quiet:
            print(f"  {message}", file=self.stream, flush=True)

    def wait(self, what: str, check: Callable[[], bool], timeout: float, *, interval: float = 0.2,
             every: float = 1.0) -> bool:
        """Call ``check`` until it returns True (then True) or ``timeout`` passes (then False),
        printing ``what`` with the elapsed seconds about every ``every`` seconds.
        ``check`` may raise to give up early (a process that exited will never be healthy)."""
        started = time.monotonic()
        shown = -every
        while True:
            if check():
                return True
            elapsed = time.monotonic() - started
            if elapsed >= timeout:
                return False
            if elapsed - shown >= every:
                shown = elapsed
                self.note(f"{what} ({elapsed:.0f}s of {timeout:.0f}s)")
            time.sleep(min(interval, max(0.0, timeout - elapsed)))
