"""`dripper serve`: tracking pixel, click redirects, unsubscribe, one-click answers,
referral links, the events API and shop webhooks, inbound mail, health and metrics.

    app.py      the routes of the links in emails, /healthz, /metrics
    fastpath.py the pixel and the redirect, answered before the router
    api.py      /api/events and the shop webhooks (shops/ reads their payloads)
    writer.py   the bounded queue of opens and clicks, handed over in batches
    hitproc.py  the process that classifies and writes each batch
    directory.py whether a token's delivery is ours (the one read before an answer)
    pages.py    the pages a customer sees
    metrics.py  the Prometheus registry
"""
