"""Progress of the command-line tools' long steps, on standard error (standard output
stays for results, so ``--json`` output parses): steps, waiting with elapsed seconds,
and a bar for work counted in units (visitors simulated)."""

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

    def bar(self, label: str, total: float) -> Bar:
        """A bar for ``total`` units of work; call ``update(done)`` and then ``close()``."""
        return Bar(label, total, self.stream, quiet=self.quiet)

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


class Bar:
    """One line redrawn in place on a terminal; elsewhere (a log, a pipe) a line every tenth."""

    WIDTH = 30

    def __init__(self, label: str, total: float, stream: TextIO, *, quiet: bool = False) -> None:
        self.label, self.total, self.stream, self.quiet = label, max(float(total), 1e-12), stream, quiet
        self.terminal = bool(getattr(stream, "isatty", lambda: False)())
        self.shown = -1  # the last step drawn: a 1/WIDTH of the bar on a terminal, a tenth elsewhere
        self.started = time.monotonic()

    def update(self, done: float) -> None:
        if self.quiet:
            return
        fraction = min(max(done / self.total, 0.0), 1.0)
        step = int(fraction * (self.WIDTH if self.terminal else 10))
        if step == self.shown:
            return
        self.shown = step
        elapsed = time.monotonic() - self.started
        if self.terminal:
            filled = int(fraction * self.WIDTH)
            print(f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction:4.0%} {elapsed:.0f}s",
                  end="", file=self.stream, flush=True)
        else:
            print(f"{self.label}: {fraction:.0%} ({elapsed:.0f}s)", file=self.stream, flush=True)

    def close(self) -> None:
        self.update(self.total)
        if self.terminal and not self.quiet:
            print(file=self.stream, flush=True)
