"""docs/settings.md is what scripts/settings_doc.py renders from router/settings.py today."""

from __future__ import annotations

from dataclasses import fields

import pytest

from croupier.router.settings import Settings
from croupier.scripts import settings_doc


def table_rows(page: str) -> list[list[str]]:
    """The cells of the settings table's body rows (escaped pipes stay inside their cell)."""
    rows = []
    for line in page.splitlines():
        if line.startswith("| `CROUPIER_"):
            cells = [c.strip() for c in line.replace("\\|", "\0").strip("|").split("|")]
            rows.append([c.replace("\0", "|") for c in cells])
    return rows


def test_committed_page_is_a_fresh_render():
    committed = settings_doc.DOC.read_text(encoding="utf-8")
    assert committed == settings_doc.render(), (
        "docs/settings.md differs from router/settings.py: run python -m croupier.scripts.settings_doc")


def test_table_lists_every_field_of_settings_once_in_order():
    rows = table_rows(settings_doc.DOC.read_text(encoding="utf-8"))
    assert [row[0] for row in rows] == [f"`{f.metadata['env']}`" for f in fields(Settings)]
    assert all(len(row) == 3 for row in rows), [row[0] for row in rows if len(row) != 3]


def test_rows_carry_default_and_help():
    rows = {row[0].strip("`"): row for row in table_rows(settings_doc.render())}
    assert rows["CROUPIER_PORT"][1:] == ["`8000`", "Port the router listens on."]
    assert rows["CROUPIER_SECRET"][1] == "(unset)"
    assert rows["CROUPIER_COOKIE_SECURE"][1] == "`false`"
    assert "(long, [below](#croupier_bot_pattern))" == rows["CROUPIER_BOT_PATTERN"][1]
    assert "### `CROUPIER_BOT_PATTERN`\n\n```\nbot|crawl|" in settings_doc.render()


def test_cell_escapes_pipes_and_angle_brackets_outside_code():
    assert settings_doc.cell("'<country>;<city>' or `a|<b>`") == "'&lt;country&gt;;&lt;city&gt;' or `a\\|<b>`"


@pytest.fixture
def doc(tmp_path, monkeypatch):
    path = tmp_path / "docs" / "settings.md"
    monkeypatch.setattr(settings_doc, "ROOT", tmp_path)
    monkeypatch.setattr(settings_doc, "DOC", path)
    return path


def test_check_fails_on_a_stale_page_and_says_what_differs(doc, capsys):
    doc.parent.mkdir()
    doc.write_text(settings_doc.render().replace("CROUPIER_PORT", "CROUPIER_PROT"), encoding="utf-8")
    assert settings_doc.main(["--check"]) == 1
    out, err = capsys.readouterr()
    assert "-| `CROUPIER_PROT`" in out and "+| `CROUPIER_PORT`" in out
    assert "docs/settings.md is stale: run python -m croupier.scripts.settings_doc" in err
    assert "CROUPIER_PROT" in doc.read_text(encoding="utf-8")  # --check writes nothing


def test_write_then_check_passes(doc, capsys):
    assert settings_doc.main(["--check"]) == 1  # no page yet
    assert settings_doc.main([]) == 0
    assert doc.read_text(encoding="utf-8") == settings_doc.render()
    assert settings_doc.main(["--check"]) == 0
