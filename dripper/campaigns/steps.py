"""Reading a campaign's `steps:` list: ids, offsets, send times, conditions, subjects and
templates, with every problem reported by file, line and key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from dripper.campaigns.expressions import Expression, ExpressionError
from dripper.campaigns.model import Step
from dripper.campaigns.personal_steps import read_assignee, read_due, read_task, read_webhook
from dripper.campaigns.yamlnodes import Entry, NodeReader
from dripper.timeparse import Span

STEP_KEYS = (
    "id",
    "after",
    "send_at",
    "if",
    "subject",
    "template",
    "transactional",
    "task",
    "assignee",
    "due",
    "webhook",
)
EMAIL_ONLY = ("subject", "template", "transactional")
TASK_ONLY = ("assignee", "due")
STEP_ID = re.compile(r"[a-z0-9-]+")
TEMPLATE_SUFFIXES = (".mjml", ".html")

# Subjects are compiled here only to catch syntax errors and unknown filters when the campaign
# loads; the renderer compiles them again in its own environment.
_SUBJECTS = SandboxedEnvironment(autoescape=False)


class TemplateFolder:
    """The templates folder, listed once so that a missing template can suggest a close name."""

    def __init__(self, folder: Path, shown: str) -> None:
        self.folder = folder
        self.shown = shown  # as messages show it
        self.present = folder.is_dir()
        self.names = (
            sorted(
                p.relative_to(folder).as_posix()
                for p in folder.rglob("*")
                if p.suffix in TEMPLATE_SUFFIXES and p.is_file()
            )
            if self.present
            else []
        )

    def check(self, name: str) -> str | None:
        """What is wrong with `template: name`, or None."""
        pure = PurePosixPath(name)
        if pure.is_absolute() or PureWindowsPath(name).is_absolute() or ".." in pure.parts:
            return (
                f"template {name!r} must be a path inside the templates folder ({self.shown}),"
                " without '..'"
            )
        if pure.suffix not in TEMPLATE_SUFFIXES:
            return f"template {name!r} must end in .mjml or .html"
        if not self.present:
            return None  # the missing folder is reported once, not for every step
        path = self.folder / name
        if not path.is_file():
            close = difflib.get_close_matches(name, self.names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return f"template {name!r} not found in {self.shown}{hint}"
        # A symlink inside the folder could still point anywhere on the machine.
        if not path.resolve().is_relative_to(self.folder.resolve()):
            return f"template {name!r} leads outside the templates folder ({self.shown})"
        return None


def read_expression(reader: NodeReader, entry: Entry) -> Expression | None:
    """The expression at `entry`, compiled; a problem and None when it does not compile."""
    source = reader.string(entry, what="an expression")
    if source is None:
        return None
    try:
        return Expression.compile(source, file=reader.file, line=entry.line, key=entry.key)
    except ExpressionError as exc:
        reader.problem(entry.line, entry.key, exc.reason)
        return None


def read_steps(reader: NodeReader, entry: Entry, templates: TemplateFolder) -> tuple[Step, ...]:
    """Every step of `steps:`; ids must be unique and offsets in sending order."""
    items = reader.sequence(entry)
    if items is None:
        return ()
    if not items:
        reader.problem(entry.line, entry.key, "no steps: a campaign needs at least one")
        return ()
    steps: list[Step] = []
    ids: dict[str, Entry] = {}
    previous: tuple[Entry, Span, str] | None = None  # the last offset, and as written
    for item in items:
        before = len(reader.problems)
        fields = reader.mapping(item, STEP_KEYS)
        if fields is None:
            continue
        step_id = _step_id(reader, item, fields, ids)
        # `after` defaults to 0: a newsletter's one step needs no `after: 0`.
        after: Span | None = Span()
        written = "0"
        if "after" in fields:
            after = reader.span(fields["after"])
            written = str(fields["after"].node.value)
        if after is not None:
            earlier = previous is not None and (
                after.shortest < previous[1].longest
                if after.months != previous[1].months
                else after.fixed < previous[1].fixed
            )
            if previous is not None and earlier and after.approx >= previous[1].approx:
                where = fields.get("after", item)
                reader.problem(
                    where.line,
                    f"{item.key}.after",
                    f"{written} may fall before {previous[2]} in {previous[0].key}: months "
                    "are 28 to 31 days, so which comes first depends on the month; write both "
                    "in months or both in days",
                )
            elif previous is not None and earlier:
                where = fields.get("after", item)
                reader.problem(
                    where.line,
                    f"{item.key}.after",
                    f"{written} is earlier than {previous[2]} in {previous[0].key}: offsets count "
                    "from enrollment, not from the previous step, so list steps in sending order",
                )
            previous = (item, after, written)
        send_at = reader.time_of_day(fields["send_at"]) if "send_at" in fields else None
        condition = read_expression(reader, fields["if"]) if "if" in fields else None
        if "task" in fields or "webhook" in fields:
            personal = _personal(reader, item, fields)
            if len(reader.problems) > before or step_id is None or after is None:
                continue
            if personal is not None:
                steps.append(
                    Step(step_id, after, send_at, condition, (), "", item.line, **personal)
                )
            continue
        for key in TASK_ONLY:
            if key in fields:
                reader.problem(
                    fields[key].line, fields[key].key, f"'{key}' belongs to a task step (task:)"
                )
        subjects = _subjects(reader, item, fields)
        template = _template(reader, item, fields, templates)
        transactional = False
        if "transactional" in fields:
            transactional = bool(reader.boolean(fields["transactional"]))
        if len(reader.problems) > before or step_id is None or after is None or not template:
            continue  # reported; the campaign will not load, so the step need not exist
        steps.append(
            Step(
                step_id,
                after,
                send_at,
                condition,
                subjects,
                template,
                item.line,
                transactional=transactional,
            )
        )
    return tuple(steps)


def _personal(reader: NodeReader, item: Entry, fields: dict[str, Entry]) -> dict[str, Any] | None:
    """A task step's or a webhook step's own fields (DESIGN 16); None when one is wrong."""
    if "task" in fields and "webhook" in fields:
        reader.problem(
            fields["webhook"].line,
            f"{item.key}.webhook",
            "a step is a task or a webhook, not both: make two steps",
        )
        return None
    kind = "task" if "task" in fields else "webhook"
    for key in EMAIL_ONLY:
        if key in fields:
            reader.problem(
                fields[key].line,
                fields[key].key,
                f"a {kind} step has no '{key}': it is not an email (remove '{key}', or "
                f"'{kind}' to make the step an email)",
            )
    if kind == "webhook":
        for key in TASK_ONLY:
            if key in fields:
                reader.problem(
                    fields[key].line, fields[key].key, f"'{key}' belongs to a task step (task:)"
                )
        webhook = read_webhook(reader, fields["webhook"])
        return None if webhook is None else {"webhook": webhook}
    task = read_task(reader, fields["task"])
    assignee = read_assignee(reader, fields["assignee"]) if "assignee" in fields else None
    due = read_due(reader, fields["due"]) if "due" in fields else None
    if task is None:
        return None
    return {
        "task": task,
        "assignee": assignee,
        "assignee_line": fields["assignee"].line if "assignee" in fields else None,
        "due": due,
    }


def _step_id(
    reader: NodeReader, item: Entry, fields: dict[str, Entry], ids: dict[str, Entry]
) -> str | None:
    if "id" not in fields:
        reader.problem(
            item.line,
            f"{item.key}.id",
            "missing 'id' (a short name like second-sale, used in stats and previews)",
        )
        return None
    entry = fields["id"]
    step_id = reader.string(
        entry, what="step id", pattern=STEP_ID, rule="use lower-case letters, digits and '-'"
    )
    if step_id is None:
        return None
    if step_id in ids:
        first = ids[step_id]
        step = first.key.rsplit(".", 1)[0]
        reader.problem(
            entry.line,
            entry.key,
            f"duplicate step id '{step_id}' (also {step} at line {first.line})",
        )
        return None
    ids[step_id] = entry
    return step_id


def _subjects(reader: NodeReader, item: Entry, fields: dict[str, Entry]) -> tuple[str, ...]:
    if "subject" not in fields:
        reader.problem(item.line, f"{item.key}.subject", "missing 'subject'")
        return ()
    entry = fields["subject"]
    items = reader.sequence(entry, allow_scalar=True)
    if items is None:
        return ()
    if not items:
        reader.problem(entry.line, entry.key, "no subjects: give one, or a list of A/B variants")
        return ()
    subjects = []
    for subject_entry, subject in reader.strings(items, "a subject"):
        wrong = _subject_problem(subject)
        if wrong is None:
            subjects.append(subject.strip())
        else:
            reader.problem(subject_entry.line, subject_entry.key, wrong)
    return tuple(subjects)


def _subject_problem(subject: str) -> str | None:
    if "\n" in subject.strip() or "\r" in subject:
        return "a subject is one line"
    try:
        _SUBJECTS.from_string(subject)
    except TemplateSyntaxError as exc:
        return f"subject does not compile: {exc.message}"
    except TemplateError as exc:
        return f"subject does not compile: {exc}"
    return None


def _template(
    reader: NodeReader, item: Entry, fields: dict[str, Entry], templates: TemplateFolder
) -> str | None:
    if "template" not in fields:
        reader.problem(
            item.line,
            f"{item.key}.template",
            "missing 'template' (a file in the templates folder, like welcome.mjml; or "
            "'task:' for a task for a person, 'webhook:' to hand the step to another system)",
        )
        return None
    entry = fields["template"]
    name = reader.string(entry, what="a template file name")
    if name is None:
        return None
    wrong = templates.check(name)
    if wrong is not None:
        reader.problem(entry.line, entry.key, wrong)
        return None
    return name


def subject_event_fields(subjects: Iterable[str]) -> frozenset[str] | None:
    """The `event.data` fields these subjects show (`{{ event.data.product }}`); None when
    one of them uses `event.data` some other way, so that every field may reach it."""
    fields: set[str] = set()
    for subject in subjects:
        try:
            tree = _SUBJECTS.parse(subject)
        except TemplateError:
            continue  # reported when the campaign loads
        whole = 0  # every `event.data` in the subject...
        for data in tree.find_all(nodes.Getattr):
            if data.attr == "data" and isinstance(data.node, nodes.Name):
                whole += data.node.name == "event"
        named = 0  # ...and the ones that name a field
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            assert isinstance(node, nodes.Getattr | nodes.Getitem)
            inner = node.node
            if not (
                isinstance(inner, nodes.Getattr)
                and inner.attr == "data"
                and isinstance(inner.node, nodes.Name)
                and inner.node.name == "event"
            ):
                continue
            if isinstance(node, nodes.Getattr):
                fields.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                fields.add(node.arg.value)
            else:
                return None
            named += 1
        if whole > named:
            return None
    return frozenset(fields)
