"""The Jinja2 sandbox every template runs in, with budgets that stop hostile templates.

Jinja's `ImmutableSandboxedEnvironment` already refuses private attributes (`__class__`,
`__globals__`, `_TemplateReference__context`), mutating methods and unsafe `str.format`.
What it does not do is stop a template that runs forever or builds a gigabyte string, so
each render gets a `Budget` (a deadline and a count of characters produced) that the
hooks below charge: attribute and item lookups, calls, the `*`, `**`, `+` and `%`
operators, every `{{ }}` output (through `finalize`) and every loop iteration (a
`guard_iter` call wrapped around each `{% for %}` iterable at parse time).
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.filters import FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing, pass_environment, pass_eval_context

from dripper.render.errors import LimitError

_SIZED = (str, list, tuple, bytes)
_PLAIN = frozenset({str, int, float, bool, list, tuple, Decimal, datetime, date, type(None)})
_WIDE_SPEC = re.compile(r"\d{6,}|\{")  # a width or precision of 100000+, or a nested field
_PERCENT_SPEC = re.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_MAX_WIDTH = 10_000


@dataclass(frozen=True)
class Limits:
    """How far one render may go before it is stopped with a LimitError."""

    seconds: float = 1.0
    output_chars: int = 2_000_000  # an email over 100 KB is clipped by Gmail anyway
    produced_chars: int = 16_000_000  # everything made on the way, captured blocks included
    iterations: int = 2_000_000  # loop iterations over the whole render


class Budget:
    """What is left of the Limits for the render in progress."""

    __slots__ = ("deadline", "iterations", "limits", "produced")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.produced = limits.produced_chars
        self.iterations = limits.iterations

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitError(f"the template ran longer than {self.limits.seconds:g} s")

    def charge(self, chars: int) -> None:
        self.produced -= chars
        if self.produced < 0:
            raise LimitError(
                f"the template produced more than {self.limits.produced_chars:,} characters"
            )


# Outside a render (Jinja folds constant expressions while compiling, calling filters and
# operators) sizes are still checked, but nothing is counted down: this default must never
# run out, however long the process lives.
_NO_BUDGET = Budget(Limits(seconds=float("inf"), produced_chars=1 << 62, iterations=1 << 62))
_budget: ContextVar[Budget] = ContextVar("dripper_render_budget", default=_NO_BUDGET)


def start_budget(limits: Limits) -> Any:
    """Begin a render: returns the token to hand to `end_budget`."""
    return _budget.set(Budget(limits))


def end_budget(token: Any) -> None:
    _budget.reset(token)


def current_budget() -> Budget:
    return _budget.get()


def guard_iter(iterable: Iterable[Any], body_chars: int = 0) -> Iterator[Any]:
    """Wraps every `{% for %}` iterable: charges each iteration (and the static text
    of the loop body) to the budget, so nested loops cannot spin or grow unnoticed."""
    budget = _budget.get()
    for n, item in enumerate(iterable, 1):
        budget.iterations -= 1
        if body_chars:
            budget.charge(body_chars)
        if budget.iterations < 0:
            raise LimitError(
                f"the template ran more than {budget.limits.iterations:,} loop iterations"
            )
        if n & 31 == 0:
            budget.tick()
        yield item


class Record:
    """A read-only bag of values seen by templates as `customer.x` or `customer['x']`.

    Not a dict, so a CSV column named `items` or `keys` reads as data rather than as a
    dict method, and an unknown name is reported as `customer.nickname`."""

    __slots__ = ("_data", "_label")

    def __init__(self, label: str, data: Mapping[str, Any]) -> None:
        self._label = label
        values = dict(data)
        for key, value in values.items():
            # The type test first: an ABC isinstance per field is slow, and this runs for
            # every customer of every email.
            if type(value) not in _PLAIN and isinstance(value, Mapping):
                values[key] = Record(f"{label}.{key}", value)
        self._data = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<{self._label}>"


class DripperUndefined(StrictUndefined):
    """StrictUndefined whose message names the variable the way the template wrote it."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        name = self._undefined_name
        obj = self._undefined_obj
        if self._undefined_hint:
            return self._undefined_hint
        if isinstance(obj, Record):
            shown = f"{obj._label}.{name}" if isinstance(name, str) else f"{obj._label}[{name!r}]"
            return f"{shown} is undefined"
        if obj is missing:
            return f"{name} is undefined"
        return str(super()._undefined_message)


def _check_format_string(fmt: str) -> None:
    """Refuse `'{:>999999}'.format(x)`-style huge paddings before Python allocates them."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # Python will raise the same error when it formats
    for _literal, _field, spec, _conversion in parsed:
        if spec and _WIDE_SPEC.search(spec):
            raise LimitError("format widths of 100000 or more (or computed widths) are refused")


def _check_percent(fmt: str) -> None:
    for star_or_width, precision in _PERCENT_SPEC.findall(fmt):
        for part in (star_or_width, precision):
            if part == "*" or (part and int(part) > _MAX_WIDTH):
                raise LimitError(f"%-format widths over {_MAX_WIDTH} are refused")


def _estimate_str_method(name: str, text: str, args: tuple[Any, ...]) -> int:
    """The size a str method would produce, for the ones that can multiply their input."""
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        return int(args[0])
    if name == "expandtabs":
        size = args[0] if args and isinstance(args[0], int) else 8
        return len(text) * max(size, 1)
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        new = args[1]
        if isinstance(new, str):
            return len(text) + (text.count(args[0]) + 1) * max(len(new) - len(args[0]), 0)
    if name == "join" and args and hasattr(args[0], "__len__"):
        return len(text) * len(args[0])
    return 0


class DripperSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, budgeted. One instance per autoescape setting."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, autoescape: bool, finalize: Callable[[Any], Any] | None = None) -> None:
        def charged(value: Any) -> Any:
            return _charge_output(finalize(value)) if finalize else _charge_output(value)

        super().__init__(
            autoescape=autoescape,
            undefined=DripperUndefined,
            finalize=charged if finalize else _charge_output,
            keep_trailing_newline=True,
            auto_reload=False,
            cache_size=0,
        )
        # lipsum is useless in an email and one more object to poke at.
        self.globals.pop("lipsum", None)
        self.filters.update(_bounded_filters())

    # --- parse-time: wrap every loop iterable ------------------------------------------
    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            body_chars = sum(len(d.data) for n in loop.body for d in n.find_all(nodes.TemplateData))
            loop.iter = nodes.Call(
                nodes.ImportedName(f"{__name__}.guard_iter"),
                [loop.iter, nodes.Const(body_chars)],
                [],
                None,
                None,
                lineno=loop.lineno,
            )
        return tree

    # --- run-time hooks ------------------------------------------------------------------
    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is Record:
            # the common case (customer.first_name), kept fast: no budget tick needed
            # because a Record lookup cannot loop or allocate.
            try:
                return obj._data[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        _budget.get().tick()
        return _check_size(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(obj) is Record:
            try:
                return obj._data[argument]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=argument)
        _budget.get().tick()
        return _check_size(super().getitem(obj, argument))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget.get()
        budget.tick()
        limit = budget.limits.output_chars
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, _SIZED) and len(arg) > limit:
                raise LimitError(f"a value of more than {limit:,} characters was passed on")
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str) and _estimate_str_method(name, owner, args) > limit:
            raise LimitError(f"that call would build more than {limit:,} characters")
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget.get()
        budget.tick()
        limit = budget.limits.output_chars
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, _SIZED) and isinstance(times, int) and len(seq) * times > limit:
                    raise LimitError(f"that repetition would build more than {limit:,} items")
        elif operator == "**":
            ints = isinstance(left, int) and isinstance(right, int)
            if ints and abs(left) > 1 and right * abs(left).bit_length() > 65536:
                raise LimitError("that power is too large")
        elif operator == "+":
            sized = isinstance(left, _SIZED) and isinstance(right, _SIZED)
            if sized and len(left) + len(right) > limit:
                raise LimitError(f"that concatenation would exceed {limit:,} items")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left)
        return self.binop_table[operator](left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_string(value.__self__)
        return wrapped


def _check_size(value: Any) -> Any:
    if isinstance(value, _SIZED):
        limit = _budget.get().limits.output_chars
        if len(value) > limit:
            raise LimitError(f"a value of more than {limit:,} characters was built")
    return value


def _charge_output(value: Any) -> Any:
    """`finalize` hook: every `{{ }}` output counts against the render's budget."""
    if isinstance(value, str):
        _budget.get().charge(len(value))
    return value


def _bounded_filters() -> dict[str, Callable[..., Any]]:
    """Jinja's filters that can multiply their input, with the product checked first."""

    def limit() -> int:
        return _budget.get().limits.output_chars

    def refuse_if(size: int, what: str) -> None:
        if size > limit():
            raise LimitError(f"the {what} filter would build more than {limit():,} characters")

    def center(value: Any, width: int = 80) -> Any:
        refuse_if(int(width), "center")
        return FILTERS["center"](value, width)

    def indent(value: Any, width: int | str = 4, *args: Any, **kwargs: Any) -> Any:
        text = str(value)
        pad = width if isinstance(width, int) else len(str(width))
        refuse_if(len(text) + (text.count("\n") + 1) * pad, "indent")
        return FILTERS["indent"](value, width, *args, **kwargs)

    def replace(eval_ctx: Any, value: Any, old: str, new: str, count: int | None = None) -> Any:
        text = str(value)
        refuse_if(len(text) + (text.count(old) + 1) * max(len(new) - len(old), 0), "replace")
        return FILTERS["replace"](eval_ctx, value, old, new, count)

    def join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> Any:
        items = list(value)
        refuse_if(len(d) * len(items), "join")
        return FILTERS["join"](eval_ctx, items, d, attribute)

    def format_(value: str, *args: Any, **kwargs: Any) -> Any:
        _check_percent(str(value))
        return FILTERS["format"](value, *args, **kwargs)

    def wordwrap(environment: Any, s: str, width: int = 79, *args: Any, **kwargs: Any) -> Any:
        refuse_if(len(s) * 8, "wordwrap")  # textwrap is slow Python: keep its input small
        return FILTERS["wordwrap"](environment, s, width, *args, **kwargs)

    return {
        "center": center,
        "indent": indent,
        "replace": pass_eval_context(replace),
        "join": pass_eval_context(join),
        "format": format_,
        "wordwrap": pass_environment(wordwrap),
    }
