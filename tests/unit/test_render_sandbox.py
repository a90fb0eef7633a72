"""The sandbox: public escape payloads fail, hostile templates stop fast and small."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from dripper.render import LimitError, Renderer, RenderError
from tests.unit.test_render_support import NOW, Campaign, Step, customer, make_renderer, render

PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ customer.__class__.__init__.__globals__ }}",
    "{{ customer._data }}",
    "{{ company._data['postal_address'].__class__ }}",
    "{{ '{0.__class__.__mro__}'.format(customer) }}",
    "{{ '{0._data}'.format(customer) }}",
    "{{ 'x'.format_map }}{{ '{a.__class__}'.format_map({'a': customer}) }}",
    "{{ ('{0.__class__}'|attr('format'))(1) }}",
    "{{ (customer|attr('__class__')) }}",
    "{{ request }}{{ config }}",
    "{{ range.__globals__ }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{% set x = customer.tags.append('owned') %}{{ customer.tags }}",
    "{{ now.__class__.__subclasses__() }}",
    "{{ unsubscribe_url.__class__.__base__.__subclasses__() }}",
]


def _mjml(body: str) -> str:
    return (
        "<mjml><mj-body><mj-section><mj-column><mj-text>"
        + body
        + "</mj-text></mj-column></mj-section></mj-body></mjml>"
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sandbox_escape_payloads_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: str
) -> None:
    """Each public Jinja2 sandbox-escape payload is stopped with a RenderError, leaking nothing."""
    renderer = make_renderer(tmp_path, monkeypatch, {"evil.mjml": _mjml(payload)})
    with pytest.raises(RenderError) as caught:
        render(renderer, "evil.mjml")
    assert caught.value.file == "templates/evil.mjml"
    message = caught.value.message
    assert "refused by the sandbox" in message or message.endswith("is undefined"), message
    for leak in ("uid=", "<class", "subprocess", "test-secret", "/work"):
        assert leak not in message


def test_secret_and_environment_are_out_of_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing in the context leads to the token secret or the environment."""
    probe = "{% for k in company %}{{ k }}={{ company[k] }};{% endfor %}|{{ campaign.name }}"
    renderer = make_renderer(tmp_path, monkeypatch, {"probe.mjml": _mjml(probe)})
    html = render(renderer, "probe.mjml").html
    assert "test-secret" not in html
    assert "DRIPPER" not in html


@pytest.mark.parametrize(
    "hostile",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% set xs = range(100000)|list %}"
        "{% for a in xs %}{% for b in xs %}{% endfor %}{% endfor %}",
        "{{ 'x' * 10**9 }}",
        "{{ 'x' * 1000000 * 1000 }}",
        "{{ 7 ** 99999999 }}",
        "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
        "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}"
        "{% endmacro %}{{ d('ab', 60) }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '%999999999s' % 'x' }}",
        "{{ 'x'|center(999999999) }}",
        "{{ ('x\n' * 100000)|indent(10000) }}",
        "{{ ('x' * 100000)|replace('x', 'y' * 100000) }}",
        "{{ range(100000)|join('z' * 100000) }}",
        "{{ 'x'.ljust(999999999) }}",
        "{% set x %}{% for i in range(100000) %}{% for j in range(100) %}abcdefghij{% endfor %}"
        "{% endfor %}{% endset %}{{ x|length }}",
    ],
)
def test_hostile_templates_stop_fast_and_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: str
) -> None:
    """Endless loops, huge strings and huge outputs stop with a clear error in about a
    second, without the process growing by more than a few tens of megabytes."""
    renderer = make_renderer(tmp_path, monkeypatch, {"hostile.mjml": _mjml(hostile)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(RenderError) as caught:
        render(renderer, "hostile.mjml")
    elapsed = time.monotonic() - start
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert elapsed < 3.0, f"took {elapsed:.1f} s"
    assert grown_mb < 100, f"grew by {grown_mb:.0f} MB"
    assert caught.value.file == "templates/hostile.mjml"
    assert (
        isinstance(caught.value, LimitError)
        or "too large" in str(caught.value)
        or ("recursion" in str(caught.value).lower())
    )


def test_a_large_but_honest_email_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits leave room for real emails: 2,000 loop rows of products render fine."""
    body = "{% for i in range(2000) %}<p>Row {{ i }} for {{ customer.first_name }}</p>{% endfor %}"
    renderer = make_renderer(tmp_path, monkeypatch, {"big.mjml": _mjml(body)})
    assert render(renderer, "big.mjml").html.count("for Zoë</p>") == 2000


def test_limits_are_per_renderer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tighter time limit on the Renderer applies to its renders."""
    from dripper.render import Limits

    body = "{% for i in range(100000) %}{% for j in range(20) %}{{ j }}{% endfor %}{% endfor %}"
    monkeypatch.setenv("DRIPPER_TEST_RENDER_SECRET", "test-secret-0123456789abcdefghij")
    base = make_renderer(tmp_path, monkeypatch, {"slow.mjml": _mjml(body)})
    renderer = Renderer(base.config, limits=Limits(seconds=0.05, output_chars=10**9))
    start = time.monotonic()
    with pytest.raises(LimitError):
        renderer.render(Campaign(), Step(template="slow.mjml"), customer(), now=NOW,
                        message_id=renderer.new_message_id())  # fmt: skip
    assert time.monotonic() - start < 1.0
