"""The message ids dripper's own words use, found by parsing the code (Python's `ast`: a
`t("...")` or `_para(t, "...")` call anywhere, inside f-strings too) and the shipped
templates (Jinja's parser: `t("...")`). The catalogs must translate every one of them
(tests/unit/test_i18n.py); `python -m dripper.i18n.extract` writes `messages.pot`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import jinja2
from jinja2 import nodes

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (
    "web/pages.py",
    "web/signup.py",
    "web/app.py",
    "services/signups.py",
    "render/renderer.py",
    "web/tasks.py",
    "services/digests.py",
)
TEMPLATES = ("scaffold/templates/confirm.mjml", "scaffold/templates/digest.mjml")
CALLS = {"t": 0, "_para": 1, "words_for": 0}  # function name -> position of the message


def message_ids() -> list[str]:
    found: dict[str, None] = {}
    for name in SOURCES:
        found.update(dict.fromkeys(_from_python((ROOT / name).read_text("utf-8"))))
    env = jinja2.Environment(autoescape=True)
    for name in TEMPLATES:
        found.update(dict.fromkeys(_from_jinja(env, (ROOT / name).read_text("utf-8"))))
    return list(found)


def _from_python(source: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            position = CALLS.get(node.func.id)
            if position is None or len(node.args) <= position:
                continue
            arg = node.args[position]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value


def _from_jinja(env: jinja2.Environment, source: str) -> Iterator[str]:
    for call in env.parse(source).find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == "t" and call.args:
            arg = call.args[0]
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                yield arg.value


def pot() -> str:
    lines = ['msgid ""', 'msgstr ""', '"Content-Type: text/plain; charset=UTF-8\\n"', ""]
    for message in message_ids():
        lines += [f"msgid {_quoted(message)}", 'msgstr ""', ""]
    return "\n".join(lines)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    target = Path(__file__).parent / "messages.pot"
    target.write_text(pot(), encoding="utf-8")
    print(f"wrote {len(message_ids())} message ids to {target}")
