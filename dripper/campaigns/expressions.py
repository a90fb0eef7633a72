"""Campaign expressions (`if:`, `when:`, `audience:`, `date:`): Jinja2 expressions compiled once
when the campaign loads, evaluated in a sandbox each time a decision needs them.

Names in scope: `customer`, `event`, `now`, `campaign`, `edition` (DESIGN 2), plus Jinja's
`range` and `dict`. Any other name is refused when the campaign loads, so a typo such as
`custmer.purchases` is a `dripper check` problem, not a silent false at send time.

Missing values follow jinja2's default `Undefined`, not `StrictUndefined`: a missing attribute is
falsy and unequal to everything, so `if: customer.favorite_coffee` or
`audience: customer.city == "Paris"` simply do not match a customer whose sheet leaves that column
empty. Using a missing value where a value is needed (`customer.nope < 2`,
`customer.birthday.year`, arithmetic) raises ExpressionError. A sheet column that only some
customers fill in must not break a campaign, while a comparison against nothing is almost always
a mistake worth reporting. An expression whose result is undefined evaluates to None.

The sandbox refuses unsafe attributes (`__class__`, function internals) at once with an error
rather than handing back a quiet Undefined, refuses methods that change a value
(`customer.update(...)`: one condition must not change what the next one sees), and bounds `*`
and `**` so an expression cannot build a gigabyte string or a million-digit number.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, Undefined, UndefinedError, meta
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import consume

from dripper.errors import DripperError

SCOPE = ("customer", "event", "now", "campaign", "edition")
# Limits for the operators the sandbox intercepts: generous for any real campaign condition.
MAX_REPEAT_LENGTH = 100_000
MAX_POWER_BITS = 4096  # about 1200 decimal digits


class ExpressionError(DripperError):
    """An expression that does not compile, or fails when evaluated. The message names the
    file:line and key, then the expression and what went wrong (`reason`, which a loader
    reports as a Problem's message)."""

    def __init__(
        self, reason: str, *, source: str, file: str, line: int | None, key: str | None = None
    ) -> None:
        self.reason = reason
        self.source = source
        self.file = file
        self.line = line
        self.key = key
        where = file if line is None else f"{file}:{line}"
        key_part = f" {key}:" if key else ""
        super().__init__(f"{where}:{key_part} {reason}")


class _ExpressionEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, made strict about the two things the stock one lets slide. Immutable: a
    condition must not change what the next condition sees (`customer.update(...)`)."""

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # The stock sandbox returns an Undefined that only fails when used; `customer.__class__`
        # alone would then quietly evaluate to None. Refuse it outright instead.
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and abs(left).bit_length() * right > MAX_POWER_BITS
        ):
            raise SecurityError(f"{left} ** {right} is too large a number")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_REPEAT_LENGTH
                ):
                    raise SecurityError(
                        f"repeating a sequence to {len(seq) * times} items is too large"
                    )
        return super().call_binop(context, operator, left, right)


def _environment() -> _ExpressionEnvironment:
    env = _ExpressionEnvironment(autoescape=False)
    # Only the harmless helpers; lipsum, cycler, joiner and namespace make no sense in a condition.
    env.globals = {name: env.globals[name] for name in ("range", "dict")}
    return env


# Built once: compiling against one environment lets Jinja cache filters and tests.
_ENV = _environment()
ALLOWED_NAMES = frozenset(SCOPE) | frozenset(_ENV.globals)


@dataclass(frozen=True)
class Expression:
    """One compiled expression and where it came from."""

    source: str
    file: str
    line: int | None
    key: str | None
    names: frozenset[str]
    compiled: TemplateExpression = field(repr=False, compare=False)

    @classmethod
    def compile(
        cls,
        source: str,
        *,
        file: str = "<expression>",
        line: int | None = None,
        key: str | None = None,
    ) -> Expression:
        """Compile `source`; raise ExpressionError if it does not parse or names a variable
        outside the scope."""

        def error(reason: str) -> ExpressionError:
            return ExpressionError(reason, source=source, file=file, line=line, key=key)

        if not source.strip():
            raise error("empty expression")
        try:
            compiled = _ENV.compile_expression(source, undefined_to_none=False)
        except TemplateSyntaxError as exc:
            # Jinja speaks of templates; here the whole template is the expression.
            message = (exc.message or "syntax error").replace(
                "'end of template'", "end of expression"
            )
            raise error(f"'{source}' does not compile: {message}") from None
        except TemplateError as exc:
            raise error(f"'{source}' does not compile: {exc}") from None
        # compile_expression has already refused anything after the expression, so this wrapper
        # cannot be escaped; it only serves to ask Jinja which names are read.
        names = frozenset(meta.find_undeclared_variables(_ENV.parse("{{ (" + source + ") }}")))
        unknown = sorted(names - ALLOWED_NAMES)
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, SCOPE, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise error(
                f"unknown name '{name}' in '{source}' ({hint}expressions see "
                f"{', '.join(SCOPE[:-1])} and {SCOPE[-1]})"
            )
        return cls(source, file, line, key, names, compiled)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The value of the expression in `context`; None when it is undefined."""
        try:
            result = self._run(context)
        except Exception as exc:
            # Whatever fails inside is the expression's doing (or the data's): report it as one
            # line naming the expression, never as a traceback.
            reason = f"'{self.source}' failed: {_explain(exc)}"
            raise ExpressionError(
                reason, source=self.source, file=self.file, line=self.line, key=self.key
            ) from exc
        return None if isinstance(result, Undefined) else result

    def _run(self, context: Mapping[str, Any]) -> Any:
        # What TemplateExpression.__call__ does, less its dearest part: a context that
        # copies the variables into a new dict merged with the globals (two thirds of a
        # call, ~10 us, paid twice per customer when a purchase is planned). The merged
        # dict is built here once and handed over as the shared parent.
        template = getattr(self.compiled, "_template", None)
        if template is None:  # a Jinja whose TemplateExpression is built otherwise
            return self.compiled(dict(context))
        ctx = template.new_context({**_ENV.globals, **context}, shared=True)
        consume(template.root_render_func(ctx))
        return ctx.vars["result"]


def _explain(exc: Exception) -> str:
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {exc}"
    if isinstance(exc, UndefinedError):
        return f"{exc.message} (if only some customers have it, test 'is defined' first)"
    if isinstance(exc, TypeError):
        return f"{exc} (sheet attributes are text: compare numbers with '|int' or '|float')"
    return f"{type(exc).__name__}: {exc}"
