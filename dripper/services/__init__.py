"""The three services the daemon's pass composes (DESIGN 10), each one module, one job:

    planning.Planner     events and schedules in; enrollments and outbox rows out
    delivery.Sender      claim, check, render, send, record (leases, attempts, orphans)
    listening.Listener   what comes back (hits, inbound mail) in; events, suppressions out

They do the I/O (the store, the transport) around the pure core in `dripper.engine`.
`dripper.runner.Runner` composes them into one pass; the CLI and the Python API call them
through it.
"""
