"""The question a pixel or a redirect asks before it answers (`dripper.store.directory`): is
this delivery ours? Asked of a real database on each side, the way `serve` asks it: many
requests at once, their lookups gathered into one query per turn of the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dripper.store.directory import DeliveryDirectory
from tests.support.serve import Shop, free_port
from tests.web.test_hitproc import sent


def counting_flushes(directory: DeliveryDirectory, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many lookups each batch query carried, in order."""
    sizes: list[int] = []
    name = "_sqlite_flush" if directory.url.drivername.startswith("sqlite") else "_pg_flush"
    flush = getattr(directory, name)

    def counted() -> None:
        sizes.append(len(directory._pending))
        flush()

    monkeypatch.setattr(directory, name, counted)
    return sizes


def test_the_lookups_of_one_turn_go_as_one_query_and_each_gets_its_answer(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent deliveries are ours, unknown ones are not, one asked twice at once is answered
    twice, one sent under another From domain is found with the domains dripper gave
    (store/message_domains.py); and all the lookups
    made in one turn of the loop went to the database as one query."""
    emails = sent(shop)
    known = [delivery for delivery, _ in emails]
    domain = emails[0][1]
    unknown = ["0" * 26, "f" * 26]

    async def ask(directory: DeliveryDirectory, ids: list[str]) -> list[bool | None]:
        try:
            assert await directory.exists(known[-1])  # connected, as in a running server
            sizes.clear()
            return list(await asyncio.gather(*(directory.exists(d) for d in ids)))
        finally:
            await directory.close()

    # Nothing remembered (dripper.store.known, tested on its own): every lookup is asked.
    directory = DeliveryDirectory(shop.db_url, domain, remember=False)
    sizes = counting_flushes(directory, monkeypatch)
    asked = [*known, *unknown, known[0]]
    answers = asyncio.run(ask(directory, asked))
    assert answers == [True] * len(known) + [False, False, True]
    # The repeated id is one key of the batch, answered twice.
    assert sizes == [len(known) + len(unknown)]

    # The From domain changed since these were sent: the domains dripper gave find them.
    elsewhere = DeliveryDirectory(shop.db_url, "another.example", remember=False)
    assert asyncio.run(ask(elsewhere, known[:2] + unknown[:1])) == [True, True, False]


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_a_database_that_does_not_answer_is_none_not_an_error(
    which: str, tmp_path: Path
) -> None:
    """Every lookup of the batch says None (the caller still answers a redirect) when the
    database cannot be read, and none raises."""
    url = (
        f"sqlite:///{tmp_path / 'missing.db'}"
        if which == "sqlite"
        else f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    )

    async def ask() -> list[bool | None]:
        directory = DeliveryDirectory(url, "acme.test")
        try:
            return list(await asyncio.gather(*(directory.exists(d) for d in ("a1", "b2", "c3"))))
        finally:
            await directory.close()

    assert asyncio.run(ask()) == [None, None, None]
