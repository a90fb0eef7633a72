"""End to end: plan -> render -> MIME -> DKIM -> send -> record, into Postfix's smtp-sink.

    .venv/bin/python bench/send.py [--emails 5000] [--db sqlite|postgresql] [--processes 1|2]
                                   [--chunk 4] [--profile]

Needs Debian's `postfix` package (smtp-sink, smtp-source). In one run:
1. the ceiling: `smtp-source` pushes the same number of ~30 KB messages into `smtp-sink`
   over 4 sessions;
2. dripper: a project whose only campaign sends the ~30 KB personalised MJML email of
   bench/render.py (tracked links, open pixel) at once on each purchase, DKIM RSA-2048,
   [transport] kind = "smtp" on loopback (security "none", concurrency 4). Timed: recording
   the N purchases (`Planner.record_events`, which plans the N sends) and `send_due` until
   the outbox is empty, in one process or in two processes sharing a PostgreSQL database.
Reports emails/s and, with --profile, where the time goes (cProfile, one process).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

# the same email as bench/render.py
from render import CONFIG, EMAIL, FOOTER, LAYOUT

if TYPE_CHECKING:
    from dripper.runner import Runner

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/dripper_bench_send"
NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
CAMPAIGN = """name: spring
trigger: {event: purchase}
steps:
  - id: spring
    after: 0
    subject: "{{ customer.first_name }}, spring coffees are here"
    template: spring.mjml
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen[bytes]:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink).exists():
        sys.exit("smtp-sink not found: apt-get install postfix")
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([sink, *user, f"127.0.0.1:{port}", "1024"])
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    sys.exit("smtp-sink did not start")


def ceiling(port: int, messages: int) -> float:
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    start = time.perf_counter()
    subprocess.run(
        [source, "-s", "4", "-m", str(messages), "-l", "30000", "-c", f"127.0.0.1:{port}"],
        check=True,
        capture_output=True,
    )
    return messages / (time.perf_counter() - start)


def make_project(root: Path, port: int, url: str, chunk: int = 4) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    (root / "templates" / "partials").mkdir(parents=True)
    (root / "campaigns").mkdir()
    (root / "templates" / "layout.mjml").write_text(LAYOUT)
    (root / "templates" / "partials" / "footer.mjml").write_text(FOOTER)
    (root / "templates" / "spring.mjml").write_text(EMAIL)
    (root / "campaigns" / "spring.yaml").write_text(CAMPAIGN)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (root / "dkim.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    config = root / "config.toml"
    config.write_text(
        CONFIG
        + f"""
[database]
url = "{url}"

[transport]
kind = "smtp"
host = "127.0.0.1"
port = {port}
security = "none"
concurrency = 4

[dkim]
domain = "acme.test"
selector = "bench"
private_key = "dkim.pem"

[sending]
batch_size = 500
chunk = {chunk}
"""
    )
    return config


def runner_for(config_path: Path, owner: str) -> Runner:
    from dripper.campaigns import load_campaigns
    from dripper.config import load_config
    from dripper.dkim import DkimSigner
    from dripper.render import Renderer
    from dripper.runner import Runner
    from dripper.services.delivery import Sender
    from dripper.store import open_store
    from dripper.transport.smtp import SmtpTransport

    config = load_config(config_path)
    campaigns, problems = load_campaigns(config.campaigns_dir, config.templates_dir)
    assert not problems, problems
    store = open_store(config.database_url)
    store.ensure_schema()
    dkim = config.dkim
    assert dkim.private_key is not None, "the bench's config.toml names a DKIM key"
    sender = Sender(
        config,
        store,
        campaigns,
        renderer=Renderer(config),
        transport=SmtpTransport.from_config(config),
        signer=DkimSigner.from_file(dkim.domain, dkim.selector, dkim.private_key),
        owner=owner,
    )
    return Runner(config, store, campaigns, sender=sender)


def record(config_path: Path, emails: int) -> float:
    from dripper.customers.model import CustomerData
    from dripper.store.customers import _insert
    from dripper.store.ingest import NewEvent

    runner = runner_for(config_path, "planner")
    coffees = ["Kenya AA", "Colombia Huila", ""]
    with runner.store.transaction() as conn:  # the customers, as an import leaves them
        _insert(
            conn,
            [
                CustomerData(
                    email=f"customer.{i}@example.com",
                    first_name=f"Customer{i}",
                    last_name="Example",
                    timezone="Europe/London",
                    locale="en-GB",
                    tags=("espresso", "filter")[: i % 3],
                    attributes={"favorite_coffee": coffees[i % 3]},
                )
                for i in range(emails)
            ],
            {},
            NOW,
        )
    start = time.perf_counter()
    report = runner.planner.record_events(
        (
            NewEvent(f"customer.{i}@example.com", "purchase", NOW, {"amount": 24})
            for i in range(emails)
        ),
        now=NOW,
    )
    assert report.enrolled == emails, report.summary()
    return time.perf_counter() - start


def send(config_path: Path, owner: str) -> tuple[int, float]:
    runner = runner_for(config_path, owner)
    transport = runner.sender.transport

    async def go() -> int:
        try:
            report = await runner.sender.send_due(NOW)
        finally:
            await transport.close()
        if report.failed or report.deferred or report.ambiguous:
            sys.exit(f"not every email was sent: {report.summary()}")
        return report.sent

    start = time.perf_counter()
    sent = asyncio.run(go())
    return sent, time.perf_counter() - start


def fresh_pg() -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS dripper_bench_send WITH (FORCE)")
        conn.exec_driver_sql("CREATE DATABASE dripper_bench_send")
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=5000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--processes", type=int, choices=[1, 2], default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--chunk", type=int, default=4, help="[sending] chunk")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # config path: one sending process
    args = parser.parse_args()
    os.environ.setdefault("DRIPPER_SECRET", "bench-secret-not-for-production")
    if args.child:
        sent, seconds = send(Path(args.child), f"bench-{os.getpid()}")
        print(json.dumps({"sent": sent, "seconds": seconds}))
        return
    if args.processes == 2 and args.db != "postgresql":
        sys.exit("two processes share an outbox only on PostgreSQL: add --db postgresql")

    port = free_port()
    sink = start_sink(port)
    try:
        top = ceiling(port, args.emails)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            if args.db == "postgresql":
                fresh_pg()
                url = PG_URL
            else:
                url = f"sqlite:///{root / 'bench.db'}"
            config = make_project(root, port, url, args.chunk)
            planning_s = record(config, args.emails)
            if args.processes == 1 and args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                sent, sending_s = send(config, "bench")
                profiler.disable()
            elif args.processes == 1:
                sent, sending_s = send(config, "bench")
            else:
                start = time.perf_counter()
                children = [
                    subprocess.Popen(
                        [sys.executable, __file__, "--child", str(config)],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(args.processes)
                ]
                outputs = [
                    json.loads(c.communicate()[0].strip().splitlines()[-1]) for c in children
                ]
                sending_s = time.perf_counter() - start
                sent = sum(int(o["sent"]) for o in outputs)
                print("per process sent:", [o["sent"] for o in outputs])
        assert sent == args.emails, (sent, args.emails)
        n = args.emails
        print(f"smtp-source -> smtp-sink (ceiling, 4 sessions): {top:8,.0f} msgs/s")
        print(f"ratio to the ceiling (end to end): {n / (planning_s + sending_s) / top:.3f}")
        print(
            f"dripper, {args.processes} process(es), {args.db}, chunk {args.chunk}, DKIM RSA-2048, "
            f"~30 KB MJML, "
            f"tracked: planning {n / planning_s:8,.0f}/s; "
            f"render+sign+send+record {n / sending_s:8,.0f} emails/s; "
            f"end to end {n / (planning_s + sending_s):8,.0f} emails/s"
        )
        if args.profile and args.processes == 1:
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(
                r"(render/renderer.py.*\(render\)|dkim.py.*\(sign\)|smtp.*\(send\)|"
                r"claim_due|record_results|open_attempts|after_results|_deliver|send_due|send_batch)"
            )
            stats.sort_stats("tottime").print_stats(25)  # the largest costs, by function
    finally:
        sink.terminate()
        sink.wait()
        if args.db == "postgresql" and not args.child:
            import sqlalchemy as sa

            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql("DROP DATABASE IF EXISTS dripper_bench_send WITH (FORCE)")
            admin.dispose()


if __name__ == "__main__":
    main()
