"""The pages a customer or a reader sees, in their language (dripper.i18n): the signup page
and its answers, the confirm page (one button: a GET changes nothing), the preference page
(topics and "stop all email"), its done states, the thank-you of a one-click answer, and
plain error pages. Every value is escaped; no page loads anything from anywhere else, and
only the signup page runs a script (its proof of work, served by `serve` itself).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from dripper.i18n import Words, words

EN = words("en")

# A page can do nothing but show itself and post its own form.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# The signup page may run its one script, from `serve` itself, to solve the challenge.
SIGNUP_CSP = CSP.replace(
    "default-src 'none';", "default-src 'none'; script-src 'self'; connect-src 'self';"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",  # a token must never travel in a Referer
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_STYLE = """
body{margin:0;background:#f4f1ec;font:16px/1.5 -apple-system,'Segoe UI',Roboto,Arial,sans-serif;
color:#2b2b2b}
main{max-width:30rem;margin:12vh auto;padding:2rem 1.5rem;background:#fff;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
h1{font-size:1.35rem;margin:0 0 1rem}
p{margin:0 0 1rem}
label{display:block;margin:0 0 .75rem}
input[type=email],input[type=text]{font:inherit;width:100%;box-sizing:border-box;padding:.6rem;
border:1px solid #8a8a8a;border-radius:6px;margin-top:.25rem}
fieldset{border:0;margin:0 0 1rem;padding:0}
legend{font-weight:600;margin-bottom:.5rem}
.check{display:flex;gap:.5rem;align-items:flex-start}
button{font:inherit;font-weight:600;color:#fff;background:#5b3a1e;border:0;border-radius:6px;
padding:.75rem 1.25rem;cursor:pointer;width:100%;margin-bottom:.5rem}
button.quiet{color:#5b3a1e;background:#fff;border:1px solid #5b3a1e}
.small{font-size:.9rem;color:#555}
.trap{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}
"""


def mask(email: str) -> str:
    """`ada.lovelace@example.com` -> `a***e@example.com`: enough to recognise, not to copy."""
    local, _, domain = email.partition("@")
    shown = local[:1] + "***" if len(local) <= 2 else f"{local[0]}***{local[-1]}"
    return f"{shown}@{domain}"


def page(title: str, body: str, company: str, t: Words = EN, *, script: str = "") -> str:
    name = html.escape(company or "")
    return (
        f"<!doctype html><html lang='{t.lang}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        + (f"<script src='{html.escape(script)}' defer></script>" if script else "")
        + f"</head><body><main>{body}"
        + (f"<p class='small'>{name}</p>" if name else "")
        + "</main></body></html>"
    )


def _para(t: Words, message: str, *, small: bool = False) -> str:
    """One translated paragraph, escaped."""
    opening = "<p class='small'>" if small else "<p>"
    return f"{opening}{html.escape(t(message))}</p>"


def _us(company: str, t: Words) -> str:
    return html.escape(company or t("us"))


# --- unsubscribe and preferences -----------------------------------------------------------


def unsubscribe_form(company: str, email: str, t: Words = EN) -> str:
    """GET /u/ without topics: changes nothing (mail scanners GET every link); the button
    posts."""
    body = (
        f"<h1>{html.escape(t('Unsubscribe?'))}</h1>"
        "<p>"
        + t(
            "Stop all emails from {company} to {address}?",
            company=_us(company, t),
            address=f"<strong>{html.escape(mask(email))}</strong>",
        )
        + "</p>"
        "<form method='post'><button type='submit' name='action' value='stop'>"
        f"{html.escape(t('Unsubscribe'))}</button></form>"
    )
    return page(t("Unsubscribe"), body, company, t)


def preferences(
    company: str,
    email: str,
    topics: Sequence[tuple[str, str, bool]],
    t: Words = EN,
) -> str:
    """GET /u/ with [topics]: each topic a checkbox (name, label, kept), "save" and "stop
    all email". Changes nothing until a button posts."""
    boxes = "".join(
        f"<label class='check'><input type='checkbox' name='topics' value='{html.escape(name)}'"
        + (" checked" if kept else "")
        + f"> {html.escape(label)}</label>"
        for name, label, kept in topics
    )
    body = (
        f"<h1>{html.escape(t('Your email preferences'))}</h1>"
        "<p>"
        + t(
            "Choose what {company} sends to {address}.",
            company=_us(company, t),
            address=f"<strong>{html.escape(mask(email))}</strong>",
        )
        + "</p>"
        "<form method='post'>"
        f"<fieldset><legend>{html.escape(t('Topics'))}</legend>{boxes}</fieldset>"
        "<button type='submit' name='action' value='save'>"
        f"{html.escape(t('Save my choice'))}</button>"
        "<button type='submit' class='quiet' name='action' value='stop'>"
        f"{html.escape(t('Stop all email'))}</button></form>"
    )
    return page(t("Your email preferences"), body, company, t)


def saved(company: str, t: Words = EN) -> str:
    body = f"<h1>{html.escape(t('Your choice is saved'))}</h1>" + _para(
        t, "You will get only the topics you kept."
    )
    return page(t("Your choice is saved"), body, company, t)


def unsubscribed(company: str, email: str, t: Words = EN) -> str:
    body = (
        f"<h1>{html.escape(t('You are unsubscribed'))}</h1>"
        "<p>"
        + t(
            "{address} will get no more emails from {company}.",
            address=html.escape(mask(email)),
            company=_us(company, t),
        )
        + "</p>"
        + _para(
            t,
            "Unsubscribed by mistake? Sign up again on our site: only you can undo this.",
            small=True,
        )
    )
    return page(t("Unsubscribed"), body, company, t)


def thanks(company: str, t: Words = EN) -> str:
    body = f"<h1>{html.escape(t('Thank you!'))}</h1>" + _para(
        t, "We got your answer, and we read every one of them."
    )
    return page(t("Thank you"), body, company, t)


def not_found(company: str = "", t: Words = EN) -> str:
    body = f"<h1>{html.escape(t('This link does not work'))}</h1>" + _para(
        t, "It may be incomplete or out of date."
    )
    return page(t("Not found"), body, company, t)


def unavailable(company: str = "", t: Words = EN) -> str:
    body = f"<h1>{html.escape(t('Please try again in a minute'))}</h1>" + _para(
        t, "We could not save that just now."
    )
    return page(t("Try again"), body, company, t)


# --- signing up ------------------------------------------------------------------------------


def signup_form(
    company: str,
    *,
    form_id: str,
    consent_text: str,
    topics: Sequence[tuple[str, str]],
    honeypot: str,
    challenge_url: str,
    t: Words = EN,
) -> str:
    """GET /subscribe: the shop's own plain signup page. Works without JavaScript unless
    proof of work is on (`challenge_url`: the script solves it before the form posts)."""
    boxes = "".join(
        f"<label class='check'><input type='checkbox' name='topics' value='{html.escape(n)}'"
        f" checked> {html.escape(label)}</label>"
        for n, label in topics
    )
    pow_attr = f" data-dripper-pow='{html.escape(challenge_url)}'" if challenge_url else ""
    title = t("Subscribe to {company}", company=company or t("our newsletter"))
    body = (
        f"<h1>{html.escape(title)}</h1>"
        f"<form method='post' action='/subscribe'{pow_attr}>"
        f"<input type='hidden' name='form' value='{html.escape(form_id)}'>"
        f"<label>{html.escape(t('Email address'))}"
        "<input type='email' name='email' required maxlength='254' autocomplete='email'></label>"
        f"<label>{html.escape(t('First name (optional)'))}"
        "<input type='text' name='first_name' maxlength='100' autocomplete='given-name'></label>"
        + (
            f"<fieldset><legend>{html.escape(t('Topics'))}</legend>{boxes}</fieldset>"
            if topics
            else ""
        )
        + f"<div class='trap' aria-hidden='true'><label>{html.escape(t('Leave this empty'))}"
        f"<input type='text' name='{html.escape(honeypot)}' tabindex='-1' autocomplete='off'>"
        "</label></div>"
        f"<p class='small'>{html.escape(consent_text)}</p>"
        f"<button type='submit'>{html.escape(t('Subscribe'))}</button></form>"
    )
    return page(
        t("Subscribe"), body, company, t, script="/subscribe/pow.js" if challenge_url else ""
    )


def check_inbox(company: str, t: Words = EN) -> str:
    body = f"<h1>{html.escape(t('Check your inbox'))}</h1>" + _para(
        t,
        "If the address can receive our emails, a message with a link to "
        "confirm is on its way. Nothing is sent to you until you confirm.",
    )
    return page(t("Check your inbox"), body, company, t)


def signup_refused(company: str, message: str, t: Words = EN) -> str:
    body = f"<h1>{html.escape(t('Please check the form'))}</h1><p>{html.escape(message)}</p>"
    return page(t("Please check the form"), body, company, t)


def too_many(company: str, t: Words = EN) -> str:
    body = f"<h1>{html.escape(t('Too many signups'))}</h1>" + _para(
        t, "Too many signups came from your network. Please try again in an hour."
    )
    return page(t("Too many signups"), body, company, t)


def confirm_form(company: str, email: str, t: Words = EN) -> str:
    """GET /s/: one button, and nothing changes until it is pressed."""
    body = (
        f"<h1>{html.escape(t('Confirm your subscription'))}</h1>"
        "<p>"
        + t(
            "Confirm that {address} wants emails from {company}.",
            address=f"<strong>{html.escape(mask(email))}</strong>",
            company=_us(company, t),
        )
        + "</p>"
        "<form method='post'><button type='submit' name='confirm' value='yes'>"
        f"{html.escape(t('Confirm'))}</button></form>"
    )
    return page(t("Confirm your subscription"), body, company, t)


def confirmed(company: str, t: Words = EN) -> str:
    body = f"<h1>{html.escape(t('You are subscribed'))}</h1>" + _para(
        t, "Thank you for confirming. Every email has a link to change what you get or to stop."
    )
    return page(t("You are subscribed"), body, company, t)


def expired(company: str, t: Words = EN) -> str:
    body = f"<h1>{html.escape(t('This link has expired'))}</h1>" + _para(
        t, "Please sign up again: you will get a new link."
    )
    return page(t("This link has expired"), body, company, t)


def task_form(company: str, task: str, about: str, due: str, t: Words = EN) -> str:
    """A task from a person's digest: what it is, and one button (a GET changes nothing,
    so a mail scanner following the link closes nothing)."""
    body = (
        f"<h1>{html.escape(t('A task for you'))}</h1>"
        f"<p><strong>{html.escape(task)}</strong></p>"
        f"<p class='small'>{html.escape(about)} · {html.escape(t('due {date}', date=due))}</p>"
        "<form method='post'>"
        f"<label>{html.escape(t('Note for the customer sheet (optional)'))}"
        "<input type='text' name='note' maxlength='2000'></label>"
        f"<button type='submit'>{html.escape(t('Mark as done'))}</button></form>"
    )
    return page(t("A task for you"), body, company, t)


def task_closed(company: str, status: str, t: Words = EN) -> str:
    """After the button ("done"), or a link to a task closed before ("closed")."""
    message = t("Done. Thank you!") if status == "done" else t("This task is closed already.")
    return page(t("A task for you"), f"<h1>{html.escape(message)}</h1>", company, t)
