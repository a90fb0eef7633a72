"""The package's shape (issue 25): no import circles, counting every import (at the top, in a
function, or only for type checking), and the store the one place that speaks SQL or knows
which database it is."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import dripper

PACKAGE = Path(dripper.__file__).parent

# SQLAlchemy's statement builders, a raw SQL statement, the dialect.
SQL = re.compile(
    r"\bsa\.(select|insert|update|delete|text|and_|or_|func)\b"
    r"|^\s*(import sqlalchemy|from sqlalchemy(?!\.exc))"
    r"|[\"'](SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM) "
    r"|\.dialect\b",
    re.MULTILINE,
)


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The package's modules `name` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" for a in node.names]
        for target in targets:
            if target.startswith("dripper"):
                found = resolve(target)
                if found is not None and found != name:
                    yield found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    """No import circle, even through a lazy or a type-checking import: each module can be
    read, tested and moved without the other."""
    known = modules()
    graph = {name: set(imports(name, path, known)) for name, path in known.items()}
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    """The check above can fail: a circle of three is found, a chain is not."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_sql_stays_in_the_store() -> None:
    """Outside dripper/store/ no module builds SQL, holds a statement or reads the dialect
    (catching the database's errors is allowed: that is not speaking SQL)."""
    speaking = {
        name
        for name, path in modules().items()
        if not name.startswith("dripper.store") and SQL.search(path.read_text())
    }
    assert speaking == set(), "SQL outside dripper/store/: move it into a store function"


def test_the_sql_finder_finds_sql() -> None:
    """The check above can fail: each kind of SQL it looks for is found, plain code is not."""
    for text in (
        "rows = conn.execute(sa.select(t.c.id))",
        "import sqlalchemy as sa",
        "    from sqlalchemy.engine import Connection",
        'conn.exec_driver_sql("SELECT 1")',
        "if store.dialect == 'sqlite':",
    ):
        assert SQL.search(text), text
    assert not SQL.search("from sqlalchemy.exc import OperationalError")
    assert not SQL.search("store.upsert_customers_in(conn, rows, now=now)")
