"""Fixtures for delivery tests: the fault-injecting SMTP server, shaped per test by
`@pytest.mark.smtp(faults=[Fault(...)], starttls=True, implicit_tls=False, auth=False)`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import project  # noqa: F401 (a scaffolded project, both databases)
from tests.support.certs import Certs, make_certs
from tests.support.smtpserver import FaultyServer


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "certs")


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest, certs: Certs) -> Iterator[FaultyServer]:
    marker = request.node.get_closest_marker("smtp")
    options = dict(marker.kwargs) if marker is not None else {}
    with FaultyServer(certs=certs, **options) as server:
        yield server
