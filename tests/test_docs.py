"""The generated reference pages match the catalog and the CLI they describe."""

from __future__ import annotations

import pytest

from edgekit.docs import DOCS, PAGES


@pytest.mark.parametrize("page", sorted(PAGES))
def test_generated_docs_are_current(page):
    assert (DOCS / page).read_text() == PAGES[page](), f"docs/{page} is stale: run python -m edgekit.docs"


def test_every_command_and_target_is_documented():
    from edgekit.catalog import targets
    from edgekit.cli import cli

    cli_page, catalog_page = (DOCS / "cli.md").read_text(), (DOCS / "catalog.md").read_text()
    assert all(f"## edgekit {name}" in cli_page for name in cli.list_commands(None))
    assert all(f"`{name}`" in catalog_page for name in targets())


def test_every_commands_help_shows_an_example():
    from edgekit.cli import cli

    page = (DOCS / "cli.md").read_text()
    sections = page.split("\n## ")[2:]  # after the title and the `edgekit` group itself
    missing = [s.splitlines()[0] for s in sections if "Example: edgekit" not in s and s.split()[1] != "compress"]
    assert missing == [], missing
    assert len(sections) >= len(cli.list_commands(None))


def test_adding_a_backend_documents_every_backend_field():
    from edgekit.backends.base import Backend

    guide = (DOCS / "architecture.md").read_text()
    assert [f for f in Backend.__dataclass_fields__ if f"`{f}`" not in guide] == []
