"""The webhooks a small shop already has, read as dripper events.

Pure: a topic and its parsed payload in, events in the events API's shape out, no I/O.
`signature_ok` checks a raw body's signature in constant time before anything is parsed.

    shopify_events("orders/create", order)       -> [purchase]  id shopify:order:<id>
    shopify_events("refunds/create", refund)     -> [refund]    id shopify:refund:<id>
    woocommerce_events("order.created", order)   -> [purchase]  id woocommerce:order:<id>
    woocommerce_events("order.updated", order)   -> [refund...] id woocommerce:refund:<id>
    any other topic                              -> None (not handled: answer 200, ignore)

A handled topic that holds nothing to record (no address, no id, a refund of nothing, an
update that is no refund) is `[]`. Each event is a dict with exactly these keys:

    type         "purchase" | "refund"
    id           "<shop>:order:<id>" | "<shop>:refund:<id>" (the events API's `id`)
    email        the buyer's address; a refund without one has `order_event` instead
    order_event  the id of the purchase event this refund belongs to: its customer is the
                 refund's customer (Shopify's refunds/create payload carries no address)
    at           ISO 8601 time with an offset; left out when the shop sent none
    data         purchase: amount, currency, order, ref, items, product
                 refund:   order (the purchase event's id), amount (> 0), currency
    customer     purchase only: first_name, last_name, locale, marketing

A key of `data` or `customer` whose value is missing or empty is left out (an empty value
never overwrites on our side anyway). Every text in them is one line and bounded: a subject
may show `event.data.product`, a name goes into a To: header, and a value the events API
would refuse makes the shop retry the same delivery for days.

    signature.py    the HMAC both shops put in a header
    shopify.py      orders/create and refunds/create
    woocommerce.py  order.created and order.updated
    common.py       what both read the same way: one-line texts, money, times, codes,
                    the order's lines, the events' shape
"""

from __future__ import annotations

from dripper.web.shops.common import MAX_ITEMS, TEXT_MAX, Event
from dripper.web.shops.shopify import shopify_events
from dripper.web.shops.signature import signature_ok
from dripper.web.shops.woocommerce import woocommerce_events

__all__ = [
    "MAX_ITEMS",
    "TEXT_MAX",
    "Event",
    "shopify_events",
    "signature_ok",
    "woocommerce_events",
]
