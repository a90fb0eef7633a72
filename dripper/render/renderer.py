"""The Renderer: one step for one customer -> a complete email (DESIGN 6), as bytes.

    renderer = Renderer(config)                      # real sends: needs the token secret
    renderer = Renderer(config, preview=True)        # previews: a public preview key
    email = renderer.render(campaign, step, customer, now=now, message_id=mid)
    email.mime                                       # bytes, CRLF, ready for the transport
    renderer.check(campaign, step, customer)         # [Problem] with template file:line

Body templates are compiled once per version (file contents change -> mtime/size
change -> recompile) and cached; per email only the Jinja renders, link signing, the
footer check and MIME assembly run.

A little over 400 lines on purpose: a real send, a preview and `check` (a real render of
every variant) share the compiled templates, the context and the link signers of this one
class, so that none of them can ever render differently from the others.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Template, TemplateSyntaxError
from markupsafe import Markup

from dripper.config import Config
from dripper.customers.model import Customer
from dripper.engine.model import EventFacts
from dripper.errors import ConfigError, Problem
from dripper.i18n import choose
from dripper.render.compiler import CompiledTemplate, Compiler, Mode, run
from dripper.render.errors import HeaderError, RenderError
from dripper.render.filters import make_filters
from dripper.render.lang import LANG_VALUE
from dripper.render.links import html_footer, mark_markup_links, pixel, text_footer
from dripper.render.mime import Address, assemble, build_headers, check_header_value
from dripper.render.model import CampaignLike, EditionLike, RenderedEmail, StepLike
from dripper.render.sandbox import DripperSandbox, Limits, Record
from dripper.render.text import html_to_text, tidy
from dripper.tokens import Keyring, TokenError, delivery_id, encode_url, new_message_id

if TYPE_CHECKING:
    from dripper.campaigns import Campaign

PREVIEW_SENDER = "dripper preview <preview@dripper.invalid>"


class _MarkupText:
    """`finalize` of the text sandbox: HTML-safe values ({{ edition.html|safe }}) become
    their text, the edition's own text when it is the edition."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, Markup):
            return self.known.get(value) or html_to_text(value).rstrip("\n")
        return value


class Renderer:
    """Renders steps to emails; compiles each template once per version."""

    def __init__(
        self,
        config: Config,
        *,
        preview: bool = False,
        limits: Limits | None = None,
        recheck_seconds: float | None = None,
        tracking: bool | None = None,
    ) -> None:
        """`preview`: sign with the public preview key (no secret needed) and see template
        edits at once. `tracking`: None follows [tracking] opens/clicks; False renders
        plain links and no pixel (a preview page whose links should just work)."""
        self.config = config
        self.preview = preview
        self.limits = limits or Limits()
        # Previews see edits at once; the daemon looks at the files every few seconds.
        self.recheck_seconds = (
            (0.0 if preview else 2.0) if recheck_seconds is None else recheck_seconds
        )
        self.keyring = self._keyring()
        sender = config.sender_from.strip() or (PREVIEW_SENDER if preview else "")
        if not sender:
            raise ConfigError(
                "[sender] from is not set in config.toml: it is the From of every email"
            )
        self.sender = Address.parse(sender, "[sender] from")
        self.reply_to = (
            Address.parse(config.reply_to, "[sender] reply_to") if config.reply_to else None
        )
        postal = config.postal_address.strip()
        if not postal and not preview:
            raise ConfigError(
                "[sender] postal_address is not set in config.toml: every marketing email "
                "must show it (CAN-SPAM)"
            )
        self.postal_address = postal or "(postal address: set [sender] postal_address)"
        check_header_value("[sender] postal_address", self.postal_address)
        self._postal_html = htmllib.escape(self.postal_address, quote=False)
        settings = config.tracking
        self.base_url = str(settings.base_url).rstrip("/")
        self.track_opens = bool(settings.opens) and tracking is not False
        self.track_clicks = bool(settings.clicks) and tracking is not False
        # dripper's own links are never wrapped in a click link: opens, clicks,
        # unsubscribes, answers and referrals are recorded where they land.
        self._tracking_prefixes = tuple(f"{self.base_url}/{k}/" for k in "couar")
        mailto = config.unsubscribe_mailto.strip()
        self.unsubscribe_mailto = (
            (mailto if mailto.lower().startswith("mailto:") else f"mailto:{mailto}")
            if mailto
            else ""
        )

        company = dict(config.company)
        company["postal_address"] = self.postal_address
        self._company = Record("company", company)
        self._markup_text = _MarkupText()
        self.html_env = DripperSandbox(autoescape=True, finalize=mark_markup_links)
        self.text_env = DripperSandbox(autoescape=False, finalize=self._markup_text)
        filters = make_filters(config.timezone, str(company.get("currency") or "USD"))
        for env in (self.html_env, self.text_env):
            env.filters.update(filters)
        self.compiler = Compiler(
            config.templates_dir, _shown(config), self.html_env, self.text_env, self.postal_address
        )
        self._templates: dict[str, tuple[CompiledTemplate, float]] = {}
        self._subjects: dict[str, Template] = {}
        self._records: dict[tuple[str, ...], Record] = {}
        self._senders: dict[str, Address] = {}

    # --- public ---------------------------------------------------------------------------
    @property
    def compiles(self) -> int:
        """How many times a body template was compiled (a cached one is not recompiled)."""
        return self.compiler.count

    def template(self, name: str) -> CompiledTemplate:
        """The compiled template `name`, from the cache while its files are unchanged."""
        cached = self._templates.get(name)
        now = time.monotonic()
        if cached is not None:
            compiled, checked = cached
            if now - checked < self.recheck_seconds or not any(
                d.changed() for d in compiled.dependencies
            ):
                if now - checked >= self.recheck_seconds:
                    self._templates[name] = (compiled, now)
                return compiled
        compiled = self.compiler.compile(name)
        self._templates[name] = (compiled, now)
        return compiled

    def template_files(self, name: str) -> tuple[Path, ...]:
        """Every file `name` is built from (layouts, partials, .txt): what a preview watches."""
        return tuple(d.path for d in self.template(name).dependencies)

    def new_message_id(self) -> str:
        return new_message_id(self.sender.email)

    def render(
        self,
        campaign: CampaignLike,
        step: StepLike,
        customer: Customer,
        *,
        now: datetime,
        message_id: str,
        variant: int = 0,
        edition: EditionLike | None = None,
        event: EventFacts | None = None,
    ) -> RenderedEmail:
        """The complete email of `step` for `customer`. `message_id` is the delivery's own
        (from `new_message_id`, stored, reused on retries); `variant` picks the subject;
        `event` is the event that enrolled the customer (DESIGN 12: `event.data.*` in the
        subject and the body), None for an enrollment no event made."""
        message_id = message_id.strip().strip("<>")
        try:
            delivery = delivery_id(message_id)
        except TokenError as exc:
            raise RenderError(f"bad Message-ID {message_id!r}: {exc}") from None
        unsubscribe_url = f"{self.base_url}/u/{self.keyring.sign_unsubscribe(delivery)}"
        context = self._context(campaign, step, customer, now, unsubscribe_url, edition)
        context["event"] = None if event is None else Record("event", _plain(event.as_context()))
        context.update(self._listening(delivery, customer))
        subject = self.subject(campaign, step, context, variant)
        context["subject"] = subject  # the layout's <title> (DESIGN 15)
        compiled = self.template(step.template)
        marked, plan, text = compiled.render(context, self.limits)

        shows = compiled.html_always
        has_link = shows.unsubscribe or unsubscribe_url in marked
        has_address = shows.address or self._postal_html in marked or self.postal_address in marked
        tail = (
            pixel(f"{self.base_url}/o/{self.keyring.sign_open(delivery)}")
            if self.track_opens
            else ""
        )
        if not (has_link and has_address):
            tail += html_footer(
                unsubscribe_url,
                self.postal_address,
                link=not has_link,
                address=not has_address,
                label=self._unsubscribe_word(customer),
            )
        if self.track_clicks:
            static, dynamic = self._signers(delivery, plan.encoded, unsubscribe_url)
            html = plan.fill(marked, static=static, dynamic=dynamic, tail=tail)
        else:
            html = plan.fill(marked, static=None, dynamic=None, tail=tail)

        text = tidy(text)
        text_link = compiled.text_always.unsubscribe or unsubscribe_url in text
        text_address = compiled.text_always.address or self.postal_address in text
        if not (text_link and text_address):
            text += text_footer(
                unsubscribe_url,
                self.postal_address,
                link=not text_link,
                address=not text_address,
                label=self._unsubscribe_word(customer),
            )

        recipient = Address(f"{customer.first_name} {customer.last_name}".strip(), customer.email)
        sender = self._sender_of(campaign)
        unsubscribe = [unsubscribe_url]
        if self.unsubscribe_mailto:
            unsubscribe.append(f"{self.unsubscribe_mailto}?subject=unsubscribe%20{delivery}")
        try:
            headers = build_headers(
                sender=sender,
                recipient=recipient,
                subject=subject,
                date=now,
                message_id=message_id,
                reply_to=self.reply_to,
                unsubscribe=unsubscribe,
            )
        except HeaderError as exc:
            raise HeaderError(f"{exc.message} (customer {customer.email})") from None
        mime = assemble(headers, f"=_{delivery}", text, html)
        return RenderedEmail(
            message_id, sender.email, customer.email, subject, html, text, headers, mime
        )

    def _unsubscribe_word(self, customer: Customer) -> str:
        """"Unsubscribe" in the customer's language, for the footer dripper adds (only an
        email whose template shows no unsubscribe link needs it)."""
        t = choose(customer.locale, None, self.config.language)
        return t("Unsubscribe")

    def _sender_of(self, campaign: CampaignLike) -> Address:
        """The campaign's own `from:`, else `[sender] from` (parsed once each)."""
        own = getattr(campaign, "sender", None)
        if not own:
            return self.sender
        found = self._senders.get(own)
        if found is None:
            found = self._senders[own] = Address.parse(own, f"{campaign.file}: from")
        return found

    def text_of(
        self,
        campaign: CampaignLike,
        step: StepLike,
        customer: Customer,
        source: str,
        *,
        now: datetime,
        event: EventFacts | None = None,
        what: str = "task",
    ) -> str:
        """A task's text or a string of a webhook's body (DESIGN 16) for `customer`: the
        text sandbox and the emails' context (no links: nothing here is tracked), each
        source compiled once. A failure is a RenderError at the step's line."""
        context = self._context(campaign, step, customer, now, "", None)
        context["event"] = None if event is None else Record("event", _plain(event.as_context()))
        return self._line(source, context, what, campaign.file, step.line)

    def _line(
        self, source: str, context: dict[str, Any], what: str, file: str, line: int
    ) -> str:
        """A short text template (a subject, a task) rendered and trimmed, compiled once per
        source; a failure is a RenderError naming `what` at the step's line."""
        template = self._subjects.get(source)
        if template is None:
            try:
                template = self.text_env.from_string(source)
            except TemplateSyntaxError as exc:
                raise RenderError(
                    f"{what}: template syntax: {exc.message}", file=file, line=line
                ) from None
            self._subjects[source] = template
        try:
            return run(template, context, self.limits).strip()
        except RenderError as exc:
            raise type(exc)(f"{what}: {exc.message}", file=file, line=line) from None
        except Exception as exc:
            raise RenderError(f"{what}: {exc}", file=file, line=line) from exc

    def subject(
        self, campaign: CampaignLike, step: StepLike, context: dict[str, Any], variant: int = 0
    ) -> str:
        """The subject line of variant `variant` (wrapping around), one line, trimmed."""
        if not step.subjects:
            raise RenderError(
                f"step {step.id!r} has no subject", file=campaign.file, line=step.line
            )
        source = step.subjects[variant % len(step.subjects)]
        file, line = campaign.file, step.line
        subject = self._line(source, context, "subject", file, line)
        if "\r" in subject or "\n" in subject:
            raise HeaderError(
                f"subject of step {step.id!r} contains a line break (from the template or a "
                "customer value): refused, it could forge headers",
                file=file,
                line=line,
            )
        return subject

    def check(
        self,
        campaign: CampaignLike,
        step: StepLike,
        customer: Customer,
        *,
        now: datetime | None = None,
        edition: EditionLike | None = None,
        event: EventFacts | None = None,
        rendered: list[RenderedEmail] | None = None,
    ) -> list[Problem]:
        """Every problem rendering `step` for `customer` would hit, as Problems pointing
        at the template (or campaign) file and line; the emails rendered go to `rendered`
        (the linter's)."""
        from datetime import UTC

        problems: list[Problem] = []
        moment = now or datetime.now(UTC)
        for variant in range(max(len(step.subjects), 1)):
            try:
                email = self.render(
                    campaign,
                    step,
                    customer,
                    now=moment,
                    message_id=self.new_message_id(),
                    variant=variant,
                    edition=edition,
                    event=event,
                )
                if rendered is not None:
                    rendered.append(email)
            except RenderError as exc:
                key = f"steps.{step.id}" if exc.file == campaign.file else None
                problem = exc.as_problem(key)
                if problem not in problems:
                    problems.append(problem)
        if problems:
            return problems
        compiled = self.template(step.template)
        if compiled.mode is Mode.PER_EMAIL:
            message = f"compiled per email, which is slow: {compiled.reason}"
            problems.append(Problem(compiled.display, None, None, message))
        return problems

    def reads_event(self, campaign: Campaign) -> list[Problem]:
        """Where the subjects and templates of a campaign that no event enrolls read
        `event` (DESIGN 12): there is none to read, so each place is a problem, by file
        and line."""
        from jinja2 import TemplateError, nodes

        def lines(source: str) -> list[int]:
            try:
                tree = self.text_env.parse(source)
            except TemplateError:
                return []  # a syntax error is reported by the render check
            return sorted({n.lineno for n in tree.find_all(nodes.Name) if n.name == "event"})

        why = (
            f"reads `event`, but campaign {campaign.name!r} has no event trigger, so its "
            "emails have no event: give it trigger: {event: ...}, or take `event` out"
        )
        found: list[Problem] = []
        seen: set[Path] = set()
        for step in campaign.steps:
            if any(lines(subject) for subject in step.subjects):
                found.append(Problem(campaign.file, step.line, f"steps.{step.id}.subject", why))
            if step.personal:  # a task's text, a webhook's body (DESIGN 16)
                if any(lines(text) for text in step.personal_sources):
                    found.append(Problem(campaign.file, step.line, f"steps.{step.id}", why))
                continue
            try:
                files = self.template_files(step.template)
            except (RenderError, OSError):
                continue  # the render check says why
            for path in files:
                if path in seen or not path.is_file():
                    continue
                seen.add(path)
                try:
                    text = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                shown = self._shown_path(path)
                found += [Problem(shown, line, None, why) for line in lines(text)[:1]]
        return found

    def _shown_path(self, path: Path) -> str:
        """A template file as messages show it: under the templates folder's shown name."""
        try:
            relative = path.relative_to(self.config.templates_dir)
        except ValueError:
            return str(path)
        return f"{_shown(self.config)}/{relative.as_posix()}"

    # --- internals ------------------------------------------------------------------------
    def _keyring(self) -> Keyring:
        if self.preview:
            return Keyring.preview()
        env_name = str(self.config.tracking.secret_env)
        secret = self.config.secret(env_name)
        if not secret:
            raise ConfigError(
                f"the environment variable {env_name} is not set: it holds the secret that signs "
                "tracking and unsubscribe links. Set it to a long random value, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        try:
            return Keyring.from_secret(secret)
        except TokenError as exc:
            raise ConfigError(f"{env_name}: {exc}") from None

    def _context(
        self,
        campaign: CampaignLike,
        step: StepLike,
        customer: Customer,
        now: datetime,
        unsubscribe_url: str,
        edition: EditionLike | None,
    ) -> dict[str, Any]:
        if now.tzinfo is None:
            raise RenderError("render(now=...) needs an aware datetime")
        edition_record = None
        if edition is not None:
            # The edition's HTML comes from the campaign's own Markdown, rendered with raw
            # HTML off: trusted, so it is marked safe here (templates use |safe anyway).
            edition_html = Markup(edition.html)  # noqa: S704
            known = self._markup_text.known
            if len(known) > 64:  # a handful of editions are live at once; never grow forever
                known.clear()
            known[edition_html] = edition.text.rstrip("\n")
            edition_record = Record(
                "edition",
                {
                    "slug": edition.slug,
                    "title": edition.title,
                    "html": edition_html,
                    "text": edition.text,
                },
            )
        return {
            "customer": Record("customer", _plain(customer.as_context())),
            "company": self._company,
            "campaign": self._record(
                "campaign", name=campaign.name, description=campaign.description
            ),
            "step": self._record("step", id=step.id),
            "edition": edition_record,
            "unsubscribe_url": unsubscribe_url,
            "now": now,
            # the <html lang>: the language the campaign is written in (DESIGN 15)
            LANG_VALUE: getattr(campaign, "language", None) or self.config.language,
        }

    def _listening(self, delivery: str, customer: Customer) -> dict[str, Any]:
        """What a template needs to hear back: `answer_url(question, answer)` for one-click
        answers, and the customer's own `referral_url` and `referral_code`."""
        code = customer.referral_code or sample_referral_code(customer.email)
        base, keyring = self.base_url, self.keyring

        def answer_url(question: str, answer: Any) -> str:
            try:
                return f"{base}/a/{keyring.sign_answer(delivery, question, str(answer))}"
            except TokenError as exc:
                raise RenderError(str(exc)) from None

        return {
            "answer_url": answer_url,
            "referral_code": code,
            "referral_url": f"{base}/r/{keyring.sign_referral(code)}",
        }

    def _record(self, label: str, **values: str) -> Record:
        """Campaign and step records are the same for every email of a step: made once."""
        key = (label, *values.values())
        record = self._records.get(key)
        if record is None:
            if len(self._records) > 4096:
                self._records.clear()
            record = self._records[key] = Record(label, values)
        return record

    def _signers(
        self, delivery: str, encoded: Sequence[str], unsubscribe_url: str
    ) -> tuple[Any, Any]:
        prefix = f"{self.base_url}/c/"
        sign = self.keyring.sign_click_encoded
        done: dict[int, str] = {}
        skip = self._tracking_prefixes

        def static(index: int) -> str:
            url = done.get(index)
            if url is None:
                url = done[index] = prefix + sign(delivery, encoded[index])
            return url

        def dynamic(url: str) -> str | None:
            if url == unsubscribe_url or url.startswith(skip):
                return None
            try:
                return prefix + sign(delivery, encode_url(url))
            except TokenError:
                return None  # mailto:, tel:, #anchors and oddities stay as written

        return static, dynamic


def sample_referral_code(email: str) -> str:
    """A stand-in code for a customer who has none yet (a preview, a sample, a test send):
    stable for the address, never a real customer's (real codes are random)."""
    return "s" + hashlib.sha256(b"dripper sample referral\0" + email.encode()).hexdigest()[:15]


def _plain(values: Any) -> dict[str, Any]:
    """Fields (a customer's, an event's) as a dict, whether `as_context` gives a mapping or
    `Fields`, one level down too (an event's `data`): Record makes them read-only again."""
    to_dict = getattr(values, "to_dict", None)
    found = dict(to_dict() if callable(to_dict) else values)
    for key, value in found.items():
        inner = getattr(value, "to_dict", None)
        if callable(inner):
            found[key] = inner()
    return found


def _shown(config: Config) -> str:
    """How the templates folder is named in messages: relative to the project if inside."""
    try:
        return config.templates_dir.relative_to(config.base_dir).as_posix()
    except ValueError:
        return str(config.templates_dir)
