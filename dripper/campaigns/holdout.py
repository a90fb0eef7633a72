"""`holdout: 10%` on a campaign (DESIGN 17): read, and refused where it means nothing (a
transactional campaign: a receipt is never withheld). Who is held out is the planner's
(`dripper.engine.plan.held_out`)."""

from __future__ import annotations

import re

from dripper.campaigns.yamlnodes import BAD, Entry, NodeReader


def read_holdout(reader: NodeReader, entry: Entry, *, transactional: bool) -> float | None:
    """`holdout: 10%`: the share of customers held out, as a percentage (0 < N <= 50)."""
    value = reader.scalar(entry, "a holdout")
    if value is BAD:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        reader.problem(entry.line, "holdout", f"write the share with %, like {value}%")
        return None
    text = reader.string(entry, what="a holdout")
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", text)
    if match is None or not 0 < float(match.group(1)) <= 50:
        reader.problem(
            entry.line,
            "holdout",
            f"expected a share from 0.01% to 50%, like 10%, got {text!r}",
        )
        return None
    if transactional:
        reader.problem(
            entry.line,
            "holdout",
            "a transactional campaign has no holdout: a receipt is never withheld; remove "
            "'holdout' or 'transactional'",
        )
        return None
    return float(match.group(1))
