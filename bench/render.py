"""Render N personalised MJML emails with tracked links to final MIME bytes, in one process.

    .venv/bin/python bench/render.py [--emails 5000] [--rounds 5] [--profile]

Writes a layout, a partial and a ~30 KB email (about 20 tracked links, a loop over
products, per-customer name, locale date and money) into a temporary templates folder,
then reports emails/s for the whole `Renderer.render` (context, subject, body, text,
links and tokens, footer check, MIME) and the cost of each stage measured on its own.
Target (DESIGN 11 / issue 3): 3,000 emails/s or more.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import os
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from dripper.config import load_config
from dripper.customers.model import Customer, Status
from dripper.render import Renderer
from dripper.render.compiler import Mode, run
from dripper.render.mime import Address, assemble, build_headers
from dripper.render.text import tidy
from dripper.tokens import delivery_id

LAYOUT = """<mjml>
  <mj-head>
    <mj-title>{% block title %}{{ company.name }}{% endblock %}</mj-title>
    <mj-preview>{% block preview %}{% endblock %}</mj-preview>
    <mj-attributes><mj-all font-family="Georgia, serif" /></mj-attributes>
    <mj-style>a { color: #6f4e37; }</mj-style>
  </mj-head>
  <mj-body background-color="#f6f1eb">
    <mj-section><mj-column><mj-text align="center" font-size="22px">
      <a href="{{ company.url }}">{{ company.name }}</a>
    </mj-text></mj-column></mj-section>
    {% block content %}{% endblock %}
    {% include "partials/footer.mjml" %}
  </mj-body>
</mjml>
"""

FOOTER = """<mj-section><mj-column><mj-text align="center" font-size="12px">
  {{ company.name }} · {{ company.postal_address }}<br />
  <a href="{{ unsubscribe_url }}">Unsubscribe</a> with one click.
</mj-text></mj-column></mj-section>
"""

PRODUCT = """
<mj-section>
  <mj-column><mj-image src="https://acme.test/img/{n}.jpg" alt="Coffee {n}"
    href="https://acme.test/p/{n}?utm_source=email&amp;utm_campaign=spring" /></mj-column>
  <mj-column>
    <mj-text font-size="18px" font-weight="bold">Single origin no. {n}</mj-text>
    <mj-text>Bright, sweet and round: roasted on Monday, at your door by Thursday.
      {{% if customer.favorite_coffee %}}Like your {{{{ customer.favorite_coffee }}}}, it
      shines in a filter.{{% endif %}}
      <a href="https://acme.test/origins/{n}">Where it grows</a>.</mj-text>
    <mj-button href="https://acme.test/cart/add/{n}">Add to cart</mj-button>
  </mj-column>
</mj-section>"""

EMAIL = (
    """{% extends "layout.mjml" %}
{% block title %}Spring coffees{% endblock %}
{% block preview %}New this spring, {{ customer.first_name }}{% endblock %}
{% block content %}
<mj-section><mj-column>
  <mj-text font-size="24px">Hello {{ customer.first_name }},</mj-text>
  <mj-text>Since {{ customer.first_purchase_at|date("long") }} you have spent
    {{ customer.total_spent|money }} with us: thank you. Here is what is new this spring.</mj-text>
  {% for tag in customer.tags %}<mj-text>Because you like {{ tag }}:</mj-text>{% endfor %}
</mj-column></mj-section>
"""
    + "".join(PRODUCT.format(n=n) for n in range(1, 7))
    + """
<mj-section><mj-column>
  <mj-button href="https://acme.test/shop?from=email">See all coffees</mj-button>
  <mj-text>Questions? Reply to this email, or read
    <a href="https://acme.test/faq">the FAQ</a>.</mj-text>
</mj-column></mj-section>
{% endblock %}
"""
)

CONFIG = """[sender]
from = "Acme Coffee <hello@acme.test>"
reply_to = "hello@acme.test"
postal_address = "1 Roastery Lane, Portland, OR 97201, USA"
unsubscribe_mailto = "unsubscribe@acme.test"

[company]
name = "Acme Coffee"
url = "https://acme.test"

[tracking]
base_url = "https://t.acme.test"
"""


@dataclass(frozen=True)
class Campaign:
    name: str = "spring"
    description: str = "Spring coffees"
    file: str = "campaigns/spring.yaml"


@dataclass(frozen=True)
class Step:
    id: str = "spring"
    subjects: tuple[str, ...] = ("{{ customer.first_name }}, spring coffees are here",)
    template: str = "spring.mjml"
    line: int = 1


def customers(n: int) -> list[Customer]:
    first = ["Ada", "Zoë", "Grace", "Linus", "Émile", "Björn"]
    locales = ["en-US", "de", "fr", "en-GB", "da"]
    zones = ["Europe/Berlin", "America/New_York", "Europe/London", "Asia/Tokyo"]
    return [
        Customer(
            id=i,
            email=f"customer{i}@example{i % 13}.test",
            first_name=first[i % len(first)],
            last_name=f"Lastname{i}",
            timezone=zones[i % len(zones)],
            locale=locales[i % len(locales)],
            tags=("espresso", "filter")[: i % 3],
            attributes={"favorite_coffee": "Kenya AA" if i % 2 else ""},
            status=Status.SUBSCRIBED,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            purchases=1 + i % 4,
            total_spent=Decimal("42.50") * (1 + i % 4),
            first_purchase_at=datetime(2026, 2, 1 + i % 27, 9, tzinfo=UTC),
        )
        for i in range(n)
    ]


def per_email(label: str, fn: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    cost = (time.perf_counter() - start) / n * 1e6
    print(f"  {label:<34} {cost:8.1f} us")
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the emails")
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile")
    args = parser.parse_args()

    os.environ.setdefault("DRIPPER_SECRET", "bench-secret-0123456789abcdef")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "templates" / "partials").mkdir(parents=True)
        (root / "templates" / "layout.mjml").write_text(LAYOUT)
        (root / "templates" / "partials" / "footer.mjml").write_text(FOOTER)
        (root / "templates" / "spring.mjml").write_text(EMAIL)
        (root / "config.toml").write_text(CONFIG)
        config = load_config(root / "config.toml")
        renderer = Renderer(config)
        campaign, step = Campaign(), Step()
        people = customers(args.emails)
        now = datetime(2027, 3, 1, 9, tzinfo=UTC)
        ids = [renderer.new_message_id() for _ in people]

        start = time.perf_counter()
        compiled = renderer.template(step.template)
        compile_ms = (time.perf_counter() - start) * 1e3
        sample = renderer.render(campaign, step, people[1], now=now, message_id=ids[0])
        print(f"template compiled once in {compile_ms:.1f} ms, mode: {compiled.mode.value}")
        assert compiled.mode is Mode.COMPILED, compiled.reason
        print(
            f"email: {len(sample.mime):,} bytes MIME, HTML {len(sample.html):,} chars, "
            f"{sample.html.count('/c/')} tracked links, text {len(sample.text):,} chars"
        )

        def render_all() -> None:
            for customer, message_id in zip(people, ids, strict=True):
                renderer.render(campaign, step, customer, now=now, message_id=message_id)

        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(render_all)
            pstats.Stats(profile).sort_stats("tottime").print_stats(18)
        render_all()  # warm caches (babel locales, zones)
        rounds = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            render_all()
            rounds.append(time.perf_counter() - start)
        best, median = min(rounds), statistics.median(rounds)
        print(
            f"\n{len(people):,} emails to MIME bytes, {args.rounds} rounds: "
            f"best {len(people) / best:,.0f} emails/s, median {len(people) / median:,.0f} emails/s"
        )
        print(f"  {'whole render (best round)':<34} {best / len(people) * 1e6:8.1f} us")

        print("stages, each measured alone (per email):")
        contexts = [
            renderer._context(
                campaign, step, c, now, sample.headers.value("List-Unsubscribe") or "", None
            )
            for c in people
        ]
        limits = renderer.limits
        assert compiled.html is not None
        assert compiled.text is not None
        assert compiled.links is not None
        html_t, text_t, plan = compiled.html, compiled.text, compiled.links
        per_email(
            "context (customer record)",
            lambda i: renderer._context(campaign, step, people[i], now, "u", None),
            len(people),
        )
        per_email(
            "subject (Jinja)", lambda i: renderer.subject(campaign, step, contexts[i]), len(people)
        )
        rendered = [run(html_t, contexts[i], limits) for i in range(len(people))]
        per_email(
            "HTML body (sandboxed Jinja)", lambda i: run(html_t, contexts[i], limits), len(people)
        )
        per_email(
            "text body (sandboxed Jinja)",
            lambda i: tidy(run(text_t, contexts[i], limits)),
            len(people),
        )
        dids = [delivery_id(m) for m in ids]
        per_email(
            "tokens (unsubscribe, open, 20 clicks)",
            lambda i: [
                renderer.keyring.sign_unsubscribe(dids[i]),
                renderer.keyring.sign_open(dids[i]),
                *(renderer.keyring.sign_click_encoded(dids[i], e) for e in plan.encoded),
            ],
            len(people),
        )

        def links(i: int) -> str:
            static, dynamic = renderer._signers(dids[i], plan.encoded, "u")
            return plan.fill(rendered[i], static=static, dynamic=dynamic, tail="")

        per_email("link rewrite incl. click tokens", links, len(people))
        if compiled.html_always.unsubscribe and compiled.html_always.address:
            print(f"  {'footer check':<34} {'0.0':>8} us  (proven at compile time: skipped)")
        else:
            per_email(
                "footer check (substring searches)",
                lambda i: ("/u/" in rendered[i], "Lane" in rendered[i]),
                len(people),
            )
        recipient = Address("Zoë Lastname", "zoe@example.test")
        headers = build_headers(
            sender=renderer.sender, recipient=recipient, subject="Zoë, spring coffees are here",
            date=now, message_id=ids[0], reply_to=renderer.reply_to, unsubscribe=["https://t.acme.test/u/x"],
        )  # fmt: skip
        per_email(
            "headers (From/To/Subject encoding)",
            lambda i: build_headers(
                sender=renderer.sender,
                recipient=recipient,
                subject="Zoë, spring coffees are here",
                date=now,
                message_id=ids[i],
                reply_to=renderer.reply_to,
                unsubscribe=["https://t.acme.test/u/x"],
            ),
            len(people),
        )
        per_email(
            "MIME assembly (QP text, base64 HTML)",
            lambda i: assemble(headers, "=_b", sample.text, sample.html),
            len(people),
        )

        # The alternative that compile-once replaces: Jinja first, then MJML on every email.
        slow = dataclasses.replace(compiled, mode=Mode.PER_EMAIL)
        renderer._templates[step.template] = (slow, time.monotonic() + 3600)
        few = people[: max(len(people) // 10, 50)]
        start = time.perf_counter()
        for customer, message_id in zip(few, ids, strict=False):
            renderer.render(campaign, step, customer, now=now, message_id=message_id)
        each = (time.perf_counter() - start) / len(few)
        print(
            f"alternative, MJML compiled per email: {1 / each:,.0f} emails/s ({each * 1e6:,.0f} us)"
        )


if __name__ == "__main__":
    main()
