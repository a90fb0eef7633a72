"""`dripper serve`: tracking pixel, click redirects, unsubscribe, one-click answers,
referral links, the events API and shop webhooks, inbound mail, health and metrics.

    app.py      the routes of the links in emails, /healthz, /metrics
    api.py      /api/events and the shop webhooks (shops.py reads their payloads)
    writer.py   the bounded queue and batch writer of opens and clicks
    pages.py    the pages a customer sees
    metrics.py  the Prometheus registry
"""
