"""The rendered email as a whole: DESIGN 6 headers, parse-back, footer, tracking, keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dripper.errors import ConfigError
from dripper.render import Renderer
from dripper.render.compiler import Mode
from dripper.tokens import Keyring, TokenKind, delivery_id
from tests.unit.test_render_support import (
    BASE_URL,
    NOW,
    POSTAL,
    SECRET,
    Campaign,
    Step,
    customer,
    make_config,
    make_renderer,
    parse,
    parts,
    render,
)

DESIGN_6 = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


def test_email_parses_back_with_every_design_6_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stdlib parser reads every header of DESIGN 6 back exactly, and both parts."""
    renderer = make_renderer(tmp_path, monkeypatch, mailto="unsubscribe@acme.test")
    mail = render(renderer)
    message = parse(mail.mime)
    for name in DESIGN_6:
        assert message[name], name
    assert message["From"] == "Acme Coffee <hello@acme.test>"
    assert message["To"] == "Zoë Ørsted <zoe@example.com>"
    assert message["Subject"] == "Welcome, Zoë!" == mail.subject
    assert message["Message-ID"] == f"<{mail.message_id}>"
    assert message["Date"].datetime == NOW
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    urls = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    assert urls[0].startswith(f"{BASE_URL}/u/")
    assert urls[1].startswith("mailto:unsubscribe@acme.test?subject=")
    assert message.get_content_type() == "multipart/alternative"
    assert not message.defects
    text, html = parts(mail.mime)
    assert text == mail.text
    assert html == mail.html


def test_mime_is_crlf_only_with_short_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every line ends in CRLF, no bare CR or LF, and no line reaches 998 octets."""
    long_name = "Zoë" * 400  # a value that would make a 1,200-character line unencoded
    mail = render(make_renderer(tmp_path, monkeypatch), who=customer(first_name=long_name))
    assert b"\r\n" in mail.mime
    assert b"\n" not in mail.mime.replace(b"\r\n", b"")
    assert b"\r" not in mail.mime.replace(b"\r\n", b"")
    assert max(len(line) for line in mail.mime.split(b"\r\n")) < 998
    assert parse(mail.mime)["Subject"] == f"Welcome, {long_name}!"


def test_message_id_is_the_callers_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Message-ID given is used as is, so a retry with the same id is the same email."""
    renderer = make_renderer(tmp_path, monkeypatch)
    message_id = renderer.new_message_id()
    assert re.fullmatch(r"[a-z2-7]{26}@acme\.test", message_id)
    first, again = (
        renderer.render(Campaign(), Step(), customer(), now=NOW, message_id=message_id)
        for _ in range(2)
    )
    assert first.mime == again.mime
    assert parse(first.mime)["Message-ID"] == f"<{message_id}>"


def test_escaping_keeps_a_script_name_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer named <script>alert(1)</script> appears as text in the HTML, never as a tag."""
    who = customer(first_name="<script>alert(1)</script>")
    mail = render(make_renderer(tmp_path, monkeypatch), who=who)
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert "<script>alert(1)</script>" in mail.text  # plain text needs no escaping
    assert "<script>alert(1)</script>" in parse(mail.mime)["Subject"]


def test_non_ascii_everywhere_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Non-ASCII subject, display names and bodies come back unchanged from the parser."""
    renderer = make_renderer(tmp_path, monkeypatch)
    who = customer(first_name="Σωκράτης 🎉", last_name="Ünal-李")
    mail = render(
        renderer, who=who, subjects=("Ça va, {{ customer.first_name }} ? — 10 % de réduction",)
    )
    message = parse(mail.mime)
    assert message["Subject"] == "Ça va, Σωκράτης 🎉 ? — 10 % de réduction"
    assert message["To"].addresses[0].display_name == "Σωκράτης 🎉 Ünal-李"
    text, html = parts(mail.mime)
    assert "Σωκράτης 🎉" in text
    assert "Σωκράτης 🎉" in html
    assert mail.mime.isascii()


def test_header_injection_through_customer_data_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CR/LF from customer data in a subject or a display name is refused, not sent."""
    from dripper.render import HeaderError

    renderer = make_renderer(tmp_path, monkeypatch)
    with pytest.raises(HeaderError, match="line break"):
        render(renderer, who=customer(first_name="Zoë\r\nBcc: victim@example.com"))
    with pytest.raises(HeaderError, match="line break"):
        render(renderer, who=customer(last_name="x\nBcc: victim@example.com"), subjects=("Hi",))


def test_auto_footer_added_when_the_template_lacks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template with no unsubscribe link and no address gets both, in HTML and text."""
    mail = render(make_renderer(tmp_path, monkeypatch), "bare.mjml")
    unsubscribe = re.findall(r"<([^>]+)>", parse(mail.mime)["List-Unsubscribe"])[0]
    assert mail.html.count(unsubscribe) == 1
    assert mail.html.count(POSTAL) == 1
    assert mail.text.count(unsubscribe) == 1
    assert mail.text.count(POSTAL) == 1
    assert mail.html.index(unsubscribe) < mail.html.index("</body>")


def test_auto_footer_not_duplicated_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template that shows both (the layout's footer) gets no second copy."""
    renderer = make_renderer(tmp_path, monkeypatch)
    mail = render(renderer)
    unsubscribe = re.findall(r"<([^>]+)>", parse(mail.mime)["List-Unsubscribe"])[0]
    assert mail.html.count(unsubscribe) == 1
    assert mail.html.count(POSTAL) == 1
    assert mail.text.count(unsubscribe) == 1
    assert mail.text.count(POSTAL) == 1
    assert renderer.template("welcome.mjml").html_always.unsubscribe  # proven at compile time


def test_footer_added_when_a_condition_hides_the_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unsubscribe link inside an `if` that is false for this customer still gets the footer."""
    template = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>{{ company.postal_address }}"
        '{% if customer.purchases > 5 %}<a href="{{ unsubscribe_url }}">Leave</a>{% endif %}'
        "</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    renderer = make_renderer(tmp_path, monkeypatch, {"hidden.mjml": template})
    few, many = (render(renderer, "hidden.mjml", customer(purchases=n)) for n in (1, 9))
    assert "Unsubscribe</a>" in few.html
    assert "Unsubscribe</a>" not in many.html
    assert few.html.count(POSTAL) == 1


def test_tracking_rewrites_links_adds_pixel_spares_unsubscribe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every http(s) link becomes a signed click URL for exactly that URL; mailto and the
    unsubscribe link are untouched; one open pixel is added."""
    renderer = make_renderer(tmp_path, monkeypatch)
    mail = render(renderer)
    keyring = Keyring.from_secret(SECRET)
    hrefs = re.findall(r'href="([^"]+)"', mail.html)
    clicks = [h for h in hrefs if h.startswith(f"{BASE_URL}/c/")]
    targets = {keyring.verify(h.rsplit("/", 1)[1], TokenKind.CLICK).url for h in clicks}
    assert targets == {
        "https://acme.test",
        "https://shop.test/new?from=email&step=hello",
        "https://shop.test/faq",
    }
    assert "mailto:help@shop.test" in hrefs
    unsubscribe = [h for h in hrefs if h.startswith(f"{BASE_URL}/u/")]
    assert len(unsubscribe) == 1
    payload = keyring.verify(unsubscribe[0].rsplit("/", 1)[1], TokenKind.UNSUBSCRIBE)
    assert payload.delivery_id == delivery_id(mail.message_id)
    assert not [h for h in hrefs if "shop.test/faq" in h]
    pixels = re.findall(rf'<img src="({BASE_URL}/o/[^"]+)"', mail.html)
    assert len(pixels) == 1
    assert keyring.verify(pixels[0].rsplit("/", 1)[1]).kind is TokenKind.OPEN
    assert "Read the FAQ (https://shop.test/faq)" in mail.text  # text keeps readable links


def test_tracking_off_leaves_links_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With opens and clicks off, links keep their URLs and there is no pixel."""
    mail = render(make_renderer(tmp_path, monkeypatch, opens=False, clicks=False))
    assert f"{BASE_URL}/c/" not in mail.html
    assert f"{BASE_URL}/o/" not in mail.html
    assert 'href="https://shop.test/faq"' in mail.html
    assert 'href="https://shop.test/new?from=email&amp;step=hello"' in mail.html
    assert f"{BASE_URL}/u/" in mail.html  # the unsubscribe URL is always signed


def test_tracking_can_be_switched_off_for_a_preview(tmp_path: Path) -> None:
    """`Renderer(..., tracking=False)` overrides the config: plain links, no pixel."""
    preview = Renderer(make_config(tmp_path), preview=True, tracking=False)
    html = render(preview).html
    assert f"{BASE_URL}/c/" not in html
    assert f"{BASE_URL}/o/" not in html
    assert 'href="https://shop.test/faq"' in html


def test_real_sends_need_the_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the secret a real renderer refuses to start; a preview uses the public key."""
    config = make_config(tmp_path)
    monkeypatch.delenv("DRIPPER_TEST_RENDER_SECRET", raising=False)
    with pytest.raises(ConfigError, match="DRIPPER_TEST_RENDER_SECRET is not set"):
        Renderer(config)
    preview = Renderer(config, preview=True)
    assert preview.keyring.is_preview
    assert "/u/preview." in render(preview).html


def test_preview_tokens_are_not_accepted_as_real(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link from a preview does not verify under the real key."""
    from dripper.tokens import TokenError

    preview = Renderer(make_config(tmp_path), preview=True)
    token = re.findall(r"/u/([^\"]+)", render(preview).html)[0]
    with pytest.raises(TokenError, match="unknown key id"):
        Keyring.from_secret(SECRET).verify(token)


def test_shipped_campaigns_render_completely(tmp_path: Path) -> None:
    """Every step of the scaffolded campaigns renders to a complete email, compiled once."""
    from dripper.campaigns.loader import load_campaigns
    from dripper.config import load_config

    scaffold = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
    if not (scaffold / "templates").is_dir():
        pytest.skip("no shipped templates yet")
    import shutil

    shutil.copytree(scaffold, tmp_path / "project")
    config = load_config(tmp_path / "project" / "config.toml")
    campaigns, problems = load_campaigns(config.campaigns_dir, config.templates_dir)
    assert not problems
    renderer = Renderer(config, preview=True)
    steps = 0
    for campaign in campaigns:
        for step in campaign.steps:
            if step.personal:
                continue  # a task: no email
            edition = campaign.editions[0] if campaign.editions else None
            mail = renderer.render(
                campaign, step, customer(), now=NOW, message_id=renderer.new_message_id(),
                edition=edition,
            )  # fmt: skip
            message = parse(mail.mime)
            assert all(message[name] for name in DESIGN_6 if name != "Reply-To")
            assert renderer.template(step.template).mode is Mode.COMPILED
            assert renderer.postal_address in mail.html
            assert renderer.postal_address in mail.text
            assert renderer.check(campaign, step, customer(), edition=edition) == []
            steps += 1
    assert steps >= 4


@pytest.mark.parametrize(
    "template",
    ["welcome.mjml", "bare.mjml", "with-text.mjml", "mj-include.mjml", "plain.html"],
)
def test_every_fixture_email_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    """Each good fixture template gives an email the stdlib parses without defects, with
    every DESIGN 6 header, both parts, the unsubscribe URL and the postal address."""
    mail = render(make_renderer(tmp_path, monkeypatch), template)
    message = parse(mail.mime)
    assert not message.defects
    assert all(message[name] for name in DESIGN_6)
    text, html = parts(mail.mime)
    unsubscribe = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])[0]
    for body in (text, html):
        assert unsubscribe in body
        assert POSTAL in body
