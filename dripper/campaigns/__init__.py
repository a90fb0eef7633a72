"""Campaign files: loading, validation and the values they turn into (DESIGN 2).

    campaigns, problems = load_campaigns(Path("campaigns"), Path("templates"))

`load_campaigns` never raises for a bad file; it returns the campaigns that loaded cleanly and
every problem found, each naming file, line and key.
"""

from __future__ import annotations

from dripper.campaigns.expressions import Expression, ExpressionError
from dripper.campaigns.loader import load_campaigns
from dripper.campaigns.model import (
    Campaign,
    DateTrigger,
    Edition,
    EventTrigger,
    Goal,
    Schedule,
    Step,
    Trigger,
    WhenTrigger,
)

__all__ = [
    "Campaign",
    "DateTrigger",
    "Edition",
    "EventTrigger",
    "Expression",
    "ExpressionError",
    "Goal",
    "Schedule",
    "Step",
    "Trigger",
    "WhenTrigger",
    "load_campaigns",
]
