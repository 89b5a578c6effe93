"""Running the variant script against a real local stack (tests/conftest.py's make_stack)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from croupier.scripts.processes import StartError
from croupier.scripts.progress import Progress
from croupier.scripts.stack import LocalStack
from croupier.scripts.targets.local import LocalTarget
from croupier.scripts.variant import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@dataclass
class VariantCLI:
    """``croupier-variant`` run in this process against one stack, with generated params in a temp folder."""

    stack: LocalStack
    params_dir: Path
    capsys: pytest.CaptureFixture
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, command: str, *args: str, stdin: str = "") -> Result:
        import io
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        argv = [command, "--stack-dir", str(self.stack.config.run_dir)]
        if command in ("add", "remove"):
            argv += ["--params-dir", str(self.params_dir)]
        self.capsys.readouterr()
        try:
            code = main([*argv, *args], environ={})
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def params_file(self, variant_id: str, experiment: str = "demo") -> Path:
        return self.params_dir / experiment / f"{variant_id}.json"

    @property
    def pid_dir(self) -> Path:
        return self.stack.config.run_dir / "variants"


@pytest.fixture
def variant_cli(make_stack, tmp_path, capsys, monkeypatch):
    try:
        stack = make_stack()
    except StartError:
        # make_stack picks free ports before its processes bind them; an outgoing connection
        # can take one of those ephemeral ports in between. Rare; a second set of ports does.
        stack = make_stack()
    cli = VariantCLI(stack, tmp_path / "params", capsys, monkeypatch)
    yield cli
    # whatever a failing test left running (the stack does not know these processes)
    local = LocalTarget(stack.config.run_dir)
    for pid_file in cli.pid_dir.glob("*/*.pid"):
        local.undeploy(pid_file.parent.name, pid_file.stem, Progress(quiet=True))
