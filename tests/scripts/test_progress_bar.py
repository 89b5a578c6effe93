"""The progress bar: redrawn in place on a terminal, a line every tenth elsewhere, nothing when quiet."""

import io

from croupier.scripts.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_line_every_tenth():
    out = io.StringIO()
    bar = Progress(out).bar("simulating", 1000)
    for done in range(0, 1001, 10):
        bar.update(done)
    bar.close()
    lines = out.getvalue().splitlines()
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == [f"{p}%" for p in range(0, 101, 10)]


def test_a_terminal_gets_one_line_redrawn():
    out = Terminal()
    bar = Progress(out).bar("simulating", 50)
    for done in range(51):
        bar.update(done)
    bar.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.rstrip().endswith("100% 0s")
    assert "[" + "#" * 30 + "]" in text


def test_quiet_draws_nothing():
    out = io.StringIO()
    bar = Progress(out, quiet=True).bar("simulating", 10)
    bar.update(5)
    bar.close()
    assert out.getvalue() == ""
