"""Compile a body template once per version; render it per email with only Jinja left.

    flatten (extends/includes/mj-include, with a line map)
      -> protect Jinja tags as placeholders, plus one for the customer's `lang` on the root
      -> MJML compile (mjml-python) or CSS inlining (premailer, network-free)
      -> check every statement survived, in order
      -> derive the text part (unless a .txt sits beside the template)
      -> mark links and the pixel/footer spot
      -> restore the Jinja tags -> one sandboxed template for HTML, one for text

Per email, `render` runs those two templates and nothing else. A template whose Jinja
MJML cannot carry through (a statement inside an attribute MJML rewrites, say) is
compiled per email instead: slower, never wrong. Errors are always reported against the
original file and line: the flattened source is kept as a Jinja template of its own,
and an error in the fast path is reproduced on it to find where it happened.
"""

from __future__ import annotations

import enum
import html as htmllib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError

from dripper.render.errors import LimitError, RenderError
from dripper.render.inline import inline_css
from dripper.render.lang import LANG_SOURCE, LANG_VALUE, html_lang, with_root_lang
from dripper.render.links import LinkPlan, done_marking, mark_links, marking_links
from dripper.render.protect import Protected, protect, unconditional
from dripper.render.sandbox import DripperSandbox, Limits, end_budget, start_budget
from dripper.render.source import Flat, Flattener
from dripper.render.text import html_to_text

_KINDS = {".mjml": "mjml", ".html": "html", ".htm": "html"}


class Mode(enum.StrEnum):
    COMPILED = "compiled"  # MJML/inlining done once; per email only Jinja runs
    PER_EMAIL = "per-email"  # Jinja first, then MJML/inlining, every email


@dataclass(frozen=True)
class Dependency:
    path: Path
    mtime_ns: int  # -1: the file did not exist (a .txt that may appear later)
    size: int

    @classmethod
    def of(cls, path: Path) -> Dependency:
        try:
            st = path.stat()
        except OSError:
            return cls(path, -1, -1)
        return cls(path, st.st_mtime_ns, st.st_size)

    def changed(self) -> bool:
        return Dependency.of(self.path) != self


@dataclass(frozen=True)
class Source:
    """A Jinja template plus what is needed to say where an error in it came from."""

    template: Template
    flat: Flat
    display: str  # the entry file as shown: "templates/welcome.mjml"
    folder: str  # the templates folder as shown: "templates"

    def locate(self, exc: BaseException) -> RenderError:
        line = _template_line(exc, self.template)
        message = _describe(exc)
        if line is None:
            return RenderError(message, file=self.display)
        source, source_line = self.flat.line_origin(line)
        return RenderError(
            message, file=f"{self.folder}/{source.name}", line=source_line, path=source.path
        )


@dataclass(frozen=True)
class Shows:
    unsubscribe: bool
    address: bool


NOTHING_PROVEN = Shows(unsubscribe=False, address=False)


def _always_shows(protected: Protected, compiled: str, postal_address: str) -> Shows:
    expressions, literals = unconditional(protected, compiled)
    escaped = htmllib.escape(postal_address, quote=False)
    literal_address = bool(postal_address) and any(
        postal_address in text or escaped in text for text in literals
    )
    return Shows(
        "unsubscribe_url" in expressions,
        "company.postal_address" in expressions or literal_address,
    )


@dataclass(frozen=True)
class CompiledTemplate:
    name: str
    display: str
    kind: str
    mode: Mode
    reason: str  # why PER_EMAIL, for `dripper check`
    flat: Source  # the flattened template itself: diagnostics and the per-email path
    html: Template | None  # COMPILED: renders HTML with link markers
    links: LinkPlan | None
    text: Template | None  # derived from the HTML (COMPILED) or from a .txt
    text_source: Source | None  # the .txt template, when there is one
    dependencies: tuple[Dependency, ...]
    # Proven at compile time: the HTML / text always show the unsubscribe URL and the
    # postal address, so the per-email search for them can be skipped.
    html_always: Shows
    text_always: Shows

    def render(self, context: dict[str, Any], limits: Limits) -> tuple[str, LinkPlan, str]:
        """(HTML with markers, its link plan, text) for one email."""
        compiled = ""
        if self.mode is Mode.COMPILED and self.html is not None and self.links is not None:
            marking = marking_links(self.links.marker)
            try:
                html = run(self.html, context, limits)
            except RenderError as exc:
                raise self._pinpoint(exc, context, limits) from None
            except Exception as exc:
                raise self._pinpoint(exc, context, limits) from exc
            finally:
                done_marking(marking)
            marked, plan = html, self.links
        else:
            source = run_located(self.flat, context, limits)
            compiled = _compile_markup(self.kind, source, self.flat, _lang_of(context))
            marked, plan = mark_links(compiled, lambda value: False)
        if self.text_source is not None:
            text = run_located(self.text_source, context, limits)
        elif self.text is not None:
            text = run(self.text, context, limits)
        else:
            text = html_to_text(compiled)  # per email: the HTML before its links were marked
        return marked, plan, text

    def _pinpoint(self, exc: BaseException, context: dict[str, Any], limits: Limits) -> RenderError:
        """The same error, placed at its template file:line by replaying the flat source."""
        if isinstance(exc, LimitError):
            return exc.located(self.display, None)
        try:
            run(self.flat.template, context, limits)
        except Exception as replayed:
            return self.flat.locate(replayed)
        return RenderError(_describe(exc), file=self.display)


def run(template: Template, context: dict[str, Any], limits: Limits) -> str:
    """Render under a budget, streaming so an endless output stops at the cap."""
    token = start_budget(limits)
    try:
        cap = limits.output_chars
        size = 0
        parts: list[str] = []
        # root_render_func directly: Template.generate adds a generator layer per chunk.
        for chunk in template.root_render_func(template.new_context(context)):
            size += len(chunk)
            if size > cap:
                raise LimitError(f"the email grew past {cap:,} characters")
            parts.append(chunk)
        return "".join(parts)
    except RecursionError:
        raise LimitError("the template recursed too deeply") from None
    except Exception:
        # Jinja's own handler rewrites the traceback so it shows template lines.
        template.environment.handle_exception()
        raise  # not reached: handle_exception always raises
    finally:
        end_budget(token)


def run_located(source: Source, context: dict[str, Any], limits: Limits) -> str:
    try:
        return run(source.template, context, limits)
    except LimitError as exc:
        raise exc.located(source.display, None) from None
    except RenderError as exc:
        if exc.file is None:
            raise source.locate(exc) from None
        raise
    except Exception as exc:
        raise source.locate(exc) from exc


class Compiler:
    """Turns template names into CompiledTemplates. Holds the two sandboxes."""

    def __init__(
        self,
        templates_dir: Path,
        display: str,
        html_env: DripperSandbox,
        text_env: DripperSandbox,
        postal_address: str = "",
    ) -> None:
        self.postal_address = postal_address
        self.templates_dir = templates_dir
        self.display = display.rstrip("/")
        self.html_env = html_env
        self.text_env = text_env
        self.count = 0  # compiles so far: the "compile once" promise is testable

    def compile(self, name: str) -> CompiledTemplate:
        self.count += 1
        flattener = Flattener(self.templates_dir, self.display)
        display = f"{self.display}/{name}"
        kind = _KINDS.get(Path(name).suffix.lower())
        if kind is None:
            raise RenderError("a body template must be .mjml or .html", file=display)
        flat_text = flattener.flatten(name)
        flat = self._source(self.html_env, flat_text, display)

        text_source = None
        sibling = Path(name).with_suffix(".txt").as_posix()
        txt_path = self.templates_dir / sibling
        if txt_path.is_file():
            text_flat = flattener.flatten(sibling)
            text_source = self._source(self.text_env, text_flat, f"{self.display}/{sibling}")
        dependencies = tuple(Dependency.of(f.path) for f in flattener.files)
        if text_source is None:
            dependencies += (Dependency.of(txt_path),)

        def per_email(reason: str) -> CompiledTemplate:
            return CompiledTemplate(
                name,
                display,
                kind,
                Mode.PER_EMAIL,
                reason,
                flat,
                None,
                None,
                None,
                text_source,
                dependencies,
                NOTHING_PROVEN,
                NOTHING_PROVEN,
            )

        protected = protect(flat_text.text)
        if kind == "mjml" and protected.layout_jinja:
            return per_email(protected.layout_jinja)
        has_jinja = bool(protected.placeholders)
        # The customer's language goes on the root, unless the template names its own.
        protected, lang = protected.with_expression(LANG_SOURCE)
        try:
            compiled = _compile_markup(kind, protected.text, flat, lang)
        except RenderError as exc:
            if not has_jinja:
                raise
            return per_email(
                f"{kind} could not compile the template with Jinja hidden: {exc.message}"
            )
        if not protected.statements_intact(compiled):
            return per_email("a Jinja statement sits where MJML or the inliner moves or repeats it")

        is_dynamic = protected.pattern.search
        text = None
        if text_source is None:
            derived = html_to_text(compiled, protected)
            text_always = _always_shows(protected, derived, self.postal_address)
            restored = protected.restore(derived, for_text=True)
            text = self._try(self.text_env, restored, f"<text:{name}>")
        else:
            text_protected = protect(text_source.flat.text)
            text_always = _always_shows(text_protected, text_protected.text, self.postal_address)
        marked, links = mark_links(compiled, lambda value: is_dynamic(value) is not None)
        html = self._try(self.html_env, protected.restore(marked), f"<compiled:{name}>")
        if html is None or (text is None and text_source is None):
            return per_email("the compiled template did not read back as Jinja")
        return CompiledTemplate(
            name,
            display,
            kind,
            Mode.COMPILED,
            "",
            flat,
            html,
            links,
            text,
            text_source,
            dependencies,
            _always_shows(protected, compiled, self.postal_address),
            text_always,
        )

    def _source(self, env: DripperSandbox, flat: Flat, display: str) -> Source:
        try:
            template = _from_code(env, flat.text, f"<flat:{display}>")
        except TemplateSyntaxError as exc:
            source, line = flat.line_origin(exc.lineno)
            raise RenderError(
                f"template syntax: {exc.message}",
                file=f"{self.display}/{source.name}",
                line=line,
                path=source.path,
            ) from None
        return Source(template, flat, display, self.display)

    @staticmethod
    def _try(env: DripperSandbox, text: str, filename: str) -> Template | None:
        try:
            return _from_code(env, text, filename)
        except TemplateSyntaxError:
            return None


def _from_code(env: DripperSandbox, source: str, filename: str) -> Template:
    code = env.compile(source, name=filename, filename=filename)
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def _compile_markup(kind: str, source: str, where: Source, lang: str) -> str:
    """MJML compiled, or CSS inlined, with `lang` on the root element unless the template
    sets one; errors name the template (mrml gives no usable line)."""
    if kind == "html":
        try:
            return inline_css(source, lang)
        except RenderError as exc:
            raise exc.located(where.display, None) from None
    from mjml import mjml2html

    if "<mj-include" in source.lower():
        # Only ever reached when Jinja itself wrote an <mj-include>: never follow it.
        raise RenderError(
            "<mj-include> must be written literally in a template file", file=where.display
        )
    try:
        return mjml2html(with_root_lang(source, lang), include_loader=_refuse_include)
    except (ValueError, RuntimeError) as exc:
        raise RenderError(f"MJML: {exc}", file=where.display) from None


def _lang_of(context: dict[str, Any]) -> str:
    return html_lang(context.get(LANG_VALUE))


def _refuse_include(path: str) -> str:
    raise RenderError(f"<mj-include path={path!r}> was not resolved before compiling")


def _template_line(exc: BaseException, template: Template) -> int | None:
    """The line of `template` the error was raised on, from Jinja's rewritten traceback."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno
    line = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == template.filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RenderError):
        return exc.message
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {exc}"
    if isinstance(exc, UndefinedError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
