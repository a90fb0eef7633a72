"""Reading the steps that are not emails (DESIGN 16): `task:` with its `assignee` and `due`,
and `webhook: {url, body}`. Every problem is reported by file, line and key; what needs the
configuration (is the assignee one of `[tasks] people`, is the webhook's host allowed) is
`dripper.campaigns.personal`'s, run by `check` and before the daemon takes a version.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from jinja2 import TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from dripper.campaigns.model import Webhook, template_strings
from dripper.campaigns.yamlnodes import BAD, Entry, NodeReader
from dripper.settings_personal import PERSON
from dripper.timeparse import Span

WEBHOOK_KEYS = ("url", "body")
DEFAULT_DUE = Span.of(timedelta(days=2))
MAX_TASK = 2000  # characters of a task's template: a task is a line or two, not a letter

# Compiled here only to catch syntax errors when the campaign loads; the daemon compiles
# them again in its own sandbox (dripper.render.personal).
_TEXTS = SandboxedEnvironment(autoescape=False)


def compile_problem(source: str) -> str | None:
    """What keeps a task's or a webhook body's template from compiling, or None."""
    try:
        # Parsed, not compiled: the renderer's own filters (money, date) are unknown here;
        # `check` renders every task for the samples and finds a wrong filter name.
        _TEXTS.parse(source)
    except TemplateSyntaxError as exc:
        return f"does not compile: {exc.message}"
    except TemplateError as exc:
        return f"does not compile: {exc}"
    return None


def read_task(reader: NodeReader, entry: Entry) -> str | None:
    """`task: "Handwritten card to {{ customer.first_name }}"`: the template of the task."""
    text = reader.string(entry, what="the task (what the person is to do)")
    if text is None:
        return None
    text = text.strip()
    if not text:
        reader.problem(entry.line, entry.key, "the task is empty: say what the person is to do")
        return None
    if len(text) > MAX_TASK:
        reader.problem(entry.line, entry.key, f"a task is at most {MAX_TASK} characters")
        return None
    wrong = compile_problem(text)
    if wrong is not None:
        reader.problem(entry.line, entry.key, f"task {wrong}")
        return None
    return text


def read_assignee(reader: NodeReader, entry: Entry) -> str | None:
    return reader.string(
        entry,
        what="an assignee",
        pattern=PERSON,
        rule="a key of [tasks] people in config.toml, like owner",
    )


def read_due(reader: NodeReader, entry: Entry) -> Span | None:
    span = reader.span(entry)
    if span is not None and span.approx.total_seconds() <= 0:
        reader.problem(entry.line, entry.key, "due must be longer than 0 (e.g. 2d)")
        return None
    return span


def read_webhook(reader: NodeReader, entry: Entry) -> Webhook | None:
    """`webhook: {url: https://..., body: {...}}`: the URL checked for its form here (its
    host against `[webhooks] allowed_hosts` by `check`), every string of the body compiled."""
    fields = reader.mapping(entry, WEBHOOK_KEYS)
    if fields is None:
        return None
    if "url" not in fields:
        reader.problem(entry.line, f"{entry.key}.url", "missing 'url' (where to POST)")
        return None
    url = reader.string(fields["url"], what="a URL")
    if url is None:
        return None
    url = url.strip()
    wrong = url_problem(url)
    if wrong is not None:
        reader.problem(fields["url"].line, fields["url"].key, wrong)
        return None
    body: object = {}
    if "body" in fields:
        body = reader.data(fields["body"])
        if body is BAD:
            return None
        if not isinstance(body, dict):
            reader.problem(
                fields["body"].line, fields["body"].key, "expected a mapping (the JSON object)"
            )
            return None
        for where, source in template_strings(body):
            wrong = compile_problem(source)
            if wrong is not None:
                reader.problem(fields["body"].line, f"{fields['body'].key}.{where}", wrong)
                return None
    assert isinstance(body, dict)
    return Webhook(url, body, entry.line)


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL's form (not yet whether its host is allowed)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port out of range raises here)
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"expected an https:// URL, got {url!r}"
    if not parts.hostname.isascii():
        return (
            f"write the host {parts.hostname!r} in ASCII (its punycode, xn--...): it goes "
            "into the Host header and the TLS check as it is"
        )
    if parts.username is not None or parts.password is not None:
        return "no user or password in the URL: the request is signed ([webhooks] secret_env)"
    if "{{" in url or "{%" in url:
        return "the URL is not a template: put what varies in the body"
    return None


def body_shape(value: Any) -> Any:
    """The body as JSON can carry it (dates as ISO text): what `reader.data` read is YAML."""
    if isinstance(value, Mapping):
        return {str(k): body_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [body_shape(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
