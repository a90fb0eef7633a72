"""The daemon's structured log lines."""

from __future__ import annotations

import json
import logging

from dripper.cli.status import JsonFormatter


def test_json_lines_carry_the_message_level_and_extra_fields() -> None:
    record = logging.LogRecord(
        "dripper.run", logging.WARNING, "x.py", 1, "retry %s", ("soon",), None
    )
    record.sent = 12
    record.outbox_id = 7
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "retry soon"
    assert entry["level"] == "warning"
    assert entry["logger"] == "dripper.run"
    assert entry["sent"] == 12
    assert entry["outbox_id"] == 7
    assert entry["ts"].endswith("+00:00")
