"""Customer values shared by the store, the CSV import and the planning core."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

# Columns of the customer sheet that are fields; every other CSV column is an attribute.
FIELD_COLUMNS = ("email", "first_name", "last_name", "timezone", "locale", "tags", "marketing")
# Names computed from purchase events: never settable from a CSV or `customers add`.
DERIVED_NAMES = ("purchases", "total_spent", "first_purchase_at", "last_purchase_at")
# The lifetime models' values (DESIGN 17): None until a fit.
PREDICTED_NAMES = (
    "p_alive",
    "expected_purchases_90d",
    "expected_purchases_365d",
    "predicted_clv_365d",
)
# Every name `Customer.as_context` gives that is not an attribute: `customer.<name>` for
# one of these never reads a CSV column.
BUILTIN_NAMES = frozenset(
    {
        *FIELD_COLUMNS,
        "status",
        "subscribed",
        "topics",
        *DERIVED_NAMES,
        "created_at",
        "spend_percentile",
        "spend_rank",
        *PREDICTED_NAMES,
    }
)


class Status(enum.StrEnum):
    """A customer's marketing consent (`customer.marketing`, DESIGN 13): `subscribed` gets
    every campaign; `not_subscribed` (a buyer who did not opt in at checkout) only
    transactional email; `unsubscribed` nothing, and only the person's own confirmed
    signup undoes it (never a shop flag or an import)."""

    SUBSCRIBED = "subscribed"
    NOT_SUBSCRIBED = "not_subscribed"
    UNSUBSCRIBED = "unsubscribed"


@dataclass(frozen=True)
class CustomerData:
    """What an import or `customers add` says about a customer. `None` means "not given":
    an update never blanks a field it was not told about."""

    email: str  # normalised (see addresses.normalize_email)
    first_name: str | None = None
    last_name: str | None = None
    timezone: str | None = None
    locale: str | None = None
    tags: tuple[str, ...] | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    marketing: Status | None = None  # what the source says of consent; None: nothing
    # A time zone guessed (a shop order's billing country): set only where none is known.
    timezone_hint: str | None = None

    def merged_with(self, later: CustomerData) -> CustomerData:
        """Two rows for one address: later non-empty values win, tags are united."""
        tags: tuple[str, ...] | None
        if self.tags is None or later.tags is None:
            tags = later.tags if later.tags is not None else self.tags
        else:
            tags = tuple(dict.fromkeys(self.tags + later.tags))
        return CustomerData(
            email=self.email,
            first_name=later.first_name or self.first_name,
            last_name=later.last_name or self.last_name,
            timezone=later.timezone or self.timezone,
            locale=later.locale or self.locale,
            tags=tags,
            attributes={**self.attributes, **{k: v for k, v in later.attributes.items() if v}},
            marketing=later.marketing or self.marketing,
        )


@dataclass(frozen=True)
class Customer:
    """A stored customer with its derived purchase fields."""

    id: int
    email: str
    first_name: str
    last_name: str
    timezone: str | None
    locale: str | None
    tags: tuple[str, ...]
    attributes: Mapping[str, Any]
    status: Status
    created_at: datetime
    purchases: int = 0
    total_spent: Decimal = Decimal("0")
    first_purchase_at: datetime | None = None
    last_purchase_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    referral_code: str | None = None  # given when the first send is claimed
    spend_percentile: int | None = None  # 0-100 by lifetime spend, ties alike
    spend_rank: int | None = None  # 1 = the customer who spent most
    topics: tuple[str, ...] | None = None  # the topics kept (DESIGN 13); None: every topic
    p_alive: float | None = None  # DESIGN 17: P(still a customer), from the last fit
    expected_purchases_90d: float | None = None
    expected_purchases_365d: float | None = None
    predicted_clv_365d: float | None = None  # in the company currency

    def wants(self, topic: str | None) -> bool:
        """A campaign of `topic` may reach them (no topic: every customer)."""
        return topic is None or self.topics is None or topic in self.topics

    @property
    def subscribed(self) -> bool:
        """Marketing may reach them."""
        return self.status is Status.SUBSCRIBED

    @property
    def unsubscribed(self) -> bool:
        """Nothing may reach them, not even a transactional email."""
        return self.status is Status.UNSUBSCRIBED

    def as_context(self) -> Fields:
        """The `customer` seen by expressions and templates: attributes first, so a field
        or a derived value can never be shadowed by a CSV column of the same name."""
        ctx: dict[str, Any] = dict(self.attributes)
        ctx.update(
            email=self.email,
            first_name=self.first_name,
            last_name=self.last_name,
            timezone=self.timezone,
            locale=self.locale,
            tags=list(self.tags),
            status=self.status.value,
            marketing=self.status.value,
            subscribed=self.status is Status.SUBSCRIBED,
            topics=None if self.topics is None else list(self.topics),
            purchases=self.purchases,
            total_spent=self.total_spent,
            first_purchase_at=self.first_purchase_at,
            last_purchase_at=self.last_purchase_at,
            created_at=self.created_at,
            spend_percentile=self.spend_percentile or 0,
            spend_rank=self.spend_rank,
            p_alive=self.p_alive,
            expected_purchases_90d=self.expected_purchases_90d,
            expected_purchases_365d=self.expected_purchases_365d,
            predicted_clv_365d=self.predicted_clv_365d,
        )
        return Fields(ctx)


class Fields:
    """Read-only named values for expressions and templates.

    Not a dict: Jinja looks attributes up before items, so on a dict a CSV column called
    `items`, `keys`, `values` or `get` would resolve to the dict's method instead."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("customer fields are read-only")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Fields({self._values!r})"
