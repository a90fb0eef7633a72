"""Loading and validating a folder of campaign files (DESIGN 2).

Nothing here raises for a bad file: every problem of every file is collected, so `dripper check`
can list them all at once, and the campaigns that loaded cleanly are returned alongside.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import yaml

from dripper.campaigns.editions import load_editions
from dripper.campaigns.holdout import read_holdout
from dripper.campaigns.model import (
    Campaign,
    DateTrigger,
    Edition,
    EventTrigger,
    Goal,
    SampleEvent,
    Schedule,
    Trigger,
    WhenTrigger,
)
from dripper.campaigns.steps import TemplateFolder, read_expression, read_steps
from dripper.campaigns.yamlnodes import Entry, NodeReader, compose, read_source
from dripper.errors import Problem

NAME = re.compile(r"[a-z0-9-]+")
NAME_RULE = "use lower-case letters, digits and '-'"
# The same rule as `dripper event TYPE`, so a trigger can never name an event that cannot occur.
EVENT = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
EVENT_RULE = "lower-case letters, digits, '_', '-' and '.', starting with a letter"
TOP_KEYS = (
    "name",
    "description",
    "trigger",
    "schedule",
    "goal",
    "exit_on",
    "audience",
    "transactional",
    "topic",
    "holdout",
    "language",
    "from",
    "editions",
    "sample_event",
    "steps",
)
SAMPLE_EVENT_KEYS = ("data", "id")
TOPIC = re.compile(r"[a-z][a-z0-9_-]{0,39}")  # as [topics] in config.toml
TOPIC_RULE = "a name from [topics] in config.toml, like news"
LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
LANGUAGE_RULE = "a language tag, like en, de or pt-BR"
TRIGGER_KEYS = ("event", "if", "date", "annually", "when", "repeat")
TRIGGER_KINDS = {"event": ("if",), "date": ("annually",), "when": ("repeat",)}
_OWNERS = {"if": "an 'event'", "annually": "a 'date'", "repeat": "a 'when'"}
SCHEDULE_KEYS = ("every", "starting", "once")
GOAL_KEYS = ("event", "within")
EXIT_EVENTS = ("reply",)


def load_campaigns(
    campaigns_dir: Path, templates_dir: Path, *, display_base: Path | None = None
) -> tuple[list[Campaign], list[Problem]]:
    """Every `*.yaml`/`*.yml` file directly in `campaigns_dir`, in name order.

    Returns the campaigns that loaded without a problem and every problem found in the folder,
    sorted by file and line. File names in problems are relative to `display_base` (default:
    the current directory) when they are under it.
    """
    base = (display_base if display_base is not None else Path.cwd()).absolute()

    def display(path: Path) -> str:
        try:
            return str(path.absolute().relative_to(base))
        except ValueError:
            return str(path)

    if not campaigns_dir.is_dir():
        what = "is not a folder" if campaigns_dir.exists() else "not found"
        message = f"campaigns folder {what} (set [project] campaigns in config.toml)"
        return [], [Problem(display(campaigns_dir), None, None, message)]

    problems: list[Problem] = []
    templates = TemplateFolder(templates_dir, display(templates_dir))
    if not templates.present:
        message = "templates folder not found (set [project] templates in config.toml)"
        problems.append(Problem(templates.shown, None, None, message))

    campaigns: list[Campaign] = []
    owners: dict[str, str] = {}  # campaign name -> file that has it
    paths = sorted(
        p
        for p in campaigns_dir.iterdir()
        if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
    )
    for path in paths:
        loaded = _CampaignFile(path, display(path), templates, display)
        campaign = loaded.load()
        if loaded.name is not None:
            if loaded.name in owners:
                loaded.problem(
                    loaded.name_line,
                    "name",
                    f"campaign name '{loaded.name}' is already used by {owners[loaded.name]}"
                    " (names must be unique: set a different 'name:')",
                )
            else:
                owners[loaded.name] = loaded.file
        problems += loaded.problems
        if campaign is not None and not loaded.problems:
            campaigns.append(campaign)
    problems.sort(key=lambda p: (p.file, p.line or 0))
    return campaigns, problems


class _CampaignFile:
    """One campaign file being read; `problems` collects everything wrong with it."""

    def __init__(
        self, path: Path, file: str, templates: TemplateFolder, display: Callable[[Path], str]
    ) -> None:
        self.path = path
        self.file = file
        self.templates = templates
        self.display = display
        self.problems: list[Problem] = []
        self.name: str | None = None  # known once the top level is read
        self.name_line = 1

    def problem(self, line: int | None, key: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, line, key, message))

    def load(self) -> Campaign | None:
        text, error = read_source(self.path)
        if text is None:
            self.problem(None, None, error)
            return None
        root, loader, syntax = compose(text)
        if syntax is not None:
            self.problems.append(dataclasses.replace(syntax, file=self.file))
            return None
        if root is None or loader is None:
            self.problem(
                1,
                None,
                "the file is empty: a campaign needs a 'trigger' or a 'schedule', and 'steps'",
            )
            return None
        try:
            reader = NodeReader(self.file, loader, self.problems)
            top = Entry("", reader.line(root), root)
            if not isinstance(root, yaml.MappingNode):
                self.problem(
                    top.line,
                    None,
                    "the top level must be a mapping of keys (name, trigger, steps, ...), "
                    "not a list or a single value",
                )
                return None
            fields = reader.mapping(top, TOP_KEYS)
            return None if fields is None else self._campaign(reader, top, fields)
        finally:
            loader.dispose()

    # -- the top level -----------------------------------------------------------------------

    def _campaign(
        self, reader: NodeReader, top: Entry, fields: dict[str, Entry]
    ) -> Campaign | None:
        self._name(reader, fields)
        description = ""
        if "description" in fields:
            description = reader.string(fields["description"], what="a description") or ""
        trigger = self._trigger(reader, fields["trigger"]) if "trigger" in fields else None
        schedule = self._schedule(reader, fields["schedule"]) if "schedule" in fields else None
        if "trigger" in fields and "schedule" in fields:
            self.problem(
                fields["schedule"].line,
                "schedule",
                "a campaign has a 'trigger' or a 'schedule', not both: split it into two campaigns",
            )
        elif "trigger" not in fields and "schedule" not in fields:
            self.problem(
                top.line,
                "trigger",
                "no 'trigger' or 'schedule': say when customers enter the campaign, "
                "like trigger: {event: purchase}",
            )
        goal = self._goal(reader, fields["goal"]) if "goal" in fields else None
        exit_on = self._exit_on(reader, fields["exit_on"]) if "exit_on" in fields else frozenset()
        audience = read_expression(reader, fields["audience"]) if "audience" in fields else None
        transactional = False
        if "transactional" in fields:
            transactional = bool(reader.boolean(fields["transactional"]))
        topic = topic_line = None
        if "topic" in fields:
            topic_line = fields["topic"].line
            topic = reader.string(
                fields["topic"], what="a topic name", pattern=TOPIC, rule=TOPIC_RULE
            )
            if topic is not None and transactional:
                self.problem(
                    topic_line,
                    "topic",
                    "a transactional campaign has no topic: every customer gets it whatever "
                    "they chose; remove 'topic' or 'transactional'",
                )
        holdout = None
        if "holdout" in fields:  # DESIGN 17: a share held out, to prove the campaign works
            holdout = read_holdout(reader, fields["holdout"], transactional=transactional)
        sender = sender_line = None
        if "from" in fields:  # the campaign's own From (DESIGN 16): the owner's name, say
            sender_line = fields["from"].line
            sender = reader.string(fields["from"], what="a From address")
            if sender is not None and (problem := _sender_problem(sender)):
                self.problem(sender_line, "from", problem)
                sender = None
        language = None
        if "language" in fields:  # the language the campaign's text is written in
            language = reader.string(
                fields["language"], what="a language", pattern=LANGUAGE, rule=LANGUAGE_RULE
            )
        editions: tuple[Edition, ...] = ()
        editions_dir = None
        if "editions" in fields:
            if "schedule" not in fields:
                self.problem(
                    fields["editions"].line,
                    "editions",
                    "'editions' needs a 'schedule': each scheduled run sends the next edition",
                )
            editions_dir, editions = self._editions(reader, fields["editions"])
        sample_event = None
        if "sample_event" in fields:
            sample_event = self._sample_event(reader, fields["sample_event"], trigger)
        if "steps" in fields:
            steps = read_steps(reader, fields["steps"], self.templates)
        else:
            self.problem(top.line, "steps", "missing 'steps': a campaign needs at least one")
            steps = ()
        if self.problems or self.name is None:
            return None
        return Campaign(
            name=self.name,
            description=description,
            path=self.path,
            file=self.file,
            trigger=trigger,
            schedule=schedule,
            goal=goal,
            exit_on=exit_on,
            audience=audience,
            transactional=transactional,
            topic=topic,
            topic_line=topic_line,
            language=language,
            sender=sender,
            sender_line=sender_line,
            holdout=holdout,
            steps=steps,
            editions=editions,
            editions_dir=editions_dir,
            sample_event=sample_event,
        )

    def _sample_event(
        self, reader: NodeReader, entry: Entry, trigger: Trigger | None
    ) -> SampleEvent | None:
        """`sample_event: {data: {...}, id: ...}`: the event previews and `check` show the
        emails with, in place of the one that will enroll each customer."""
        from dripper.campaigns.yamlnodes import BAD
        from dripper.errors import InputError
        from dripper.eventdata import check_event_data, check_event_id

        fields = reader.mapping(entry, SAMPLE_EVENT_KEYS)
        if fields is None:
            return None
        if trigger is None and self.problems:
            return None  # the trigger's own problem says enough
        if not isinstance(trigger, EventTrigger):
            self.problem(
                entry.line,
                "sample_event",
                "a sample event needs an event trigger (trigger: {event: ...}): no event "
                "enrolls the customers of this campaign",
            )
            return None
        data: object = {}
        if "data" in fields:
            data = reader.data(fields["data"])
            if data is BAD:
                return None
            if not isinstance(data, dict):
                self.problem(
                    fields["data"].line, "sample_event.data", "expected a mapping of fields"
                )
                return None
        ext_id = None
        if "id" in fields:
            ext_id = reader.string(fields["id"], what="an event id")
        try:
            assert isinstance(data, dict)
            check_event_data(data, where="sample_event.data")
            if ext_id is not None:
                check_event_id(ext_id, where="sample_event.id")
        except InputError as exc:
            self.problem(entry.line, "sample_event", str(exc))
            return None
        return SampleEvent(data, ext_id)

    def _name(self, reader: NodeReader, fields: dict[str, Entry]) -> None:
        if "name" in fields:
            entry = fields["name"]
            self.name_line = entry.line
            self.name = reader.string(entry, what="campaign name", pattern=NAME, rule=NAME_RULE)
        elif NAME.fullmatch(self.path.stem):
            self.name = self.path.stem
        else:
            self.problem(
                1,
                "name",
                f"the file name {self.path.name!r} is not a campaign name ({NAME_RULE}): "
                "rename the file or set 'name:'",
            )

    def _trigger(self, reader: NodeReader, entry: Entry) -> Trigger | None:
        fields = reader.mapping(entry, TRIGGER_KEYS)
        if fields is None:
            return None
        kinds = [kind for kind in TRIGGER_KINDS if kind in fields]
        if not kinds:
            self.problem(
                entry.line,
                "trigger",
                "a trigger needs one of 'event', 'date' or 'when', like trigger: {event: purchase}",
            )
            return None
        if len(kinds) > 1:
            second = fields[kinds[1]]
            self.problem(
                second.line,
                second.key,
                "a trigger has one of 'event', 'date' or 'when', "
                f"not both '{kinds[0]}' and '{kinds[1]}'",
            )
        kind = kinds[0]
        for key in ("if", "annually", "repeat"):
            if key in fields and key not in TRIGGER_KINDS[kind]:
                self.problem(
                    fields[key].line,
                    fields[key].key,
                    f"'{key}' goes with {_OWNERS[key]} trigger, not with '{kind}'",
                )
        if kind == "event":
            event = reader.string(
                fields["event"], what="event type", pattern=EVENT, rule=EVENT_RULE
            )
            condition = read_expression(reader, fields["if"]) if "if" in fields else None
            return None if event is None else EventTrigger(event, condition)
        if kind == "date":
            date = read_expression(reader, fields["date"])
            annually = reader.boolean(fields["annually"]) if "annually" in fields else False
            return None if date is None or annually is None else DateTrigger(date, annually)
        condition = read_expression(reader, fields["when"])
        repeat = reader.boolean(fields["repeat"]) if "repeat" in fields else False
        return None if condition is None or repeat is None else WhenTrigger(condition, repeat)

    def _schedule(self, reader: NodeReader, entry: Entry) -> Schedule | None:
        fields = reader.mapping(entry, SCHEDULE_KEYS)
        if fields is None:
            return None
        if "once" in fields:  # a one-off broadcast (DESIGN 14)
            for key in ("every", "starting"):
                if key in fields:
                    self.problem(
                        fields[key].line,
                        fields[key].key,
                        f"a schedule runs 'once' on a date or 'every' so often from 'starting', "
                        f"not both: remove '{key}' or 'once'",
                    )
            day = reader.date(fields["once"])
            return None if day is None else Schedule(None, day)
        every = self._required(fields, entry, "every", "how often it runs, like 6w (or once: DATE)")
        starting = self._required(fields, entry, "starting", "the first run, like 2027-01-05")
        period = None if every is None else reader.span(every)
        first = None if starting is None else reader.date(starting)
        if every is not None and period is not None and period.is_zero:
            self.problem(every.line, every.key, "must be more than 0, like 6w or 6mo")
            return None
        if every is not None and period is not None and period.approx < timedelta(days=1):
            written = str(every.node.value).strip()
            digits = "".join(ch for ch in written if ch.isdigit()) or "6"
            minutes = written.endswith("m")
            fix = f"{digits} months is {digits}mo" if minutes else "use 1d or more"
            what = f"{digits} minutes" if minutes else str(period)
            hint = f"{written} is {what}: a schedule runs at most once a day; {fix}"
            self.problem(every.line, every.key, hint)
            return None
        if every is not None and period is not None and period.fixed % timedelta(days=1):
            self.problem(
                every.line,
                every.key,
                f"{str(every.node.value).strip()} is not whole days: a schedule runs on a day "
                f"(its send_at says when); use {max(period.fixed.days, 1)}d or "
                f"{period.fixed.days + 1}d",
            )
            return None
        return None if period is None or first is None else Schedule(period, first)

    def _goal(self, reader: NodeReader, entry: Entry) -> Goal | None:
        fields = reader.mapping(entry, GOAL_KEYS)
        if fields is None:
            return None
        event_entry = self._required(fields, entry, "event", "the event that reaches it")
        event = None
        if event_entry is not None:
            event = reader.string(event_entry, what="event type", pattern=EVENT, rule=EVENT_RULE)
        within = None
        if "within" in fields:
            within = reader.span(fields["within"])
            if within is not None and within.is_zero:
                self.problem(fields["within"].line, fields["within"].key, "must be more than 0")
        return None if event is None else Goal(event, within)

    def _exit_on(self, reader: NodeReader, entry: Entry) -> frozenset[str]:
        items = reader.sequence(entry, allow_scalar=True) or []
        found = set()
        for item, value in reader.strings(items, "an event type"):
            if value in EXIT_EVENTS:
                found.add(value)
            else:
                self.problem(
                    item.line,
                    item.key,
                    f"unknown exit_on event {value!r} (only 'reply' for now; "
                    "unsubscribes and bounces always end every campaign)",
                )
        return frozenset(found)

    def _editions(
        self, reader: NodeReader, entry: Entry
    ) -> tuple[Path | None, tuple[Edition, ...]]:
        value = reader.string(entry, what="a folder name")
        if value is None:
            return None, ()
        folder = self.path.parent / value
        if not folder.is_dir():
            self.problem(
                entry.line,
                entry.key,
                f"editions folder {value!r} not found "
                f"(it is relative to this file: {self.display(folder)})",
            )
            return None, ()
        if not any(p.suffix == ".md" and not p.name.startswith(".") for p in folder.iterdir()):
            self.problem(
                entry.line,
                entry.key,
                f"no editions in {self.display(folder)}: write one as a .md file "
                "with 'title:' front matter",
            )
            return folder, ()
        return folder, load_editions(folder, self.display, self.problems)

    def _required(
        self, fields: dict[str, Entry], parent: Entry, key: str, what: str
    ) -> Entry | None:
        if key not in fields:
            self.problem(parent.line, f"{parent.key}.{key}", f"missing '{key}' ({what})")
            return None
        return fields[key]


def _sender_problem(value: str) -> str:
    """What is wrong with a campaign's `from:` ("" for nothing): one address, with an
    optional display name, on one line (the check `[sender] from` gets)."""
    from dripper.errors import DripperError
    from dripper.render.mime import Address

    try:
        Address.parse(value, "from")
    except DripperError as exc:
        return f"{exc}: write it like \"Ana at Acme <ana@acme.test>\""
    return ""
