"""`dripper check`'s linter through the command on each database (DESIGN 15): the shipped
project is clean under --strict; a careless template gets warnings naming its file, line
and rule (exit 0), --strict makes them problems (exit 1), --json gives each as an object."""

from __future__ import annotations

import json

from tests.cli.conftest import Project

CARELESS = """{% extends "layout.mjml" %}
{% block content %}
<mj-section>
  <mj-column>
    <mj-text font-size="10px" color="#cccccc">Tiny grey print</mj-text>
    <mj-image src="https://acme.test/bag.png" />
    <mj-text><a href="https://acme.test/offer">click here</a></mj-text>
  </mj-column>
</mj-section>
{% endblock %}
"""


def test_the_shipped_project_is_clean_under_strict(project: Project) -> None:
    """A fresh `dripper init` passes `check --strict` without a warning."""
    result = project.run("check", "--strict", "--no-spamassassin")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


def test_a_careless_template_is_linted(project: Project) -> None:
    """Small low-contrast text, an image without alt, "click here", no heading: each a
    warning with file, line and rule; exit 0, but 1 with --strict; --json as objects."""
    project.write("templates/thank-you.mjml", CARELESS)
    result = project.run("check", "--no-spamassassin")
    assert result.exit_code == 0, result.output
    for expected in (
        "templates/thank-you.mjml:5: small-text",
        "templates/thank-you.mjml:5: contrast",
        "templates/thank-you.mjml:6: img-alt",
        "templates/thank-you.mjml:7: link-text",
        "templates/thank-you.mjml: heading",
    ):
        assert expected in result.output, expected
    assert project.run("check", "--strict", "--no-spamassassin").exit_code == 1
    data = json.loads(project.run("check", "--json", "--no-spamassassin").output)
    linted = [w for w in data["warnings"] if w["rule"] == "img-alt"]
    assert linted == [
        {
            "file": "templates/thank-you.mjml",
            "line": 6,
            "campaign": "welcome",
            "step": "thank-you",
            "rule": "img-alt",
            "message": linted[0]["message"],
        }
    ]


def test_a_text_part_that_lost_its_body_is_a_problem(project: Project) -> None:
    """A .txt template that renders empty: a problem (exit 1), not a warning."""
    project.write("templates/thank-you.txt", "{% if false %}never{% endif %}\n")
    result = project.run("check", "--no-spamassassin")
    assert result.exit_code == 1
    assert "text-empty" in result.output


def test_spamassassin_scores_every_shipped_email_zero(project: Project) -> None:
    """With SpamAssassin (installed by `make test`): the shipped emails fire no rule that
    scores (local tests); a subject in capitals fires SUBJ_ALL_CAPS, named with its score,
    its campaign and step."""
    clean = project.run("check", "--strict")
    assert clean.exit_code == 0, clean.output
    assert "warning" not in clean.output
    path = project.root / "campaigns" / "welcome.yaml"
    text = path.read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith('subject: "Thank you'))
    path.write_text(text.replace(line, '    subject: "THANK YOU FOR YOUR ORDER"'))
    shouted = project.run("check")
    assert shouted.exit_code == 0, shouted.output
    assert "spamassassin: SUBJ_ALL_CAPS (+0.5) on 'THANK YOU FOR YOUR ORDER'" in shouted.output
    assert "(welcome/thank-you)" in shouted.output
