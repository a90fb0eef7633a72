"""Reading SpamAssassin's report (`spamassassin -t`): the rules of its table, with scores."""

from __future__ import annotations

from dripper.cli.check_lint import parse_report

REPORT = """Content analysis details:   (1.2 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
-0.0 NO_RECEIVED            Informational: message has no Received headers
 0.5 SUBJ_ALL_CAPS          Subject is all capitals
 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color similar or
                            identical to background

The original message was not completely plain text, and may be unsafe to
"""


def test_the_table_is_read() -> None:
    """Each rule once with its score; a description's second line is no rule."""
    assert parse_report(REPORT) == [
        ("NO_RECEIVED", -0.0),
        ("SUBJ_ALL_CAPS", 0.5),
        ("HTML_FONT_LOW_CONTRAST", 0.7),
    ]


def test_no_table_no_rules() -> None:
    """A report without its table gives nothing."""
    assert parse_report("Content analysis details: (0 points)\n") == []
