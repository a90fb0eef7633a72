"""The few pages a customer sees: the unsubscribe page (one button, no script), its done
state, the thank-you of a one-click answer, and a plain 404. Every value is escaped; the
pages need no JavaScript and load nothing from anywhere.
"""

from __future__ import annotations

import html

# A page can do nothing but show itself and post its own form.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
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
button{font:inherit;font-weight:600;color:#fff;background:#5b3a1e;border:0;border-radius:6px;
padding:.75rem 1.25rem;cursor:pointer;width:100%}
.small{font-size:.85rem;color:#6b6b6b}
"""


def mask(email: str) -> str:
    """`ada.lovelace@example.com` -> `a***e@example.com`: enough to recognise, not to copy."""
    local, _, domain = email.partition("@")
    shown = local[:1] + "***" if len(local) <= 2 else f"{local[0]}***{local[-1]}"
    return f"{shown}@{domain}"


def page(title: str, body: str, company: str) -> str:
    name = html.escape(company or "")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}"
        + (f"<p class='small'>{name}</p>" if name else "")
        + "</main></body></html>"
    )


def unsubscribe_form(company: str, email: str) -> str:
    """GET /u/: changes nothing (mail scanners GET every link); the button posts."""
    body = (
        "<h1>Unsubscribe?</h1>"
        f"<p>Stop all emails from {html.escape(company or 'us')} to "
        f"<strong>{html.escape(mask(email))}</strong>?</p>"
        "<form method='post'><button type='submit' name='confirm' value='yes'>"
        "Unsubscribe</button></form>"
    )
    return page("Unsubscribe", body, company)


def unsubscribed(company: str, email: str) -> str:
    body = (
        "<h1>You are unsubscribed</h1>"
        f"<p>{html.escape(mask(email))} will get no more emails from "
        f"{html.escape(company or 'us')}.</p>"
        "<p class='small'>Unsubscribed by mistake? Reply to any of our emails and we will "
        "add you back.</p>"
    )
    return page("Unsubscribed", body, company)


def thanks(company: str) -> str:
    body = "<h1>Thank you!</h1><p>We got your answer, and we read every one of them.</p>"
    return page("Thank you", body, company)


def not_found(company: str = "") -> str:
    body = "<h1>This link does not work</h1><p>It may be incomplete or out of date.</p>"
    return page("Not found", body, company)


def unavailable(company: str = "") -> str:
    body = "<h1>Please try again in a minute</h1><p>We could not save that just now.</p>"
    return page("Try again", body, company)
