"""The inbound classifier's rules for mail people (and their autoresponders) write, one by
one, on small hand-made messages: each decision the module docstring of
`dripper.engine.inbound` writes down is pinned here (reports: test_inbound_reports.py)."""

from __future__ import annotations

import pytest

from dripper.engine.inbound import (
    DeliveryRef,
    InboundClass,
    Known,
    Verdict,
    classify,
    parse_inbound,
)

RETURN_PATH = "bounces@bounce.acme.test"
MAILTO = "unsubscribe@acme.test"
ADA = DeliveryRef(
    "q7m3xk2vbn4wy6hzc5tdpl2ra4",
    "q7m3xk2vbn4wy6hzc5tdpl2ra4@acme.test",
    1,
    "ada@example.org",
    "welcome",
    "thank-you",
)
BOB = DeliveryRef(
    "b2cn5vx7mz3lq4wk6rt2yh5jda",
    "b2cn5vx7mz3lq4wk6rt2yh5jda@acme.test",
    2,
    "bob@example.com",
    "welcome",
    "tips",
)
KNOWN = Known.of([ADA, BOB])


def mail(*headers: str, body: str = "Hello,\n\nThanks!\n") -> bytes:
    """A raw message: these header lines, a blank line, the body."""
    return ("\r\n".join(headers) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def verdict(raw: bytes, *, mailto: str | None = MAILTO) -> Verdict:
    return classify(parse_inbound(raw, return_path=RETURN_PATH), KNOWN, unsubscribe_mailto=mailto)


REPLY_TO_ADA = (
    "From: Ada <ada@example.org>",
    "To: hello@acme.test",
    f"In-Reply-To: <{ADA.message_id}>",
)


# --- auto-replies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Welcome",
        "Automatic reply: Welcome",
        "Auto-reply: Welcome",
        "Autoreply: Welcome",
        "Away from the office until Monday",
        "On vacation",
        "Abwesenheitsnotiz: Willkommen",
        "Automatische Antwort: Willkommen",
        "Réponse automatique : Bienvenue",
        "Absent du bureau",
        "Respuesta automática: Hola",
        "Fuera de la oficina",
        "Afwezig: Welkom",
        "Automatisch antwoord: Welkom",
        "Risposta automatica: Benvenuto",
        "Fuori sede",
        "Resposta automática: Olá",
        "Ausente: Olá",
    ],
)
def test_out_of_office_subjects_are_auto_replies(subject: str) -> None:
    """An out-of-office subject in each language is an auto-reply, still matched to our email."""
    found = verdict(mail(*REPLY_TO_ADA, f"Subject: {subject}"))
    assert (found.kind, found.delivery) == (InboundClass.AUTO_REPLY, ADA)


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated",
        "Auto-Submitted: auto-notified; owner-email=x@example.org",
        "X-Autoreply: yes",
        "X-Autorespond: Thanks",
        "X-Autoresponder: on",
        "Precedence: auto_reply",
        "Precedence: bulk",
        "Precedence: junk",
        "Precedence: list",
        "Return-Path: <>",
    ],
)
def test_auto_reply_headers_make_an_auto_reply(header: str) -> None:
    """Each auto-reply header marks the message, and it is never a reply."""
    assert (
        verdict(mail(*REPLY_TO_ADA, header, "Subject: Re: Welcome")).kind is InboundClass.AUTO_REPLY
    )


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.example",
        "postmaster@example.org",
        "no-reply@example.org",
        "noreply@example.org",
        "do-not-reply@example.org",
        "noreply-dmarc-support@google.com",
    ],
)
def test_daemon_and_no_reply_senders_are_auto_replies(sender: str) -> None:
    """Mailer-daemons and no-reply senders answering our Message-ID are auto-replies."""
    raw = mail(
        f"From: {sender}",
        "To: hello@acme.test",
        f"In-Reply-To: <{ADA.message_id}>",
        "Subject: Re: Welcome",
    )
    assert verdict(raw).kind is InboundClass.AUTO_REPLY


def test_x_auto_response_suppress_alone_is_no_auto_reply() -> None:
    """Outlook puts X-Auto-Response-Suppress on mail people write: it marks nothing."""
    found = verdict(mail(*REPLY_TO_ADA, "X-Auto-Response-Suppress: All", "Subject: Re: Welcome"))
    assert (found.kind, found.weak) == (InboundClass.REPLY, False)


def test_auto_submitted_no_is_a_person() -> None:
    """RFC 3834: `Auto-Submitted: no` is what a person's mail says."""
    assert (
        verdict(mail(*REPLY_TO_ADA, "Auto-Submitted: no", "Subject: Re: Hi")).kind
        is InboundClass.REPLY
    )


def test_an_auto_reply_phrase_inside_a_subject_is_no_auto_reply() -> None:
    """Only a subject starting with the phrase is an out-of-office: "Re: Away from..." is not."""
    found = verdict(mail(*REPLY_TO_ADA, "Subject: Re: Away from home? Try our travel tins"))
    assert found.kind is InboundClass.REPLY


# --- replies -----------------------------------------------------------------------------------


def test_a_reply_from_another_address_is_not_the_customers() -> None:
    """Our Message-ID to Ada quoted from another address (a colleague she forwarded it to,
    her other address, a stranger) is no reply of Ada's: unmatched, the mismatch said."""
    raw = mail(
        "From: ada.work@corp.example", "To: hello@acme.test", f"References: <{ADA.message_id}>"
    )
    found = verdict(raw)
    assert (found.kind, found.delivery, found.address, found.weak) == (
        InboundClass.UNMATCHED,
        None,
        "ada.work@corp.example",
        False,
    )
    assert f"quotes References <{ADA.message_id}>" in found.reason
    assert "sent to another address" in found.reason


def test_a_reply_from_the_address_with_a_tag_or_capitals_is_the_customers() -> None:
    """Case and a +tag aside, the sender is the address the email went to: Ada's reply."""
    for sender in ("ADA@Example.ORG", "ada+shop@example.org"):
        found = verdict(mail(f"From: {sender}", "To: hello@acme.test", *REPLY_TO_ADA[2:]))
        assert (found.kind, found.delivery, found.weak) == (InboundClass.REPLY, ADA, False)


def test_a_customer_quoting_another_customers_email_is_their_own_weak_reply() -> None:
    """Bob answers with Ada's Message-ID (she forwarded it to him): not Ada's reply, but
    Bob had an email from us, so it is Bob's, weakly, as mail from him without a thread."""
    found = verdict(mail("From: bob@example.com", "To: hello@acme.test", *REPLY_TO_ADA[2:]))
    assert (found.kind, found.delivery, found.weak) == (InboundClass.REPLY, BOB, True)
    assert "not theirs" in found.reason


def test_a_reply_without_a_sender_is_nobodys() -> None:
    """Our Message-ID in In-Reply-To but no From: no customer can be told, unmatched."""
    found = verdict(mail("To: hello@acme.test", *REPLY_TO_ADA[2:]))
    assert (found.kind, found.delivery) == (InboundClass.UNMATCHED, None)


def test_a_bare_in_reply_to_still_names_our_message() -> None:
    """Some clients write In-Reply-To without angle brackets."""
    raw = mail("From: bob@example.com", "To: hello@acme.test", f"In-Reply-To: {BOB.message_id}")
    assert verdict(raw).delivery == BOB


def test_a_gmail_forward_that_kept_references_is_a_strong_reply() -> None:
    """A customer forwarding our email to us is talking to us."""
    raw = mail(
        "From: Bob <bob@example.com>",
        "To: hello@acme.test",
        "Subject: Fwd: Three tips",
        f"References: <{BOB.message_id}>",
        f"In-Reply-To: <{BOB.message_id}>",
        body="Look at this.\n\n---------- Forwarded message ---------\nFrom: Acme\n",
    )
    inbound = parse_inbound(raw, return_path=RETURN_PATH)
    assert (inbound.text, inbound.quoted.splitlines()[0]) == (
        "Look at this.",
        "---------- Forwarded message ---------",
    )
    assert classify(inbound, KNOWN).kind is InboundClass.REPLY


def test_mailing_list_mail_from_a_customer_is_no_weak_reply() -> None:
    """List-Id without thread headers: written to a list, not to us."""
    raw = mail(
        "From: bob@example.com",
        "To: hello@acme.test",
        "List-Id: <teas.lists.example>",
        "Subject: Hi",
    )
    assert verdict(raw).kind is InboundClass.UNMATCHED


def test_html_only_replies_are_read_as_text() -> None:
    """A reply without a text part is read from its HTML."""
    raw = mail(
        *REPLY_TO_ADA,
        "Content-Type: text/html; charset=utf-8",
        body="<p>Yes&nbsp;please!</p><p>Ada</p>",
    )
    assert parse_inbound(raw).text == "Yes please!\nAda"


def test_an_mbox_from_line_is_tolerated() -> None:
    """An MTA pipe may hand over the mbox `From ` line first; the message still parses."""
    raw = b"From ada@example.org  Mon Mar  1 09:00:00 2027\n" + mail(*REPLY_TO_ADA)
    assert verdict(raw).delivery == ADA


# --- unsubscribe -----------------------------------------------------------------------------


def test_a_mail_to_the_unsubscribe_address_unsubscribes_the_sender() -> None:
    """The address matches case-insensitively and belongs to the sender's recent delivery."""
    raw = mail("From: Bob <BOB@example.com>", "To: <UNSUBSCRIBE@Acme.Test>", "Subject: unsubscribe")
    found = verdict(raw, mailto="mailto:unsubscribe@acme.test?subject=unsubscribe")
    assert (found.kind, found.delivery, found.address, found.weak) == (
        InboundClass.UNSUBSCRIBE,
        BOB,
        BOB.email,
        True,
    )


def test_an_automated_unsubscribe_request_still_unsubscribes() -> None:
    """The mail client writes the List-Unsubscribe mail; marked auto-generated, it counts."""
    raw = mail(
        "From: bob@example.com",
        f"To: {MAILTO}",
        "Auto-Submitted: auto-generated",
        f"Subject: unsubscribe {BOB.delivery_id}",
    )
    found = verdict(raw)
    assert (found.kind, found.delivery, found.weak) == (InboundClass.UNSUBSCRIBE, BOB, False)


def test_an_unsubscribe_naming_someone_elses_delivery_unsubscribes_only_the_sender() -> None:
    """A delivery id in the subject counts only when that delivery went to the sender."""
    raw = mail(
        "From: mallory@evil.example", f"To: {MAILTO}", f"Subject: unsubscribe {ADA.delivery_id}"
    )
    found = verdict(raw)
    assert (found.kind, found.delivery, found.address) == (
        InboundClass.UNSUBSCRIBE,
        None,
        "mallory@evil.example",
    )


def test_without_an_unsubscribe_address_nothing_is_an_unsubscribe() -> None:
    """With no `unsubscribe_mailto` configured, the same mail is a customer's (weak) mail."""
    found = verdict(mail("From: bob@example.com", f"To: {MAILTO}", "Subject: stop"), mailto=None)
    assert (found.kind, found.weak) == (InboundClass.REPLY, True)
