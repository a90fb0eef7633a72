"""The words inbound mail is recognised by: auto-reply subjects and senders, bounce
subjects, failure wording, quoted text. Pure text in, facts out; every pattern is compiled
once, at import, and none of them can backtrack catastrophically (no nested repeats).
"""

from __future__ import annotations

import html
import re

from dripper.engine.inbound_facts import Severity

# --- auto-replies --------------------------------------------------------------------------

# Anchored at the start of the subject on purpose: "Re: Away from home? 20% off" is a person
# answering our email whose subject happened to say "Away from"; an out-of-office puts its
# phrase first ("Automatic reply: ...", "Abwesenheitsnotiz: ...").
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:"
    r"out\s+of\s+(?:the\s+)?office|automatic\s+reply|auto[-\s]?reply|auto[-\s]?response"
    r"|away\s+from|on\s+vacation|vacation\s+reply"
    r"|abwesenheitsnotiz|automatische\s+antwort|abwesend"  # German
    r"|r[ée]ponse\s+automatique|absente?\b"  # French
    r"|respuesta\s+autom[áa]tica|fuera\s+de\s+la\s+oficina"  # Spanish
    r"|afwezig|automatisch\s+antwoord"  # Dutch
    r"|risposta\s+automatica|fuori\s+(?:sede|ufficio)"  # Italian
    r"|resposta\s+autom[áa]tica|ausente\b"  # Portuguese (and Spanish "ausente")
    r"|autosvar|automatisk\s+svar"  # Scandinavian
    r")",
    re.IGNORECASE,
)

# Local parts that never belong to a person who answers: daemons and no-reply senders,
# with the decorations they get ("noreply-dmarc-support", "no_reply+123").
_AUTOMATED_LOCAL = re.compile(
    r"(?:mailer[-_]?daemon|mail[-_]?daemon|postmaster|no[-_.]?reply|do[-_.]?not[-_.]?reply)"
    r"(?:[-+_.].*)?",
    re.IGNORECASE,
)


def auto_reply_subject(subject: str) -> str | None:
    """The out-of-office phrase a subject starts with, or None."""
    found = _AUTO_SUBJECT.match(subject)
    return found.group(0).strip() if found else None


def automated_sender(address: str | None) -> bool:
    """Mailer-daemon, postmaster, no-reply and do-not-reply addresses."""
    if not address or "@" not in address:
        return False
    return _AUTOMATED_LOCAL.fullmatch(address.rsplit("@", 1)[0]) is not None


# --- bounces ---------------------------------------------------------------------------------

# Subjects of the failure notices MTAs and providers send. Anchored: "Fwd: Undeliverable"
# is a person forwarding a bounce, and "RE: ... (delivery failed)" reads like a person's
# reply; a notice that starts its subject so is missed rather than a person's mail read as
# a bounce.
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliverable|undelivered\s+mail|undeliverable\s+mail|returned\s+mail"
    r"|mail\s+delivery\s+failed|delivery\s+status\s+notification|failure\s+notice"
    r"|delivery\s+failure|delivery\s+has\s+failed|delivery\s+(?:notification|report)"
    r"|delayed\s+mail|delivery\s+delayed|warning:\s+message\s+\S+\s+delayed"
    r"|mail\s+system\s+error|non\s+remis|unzustellbar|nicht\s+zustellbar"
    r"|permanent\s+delivery\s+failure|non[-\s]?delivery|mail\s+could\s+not\s+be\s+delivered"
    r"|mail\s+delivery\s+warning)",
    re.IGNORECASE,
)
_BOUNCE_DISPLAY = re.compile(
    r"mail\s+delivery\s+(?:system|subsystem|service)|mail\s+administrator|mailer[-\s]daemon",
    re.IGNORECASE,
)
# MDaemon signs its notices "mdaemon@"; some gateways escape the "@" of postmaster.
_DAEMON_LOCALS = frozenset({"mailer-daemon", "mailerdaemon", "postmaster", "mdaemon"})


def bounce_subject(subject: str) -> bool:
    return _BOUNCE_SUBJECT.match(subject) is not None


def bounce_sender(address: str | None, display: str) -> bool:
    """A mailer-daemon or postmaster, or a display name like "Mail Delivery System"."""
    local = address.rsplit("@", 1)[0].lower() if address and "@" in address else ""
    daemon = local.replace("_", "-").rstrip("\\") in _DAEMON_LOCALS
    return daemon or _BOUNCE_DISPLAY.search(display) is not None


# Where a bounce's own words end and the copy of the returned message begins.
_RETURNED_MARKER = re.compile(
    r"^[ \t]*(?:-+[ \t]*)?(?:"
    r"this\s+is\s+a\s+copy\s+of\s+the\s+message|below\s+this\s+line\s+is\s+a\s+copy"
    r"|below\s+the\s+next\s+line\s+is\s+a\s+copy"
    r"|original\s+message\s+(?:follows|headers)|undelivered\s+message\s+headers"
    r"|original\s+message\b|returned\s+message|start\s+of\s+returned\s+message"
    r"|the\s+headers\s+of\s+the\s+message|message\s+headers?\s+follows?"
    r"|the\s+header\s+of\s+the\s+original\s+message|unsent\s+message\s+below"
    r"|your\s+message\s+reads|a\s+summary\s+of\s+the\s+undelivered\s+message"
    r"|the\s+first\s+\d+\s+lines\s+of\s+your\s+original\s+message"
    r")",
    re.IGNORECASE | re.MULTILINE,
)


def returned_start(text: str) -> int | None:
    """Where the copy of the returned message starts in a bounce's text, or None."""
    found = _RETURNED_MARKER.search(text)
    return found.start() if found else None


_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# A basic SMTP reply code where one can stand: after a space, a quote, "#", "(" or ":" and
# before a space, a hyphen or a colon (never inside an IP address, a date or a size, nor
# the "480-624-2500" of a support phone number).
_BASIC = re.compile(
    r"(?:^|(?<=[\s'\"#(:]))([45])\d\d(?=[ \t]|-(?!\d{3}-\d)|:\s)", re.MULTILINE
)

# DESIGN 12's bounce policy, in the order `failure_severity` tries it (2. is the status
# code: `_ENHANCED`, then `_BASIC`). Every pattern is a flat alternation with bounded gaps:
# nothing here can backtrack catastrophically. They are written in lower case and matched
# against the lower-cased text: with IGNORECASE, alternations this long scan 5-10 times
# slower (a 16,000-character notice took 30 ms).
#
# 1. Still being tried: a warning says so, however it words the failure so far ("could not
#    be delivered for 4 hours") and whatever it says will happen when trying ends ("will
#    give up", "will be returned to you"): first, and it beats a status code (`Action:
#    delayed` does too). The negated forms ("will not be retried") never match.
_STILL_TRYING = re.compile(
    r"warning\s+(?:message\s+)?only|this\s+is\s+(?:just\s+|only\s+)?a\s+warning"
    r"|(?:do\s+not|don't|no)\s+need\s+to\s+resend|no\s+action\s+is\s+required"
    r"|not\s+yet\s+been\s+(?:delivered|sent|transmitted)|still\s+being\s+retried"
    r"|still\s+(?:trying|undelivered|queued|in\s+the\s+queue)"
    r"|will\s+(?:continue|keep)\s+(?:to\s+)?(?:try|trying|attempt|attempting|retry|retrying)"
    r"|(?:attempts?|retries)\s+will\s+continue|will\s+continue\s+to\s+be\s+(?:made|retried)"
    r"|will\s+(?:be\s+)?retr(?:y|ied)|will\s+try\s+again|will\s+be\s+re-?attempted"
    r"|has\s+been\s+(?:delayed|postponed)|delivery\s+(?:is\s+)?delayed",
)
# 3. The address is dead: whatever else the notice says, permanent.
_DEAD_ADDRESS = re.compile(
    r"user\s+unknown|unknown\s+user|no\s+such\s+(?:user|mailbox|recipient|address)"
    r"|(?:does\s+not|doesn't|did\s+not)\s+exist|mailbox\s+(?:unavailable|not\s+found|disabled)"
    r"|mailbox\s+is\s+disabled|recipient\s+not\s+found|recipnotfound|recipientnotfound"
    r"|unknown\s+recipient|invalid\s+(?:recipient|mailbox|address)|address\s+rejected"
    r"|address\s+(?:couldn't|could\s+not)\s+be\s+found|(?:wasn't|was\s+not)\s+found\s+at"
    r"|not\s+found\s+in\s+the\s+recipient|account\s+(?:has\s+been\s+|is\s+)?disabled"
    r"|doesn't\s+have\s+an?\s+\S+\s+account|unrouteable\s+address|no\s+mailbox\s+here"
    r"|user\s+not\s+(?:known|found|listed)|not\s+listed\s+in|no\s+longer\s+(?:valid|exists)"
    r"|invalid\s+(?:final\s+delivery\s+)?userid|no\s+matches\s+to\s+nameserver"
    r"|does\s+not\s+have\s+a\s+final\s+(?:e-?mail\s+)?delivery"
    r"|n'existe\s+pas|existiert\s+nicht|(?:empfänger|benutzer|adresse)\s+unbekannt",
)
# 4. The delivery failed, or trying has ended: a final failure, with or without a cause.
#    A temporary cause ("mailbox full") does not make it soft: DESIGN 12 wants a status
#    code for that (a 4.x.x), and the notice gave none.
_FINAL_FAILURE = re.compile(
    r"(?:could|can)\s*not\s+be\s+(?:delivered|sent|transferred)"
    r"|(?:couldn't|can't|cannot)\s+be\s+(?:delivered|sent)"
    r"|(?:was|were|has|have|is)\s+not\s+(?:been\s+)?delivered|not\s+delivered\s+to"
    r"|message\s+not\s+delivered|(?:did\s+not|didn't)\s+(?:reach|receive)"
    r"|(?:unable|not\s+able|wasn't\s+able|was\s+not\s+able)\s+to\s+(?:deliver|transfer|send)"
    r"|undeliverable|undelivered|non[-\s]?delivery"
    r"|delivery\s+(?:has\s+)?failed|delivery\s+failure|failed\s+delivery"
    r"|delivery\s+to\s+the\s+following\s+recipients?\s+failed"
    r"|address(?:es|\(es\))?\s+failed|failed\s+(?:permanently|recipients?)"
    r"|permanently\s+failed|permanent(?:ly)?\s+(?:fatal\s+)?(?:error|failure)"
    r"|fatal\s+(?:delivery\s+)?errors?"
    r"|(?:has\s+been|is\s+being|was)\s+returned|returning\s+(?:the\s+)?message"
    r"|returned\s+to\s+(?:the\s+)?sender|gave\s+up|given\s+up|giving\s+up"
    r"|(?:will\s+not|won't|not\s+going\s+to)\s+(?:try|retry|be\s+retried)"
    r"|no\s+(?:more|further)\s+(?:delivery\s+)?(?:attempts|retries)"
    r"|retry\s+time(?:out)?\s+(?:exceeded|expired)|(?:message|mail)\s+expired"
    r"|expired\s+after|in\s+the\s+queue\s+too\s+long|was\s+aborted|delivery\s+problems?"
    r"|non\s+remis|n'a\s+pas\s+pu\s+(?:être|etre)\s+(?:remis|délivré|delivre|distribué)"
    r"|nicht\s+zugestellt|unzustellbar|no\s+(?:se\s+)?pudo\s+(?:ser\s+)?entregar"
    r"|无法发送|无法送达|投递失败|发送失败|не\s+доставлено|не\s+удалось\s+доставить",
)
# 5. A passing condition, in a notice that says neither that it failed nor that it tries.
_TEMPORARY_CAUSE = re.compile(
    r"mailbox\s+(?:is\s+)?full|over\s+quota|quota\s+exceeded|exceeded\s+(?:the\s+)?storage"
    r"|insufficient\s+(?:system\s+)?storage|try\s+again|temporar(?:y|ily)|delayed"
    r"|greylist|deferred",
)
# 6. The subject, when the body said nothing: "Delivery Status Notification (Delay)" is
#    soft, "(Failure)", "Returned mail", "Undeliverable" hard.
_SUBJECT_TRYING = re.compile(
    r"\bdelay|\bwarning\b|still\s+being\s+retried|postponed|deferred"
)
_SUBJECT_FAILED = re.compile(
    r"fail|undeliver|not\s+delivered|non[-\s]?delivery|returned\s+mail"
    r"|returned\s+to\s+sender|could\s+not\s+be\s+delivered|non\s+remis|unzustellbar"
    r"|nicht\s+zustellbar",
)


def failure_severity(notice: str, subject: str = "") -> tuple[Severity | None, str | None, str]:
    """(severity, enhanced status code, evidence) of a bounce's own words (DESIGN 12).

    In order, first found:

      1. still being tried ("will continue trying", "warning only", "has not yet been
         delivered", "has been delayed")                                    soft
      2. an enhanced status code, else a basic SMTP code: its class         5: hard, 4: soft
      3. the address is dead ("user unknown", "no such mailbox")            hard
      4. the delivery failed or trying has ended ("could not be delivered",
         "undeliverable", "unable to deliver", "delivery failed", "gave up", "will not
         try again"), with no code at all too                               hard
      5. a temporary cause alone ("mailbox full", "try again")              soft
      6. the subject: a delay or a warning soft; a failure ("(Failure)", "Returned
         mail", "Undeliverable") hard (the caller passes no subject when the subject alone
         made the message look like a bounce: "Undeliverable: my parcel" proves nothing)

    None when the notice says nothing about failing or trying."""
    status = enhanced_status(notice)
    lower, lower_subject = notice.lower(), subject.lower()
    trying = _STILL_TRYING.search(lower)
    if trying is not None:
        return Severity.SOFT, status, _said(notice, lower, trying)
    if status is not None:
        return (Severity.HARD if status[0] == "5" else Severity.SOFT), status, status
    basic = _BASIC.search(notice)
    if basic is not None:
        code = notice[basic.start(1) : basic.start(1) + 3]
        return (Severity.HARD if code[0] == "5" else Severity.SOFT), None, code
    for pattern, severity in (
        (_DEAD_ADDRESS, Severity.HARD),
        (_FINAL_FAILURE, Severity.HARD),
        (_TEMPORARY_CAUSE, Severity.SOFT),
    ):
        words = pattern.search(lower)
        if words is not None:
            return severity, None, _said(notice, lower, words)
    for pattern, severity in ((_SUBJECT_TRYING, Severity.SOFT), (_SUBJECT_FAILED, Severity.HARD)):
        if pattern.search(lower_subject) is not None:
            return severity, None, f"the subject {' '.join(subject.split())[:60]!r}"
    return None, None, ""


def _said(notice: str, lower: str, found: re.Match[str]) -> str:
    """The words found, as the notice wrote them (when lower-casing kept every offset)."""
    text = notice if len(notice) == len(lower) else lower
    return " ".join(text[found.start() : found.end()].split())


def enhanced_status(text: str) -> str | None:
    """The first 4.x.x or 5.x.x enhanced status code in a text (a Diagnostic-Code)."""
    for found in _ENHANCED.finditer(text):
        if found.group(1) in "45":
            return found.group(0)
    return None


# --- replies ---------------------------------------------------------------------------------

# "On <date>, <name> wrote:" in the languages the auto-reply list covers; clients wrap it
# over two lines, so a line is also tried joined with the next one.
_ATTRIBUTION = re.compile(
    r"^(?:on\s.+\swrote|am\s.+\sschrieb.*|le\s.+\sa\s+[ée]crit|el\s.+\sescribi[óo]"
    r"|op\s.+\sschreef.*|il\s.+\sha\s+scritto|em\s.+\sescreveu)\s*:\s*$",
    re.IGNORECASE,
)
_MAX_BANNER = 300  # characters: an attribution line ("On ... wrote:") is never longer
_ATTRIBUTION_START = re.compile(r"^(?:on|am|le|el|op|il|em)\s", re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:original\s+message|ursprüngliche\s+nachricht|message\s+d'origine"
    r"|mensaje\s+original|oorspronkelijk\s+bericht|messaggio\s+originale)\s*-{2,}"
    r"|-{3,}\s*forwarded\s+message\s*-{3,}|begin\s+forwarded\s+message:"
    r"|_{10,})\s*$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^\s*\*?(?:from|von|de|van|da):\*?\s+\S", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(
    r"^\s*\*?(?:sent|date|gesendet|envoyé|enviado|verzonden|inviato):\*?\s", re.IGNORECASE
)


def split_quoted(text: str) -> tuple[str, str]:
    """(what the sender wrote, what they quoted). The quote starts at an attribution line
    ("On ... wrote:"), a separator ("-----Original Message-----", Outlook's rule, a
    forwarded-message banner) or an Outlook "From:/Sent:" block; `>` lines before it are
    quoted too (interleaved answers keep their own lines)."""
    lines = text.splitlines()
    cut = len(lines)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if len(stripped) > _MAX_BANNER:  # banners are short; long lines are never tried
            continue
        if _SEPARATOR.match(stripped) or _ATTRIBUTION.match(stripped):
            cut = i
            break
        if i + 1 < len(lines):
            joined = f"{stripped} {lines[i + 1].strip()}"
            if (
                _ATTRIBUTION_START.match(stripped)
                and len(joined) <= _MAX_BANNER
                and _ATTRIBUTION.match(joined)
            ):
                cut = i
                break
            if _OUTLOOK_FROM.match(stripped) and any(
                _OUTLOOK_NEXT.match(following) for following in lines[i + 1 : i + 4]
            ):
                cut = i
                break
    own = [line for line in lines[:cut] if not line.lstrip().startswith(">")]
    quoted = [line for line in lines[:cut] if line.lstrip().startswith(">")] + lines[cut:]
    return _trim("\n".join(own)), _trim("\n".join(quoted))


def _trim(text: str) -> str:
    return text.strip("\n").rstrip()


_BLOCK = re.compile(r"<(script|style|head)\b", re.IGNORECASE)
# `[^<>]` and not `[^>]`: a tag never spans another "<", so a text of a thousand unclosed
# "<" costs one pass, not a thousand.
_BREAK = re.compile(r"<(?:br|/p|/div|/tr|/li|/h\d|/blockquote)\b[^<>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]*>")
_BLANKS = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")


def html_to_text(markup: str) -> str:
    """A rough plain text of an HTML body: enough to read a reply that came without a
    text part, never a renderer."""
    text = _TAG.sub("", _BREAK.sub("\n", _drop_blocks(markup)))
    text = html.unescape(text).replace("\xa0", " ")
    return _BLANKS.sub("\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip()


def _drop_blocks(markup: str) -> str:
    """Without <script>, <style> and <head> and what they hold. A jump to each closing tag
    (never a lazy regex, which rescans the rest of the text for every unclosed opener);
    an opener that is never closed drops the rest."""
    lower = markup.lower()
    kept: list[str] = []
    at = 0
    while (found := _BLOCK.search(markup, at)) is not None:
        kept.append(markup[at : found.start()])
        end = lower.find(f"</{found.group(1).lower()}", found.end())
        if end < 0:
            return "".join(kept)
        close = lower.find(">", end)
        at = len(markup) if close < 0 else close + 1
    kept.append(markup[at:])
    return "".join(kept)
