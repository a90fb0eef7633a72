"""Tags and round trips through the real commands on each database (DESIGN 14): `customers
tag EMAIL +a -b` adds and removes, `customers add --tag` adds, and a phone number such as
`+34 600 ...` comes back from export -> import as it was."""

from __future__ import annotations

import json

from tests.cli.conftest import Project


def tags(project: Project, email: str) -> list[str]:
    shown = json.loads(project.run("customers", "show", email, "--json").output)
    found = shown["customer"]["tags"]
    assert isinstance(found, list)
    return found


def test_tag_adds_and_removes_and_add_adds(project: Project) -> None:
    """+TAG adds, -TAG removes (not read as an option), `add --tag` keeps what was there;
    a bad change or an unknown customer: exit 2 and nothing changed."""
    assert (
        project.run("customers", "add", "zed@example.com", "--tag", "a", "--tag", "b").exit_code
        == 0
    )
    result = project.run("customers", "tag", "zed@example.com", "+c", "-a")
    assert result.exit_code == 0, result.output
    assert tags(project, "zed@example.com") == ["b", "c"]
    assert project.run("customers", "add", "zed@example.com", "--tag", "d").exit_code == 0
    assert tags(project, "zed@example.com") == ["b", "c", "d"]
    bad = project.run("customers", "tag", "zed@example.com", "vip")
    assert bad.exit_code == 2
    assert "write +TAG to add a tag or -TAG to remove one" in bad.output
    assert project.run("customers", "tag", "nobody@example.com", "+x").exit_code == 2
    assert tags(project, "zed@example.com") == ["b", "c", "d"]


def test_export_then_import_keeps_a_phone_number(project: Project) -> None:
    """`+34 600 123 456` and `=cheap` survive export -> import (escaped in the file, read
    back unescaped), and the export's own columns become no attributes."""
    project.write(
        "people.csv", "email,phone,motto\nana@example.com,+34 600 123 456,=cheap\n"
    )  # fmt: skip
    assert project.run("customers", "import", "people.csv").exit_code == 0
    exported = project.run("customers", "export").output
    assert "'+34 600 123 456" in exported
    project.write("back.csv", exported)
    assert project.run("customers", "import", "back.csv").exit_code == 0
    shown = json.loads(project.run("customers", "show", "ana@example.com", "--json").output)
    assert shown["customer"]["attributes"] == {"phone": "+34 600 123 456", "motto": "=cheap"}
