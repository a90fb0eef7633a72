"""Fixtures for the integration tests that need more than a database."""

from __future__ import annotations

from tests.support.dovecot import dovecot  # noqa: F401 (a real Dovecot per test)
