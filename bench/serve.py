"""`dripper serve` under load: opens and clicks per second with recording on, next to a bare
starlette app answering the same bytes, in the same run, on the same machine.

    .venv/bin/python bench/serve.py [--db sqlite|postgresql] [--deliveries 100000]
                                    [--seconds 10] [--mpp 50000] [--announced]

Needs Debian's `wrk` (throughput; a Lua script spreads the requests over every delivery's
token) and `hey` (latency at a fixed 500 requests/s): `apt-get install wrk hey`.

1. N sent deliveries are seeded (customers, enrollments, outbox rows with Message-IDs) and
   a pixel and a click token signed for each.
2. One `dripper serve` process: wrk on /o/ for S seconds, then on /c/; after each, the queue
   is waited for and the rows counted: every answered hit must be stored.
3. The same wrk runs against a bare starlette app (one uvicorn process, the same GIF, a 302):
   the ceiling of this machine's HTTP stack.
   The ceiling is measured before serve starts and again after it stops (the higher
   counts), each after `sync`, so the kernel writing out the database is in neither.
   During serve's runs the CPU time of serve, of its hit writer process and of
   PostgreSQL is read from /proc: microseconds of CPU per hit, by process.
4. hey at 500/s for S seconds on /o/ and /c/ of `dripper serve`: p50 and p99; then the same
   rate spread over every delivery's token (`paced`, on a fixed schedule: hey repeats one
   URL), p50, p99 and the slowest.
5. Apple Mail Privacy Protection on a 100k newsletter: M prefetch opens (user agent
   `Mozilla/5.0`) as fast as wrk sends them; the queue depth is sampled every 0.2 s.
With `--announced` the sends get their Message-IDs only once serve runs, 500 to a
transaction as the sending daemon claims them: on PostgreSQL serve learns each from its
trigger's NOTIFY instead of reading it at start. The report says where each lookup was
answered (`lookups`: memory or database).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/dripper_bench_serve"
SECRET = "bench-serve-secret-0123456789abcdef"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SENT_AT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
LUA = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local ua = os.getenv("BENCH_UA")
local i = 0
local offset = 0
function setup(thread)
  offset = offset + 1
  thread:set("offset", offset * 7919)
end
function init(args)
  i = (offset or 0) % #paths
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], {["User-Agent"] = ua})
end
"""
BARE = '''
from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

GIF = {gif!r}


async def pixel(request):
    return Response(GIF, media_type="image/gif", headers={"Cache-Control": "no-store"})


async def click(request):
    return RedirectResponse("https://acme.test/", status_code=302)


app = Starlette(routes=[Route("/o/{token}", pixel), Route("/c/{token}", click)])
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        sys.exit(f"{tool} not found: apt-get install wrk hey")
    return found


def database(kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS dripper_bench_serve WITH (FORCE)")
        conn.exec_driver_sql("CREATE DATABASE dripper_bench_serve")
    admin.dispose()
    return PG_URL


def seed(url: str, deliveries: int) -> dict[int, str]:
    """N customers, each with one sent email, its Message-ID not yet given (`claim`):
    {outbox id: delivery id}."""
    from dripper.customers.model import CustomerData
    from dripper.engine.model import NewEnrollment, PlannedSend
    from dripper.store import bulk, open_store
    from dripper.store.customers import _insert
    from dripper.store.schema import customers, outbox

    store = open_store(url)
    store.ensure_schema()
    with store.transaction() as conn:
        _insert(
            conn,
            [CustomerData(email=f"c{i}@example.com") for i in range(deliveries)],
            {},
            SENT_AT,
        )
        ids = list(conn.execute(sa.select(customers.c.id).order_by(customers.c.id)).scalars())
        planned = [
            (cid, NewEnrollment("newsletter", "2027-03-01", SENT_AT, None,
                                (PlannedSend("edition", SENT_AT, 0),)))
            for cid in ids
        ]  # fmt: skip
        bulk.save_enrollments(conn, planned, now=SENT_AT)
        conn.execute(sa.update(outbox).values(status="sent", sent_at=SENT_AT))
        sends = list(conn.execute(sa.select(outbox.c.id).order_by(outbox.c.id)).scalars())
    store.close()
    return {oid: secrets.token_hex(13) for oid in sends}


def claim(url: str, deliveries: dict[int, str]) -> float:
    """Give the sends their Message-IDs, 500 to a transaction, as the sending daemon's
    claims do (on PostgreSQL each is announced to a listening serve); seconds taken."""
    from dripper.store import open_store
    from dripper.store.schema import outbox

    start = time.perf_counter()
    store = open_store(url)
    items = list(deliveries.items())
    update = sa.update(outbox).where(outbox.c.id == sa.bindparam("oid"))
    for i in range(0, len(items), 500):
        with store.transaction() as conn:
            conn.execute(
                update.values(message_id=sa.bindparam("mid")),
                [{"oid": oid, "mid": f"{d}@acme.test"} for oid, d in items[i : i + 500]],
            )
    store.close()
    return time.perf_counter() - start


def project(root: Path, url: str, port: int) -> Path:
    from click.testing import CliRunner

    from dripper.cli import cli

    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 0, result.output
    config = root / "config.toml"
    text = config.read_text().replace('url = "sqlite:///dripper.db"', f'url = "{url}"')
    text = text.replace('base_url = "http://127.0.0.1:8080"', f'base_url = "http://127.0.0.1:{port}"')
    config.write_text(text)
    return config


def wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit("the server exited")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit("the server did not start")


def wrk(port: int, paths: Path, seconds: int, ua: str) -> dict[str, float]:
    script = paths.with_suffix(".lua")
    script.write_text(LUA)
    done = subprocess.run(
        [need("wrk"), "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "BENCH_PATHS": str(paths), "BENCH_UA": ua},
    )  # fmt: skip
    out = done.stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": total,
        "per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "bad": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def hey(url: str, seconds: int) -> dict[str, float]:
    done = subprocess.run(
        [need("hey"), "-z", f"{seconds}s", "-q", "50", "-c", "10", "-H", f"User-Agent: {BROWSER}",
         "-disable-redirects", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = done.stdout
    found = {}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%+ in ([\d.]+) secs", out)
        found[f"p{pct}_ms"] = round(float(m.group(1)) * 1000, 2) if m else float("nan")
    found["per_second"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return found


def paced(
    port: int, paths: Path, seconds: int, rate: int = 500, connections: int = 10
) -> dict[str, float]:
    """Latency at a fixed rate, spread over every delivery's token (hey repeats one URL):
    `connections` keep-alive connections, each sending on a fixed schedule so that together
    they send `rate` a second. A request's latency counts from when it was due, not from
    when it went out: a slow answer delays the requests behind it, and that shows in the
    figures (no coordinated omission)."""
    import asyncio

    spread = paths.read_text().split()

    async def run() -> tuple[list[float], int]:
        loop = asyncio.get_running_loop()
        interval = connections / rate
        start = loop.time() + 0.2
        latencies: list[float] = []
        bad = 0

        async def connection(k: int) -> None:
            nonlocal bad
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            n = 0
            while (due := start + (k / connections + n) * interval) < start + seconds:
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                path = spread[(k * 7919 + n * 104729) % len(spread)]
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {BROWSER}\r\n\r\n"
                    .encode()
                )
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(loop.time() - due)
                bad += status not in (200, 302)
                n += 1
            writer.close()

        await asyncio.gather(*(connection(k) for k in range(connections)))
        return latencies, bad

    latencies, bad = asyncio.run(run())
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 2)

    return {"p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0),
            "per_second": round(len(latencies) / seconds, 1), "bad": bad}  # fmt: skip


def queue_depth(port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    m = re.search(r"^dripper_hit_queue_depth ([\d.e+]+)$", text, re.MULTILINE)
    return int(float(m.group(1))) if m else -1


def dropped(port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    m = re.search(r"^dripper_hits_dropped_total ([\d.e+]+)$", text, re.MULTILINE)
    return int(float(m.group(1))) if m else -1


def lookups(port: int) -> dict[str, int]:
    """Where serve found the deliveries: in memory (PostgreSQL told it) or by asking."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.findall(r'^dripper_delivery_lookups_total\{answer="(\w+)"\} ([\d.e+]+)$', text, re.M)
    return {answer: int(float(n)) for answer, n in found}


def drain(port: int) -> float:
    start = time.perf_counter()
    while queue_depth(port) > 0:
        time.sleep(0.1)
    time.sleep(0.2)  # the last batch's commit
    return time.perf_counter() - start


def stored(url: str, kind: str, *, machine: bool | None = None) -> int:
    from dripper.store import open_store
    from dripper.store.schema import tracking_events as t

    store = open_store(url)
    with store.reading() as conn:
        query = sa.select(sa.func.count()).where(t.c.kind == kind)
        if kind == "open":
            implied = sa.func.coalesce(t.c.data["implied"].as_string(), "")
            query = query.where(implied != "click")
        if machine is not None:
            query = query.where(t.c.machine.is_(machine))
        count = int(conn.execute(query).scalar_one())
    store.close()
    return count


def cpu_seconds(serve_pid: int | None = None) -> dict[str, float]:
    """CPU time so far (user + system) of serve, of its hit writer process and of every
    PostgreSQL process, read from /proc: where a hit's CPU goes on this machine (without
    a serve: PostgreSQL's alone)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {"serve": 0.0, "hit_writer": 0.0, "postgres": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        seconds = (int(stat[11]) + int(stat[12])) / tick
        if serve_pid is not None and int(entry) == serve_pid:
            found["serve"] += seconds
        elif serve_pid is not None and int(stat[1]) == serve_pid:  # the hit writer
            found["hit_writer"] += seconds
        elif comm.startswith("postgres"):
            found["postgres"] += seconds
    return found


def cpu_per_hit(before: dict[str, float], after: dict[str, float], hits: int) -> dict[str, float]:
    return {k: round((after[k] - before[k]) / max(hits, 1) * 1e6, 1) for k in before}


def rate(run: dict[str, float]) -> float:
    return run["per_second"]


def bare(folder: Path, opens: Path, clicks: Path, seconds: int) -> dict[str, dict[str, float]]:
    """wrk on the bare starlette app (same GIF, same 302), after the kernel has written
    out what the database left dirty."""
    from dripper.web.app import GIF

    os.sync()
    time.sleep(2)
    bare_app = folder / "bare_app.py"
    bare_app.write_text(BARE.replace("{gif!r}", repr(GIF)))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(folder), "bare_app:app",
         "--port", str(port), "--log-level", "warning", "--no-server-header"],
    )  # fmt: skip
    try:
        wait_for(port, proc)
        return {
            "open": wrk(port, opens, seconds, BROWSER),
            "click": wrk(port, clicks, seconds, BROWSER),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--mpp", type=int, default=50_000)
    parser.add_argument(
        "--announced",
        action="store_true",
        help="the sends get their Message-IDs while serve runs (a newsletter sent meanwhile; "
        "on PostgreSQL serve hears of each from its trigger), not before it starts",
    )
    args = parser.parse_args()
    from dripper.tokens import Keyring

    report: dict[str, Any] = {"db": args.db, "deliveries": args.deliveries}
    with tempfile.TemporaryDirectory(prefix="dripper-bench-serve-") as tmp:
        folder = Path(tmp)
        url = database(args.db, folder)
        port = free_port()
        config = project(folder / "shop", url, port)
        start = time.perf_counter()
        sends = seed(url, args.deliveries)
        if not args.announced:
            claim(url, sends)
        report["seed_seconds"] = round(time.perf_counter() - start, 1)
        deliveries = list(sends.values())
        keyring = Keyring.from_secret(SECRET)
        opens, clicks = folder / "opens.txt", folder / "clicks.txt"
        opens.write_text("".join(f"/o/{keyring.sign_open(d)}\n" for d in deliveries))
        clicks.write_text(
            "".join(f"/c/{keyring.sign_click(d, 'https://acme.test/shop')}\n" for d in deliveries)
        )
        # The ceiling, before serve runs and again after it (the higher one counts): the
        # database's writes of the serve runs are still being flushed by the kernel right
        # after them, and a single bare run there read up to a third low.
        report["bare_before"] = bare(folder, opens, clicks, args.seconds)
        env = {**os.environ, "DRIPPER_SECRET": SECRET}
        serve = subprocess.Popen(
            [str(Path(sys.executable).parent / "dripper"), "--config", str(config), "serve",
             "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for(port, serve)
            if args.announced:
                report["claim_seconds"] = round(claim(url, sends), 1)
            os.sync()
            time.sleep(2)
            cpu = cpu_seconds(serve.pid)
            report["dripper_open"] = wrk(port, opens, args.seconds, BROWSER)
            report["open_drain_seconds"] = round(drain(port), 2)
            report["open_cpu_us_per_hit"] = cpu_per_hit(
                cpu, cpu_seconds(serve.pid), report["dripper_open"]["requests"]
            )
            report["open_stored"] = stored(url, "open")
            os.sync()
            time.sleep(2)
            cpu = cpu_seconds(serve.pid)
            report["dripper_click"] = wrk(port, clicks, args.seconds, BROWSER)
            report["click_drain_seconds"] = round(drain(port), 2)
            report["click_cpu_us_per_hit"] = cpu_per_hit(
                cpu, cpu_seconds(serve.pid), report["dripper_click"]["requests"]
            )
            report["click_stored"] = stored(url, "click")
            first_open = opens.read_text().split()[1]
            first_click = clicks.read_text().split()[1]
            report["latency_open_500"] = hey(f"http://127.0.0.1:{port}{first_open}", args.seconds)
            report["latency_click_500"] = hey(f"http://127.0.0.1:{port}{first_click}", args.seconds)
            report["latency_open_500_spread"] = paced(port, opens, args.seconds)
            report["latency_click_500_spread"] = paced(port, clicks, args.seconds)
            drain(port)
            # Apple MPP: half of a newsletter's opens, prefetched at once.
            mpp = folder / "mpp.txt"
            mpp.write_text("".join(opens.read_text().splitlines(keepends=True)[: args.mpp]))
            depths: list[int] = []
            sampling = threading.Event()

            def sample() -> None:
                while not sampling.is_set():
                    depths.append(queue_depth(port))
                    time.sleep(0.2)

            sampler = threading.Thread(target=sample)
            sampler.start()
            before = stored(url, "open", machine=True)
            mpp_seconds = max(2, round(args.mpp / max(report["dripper_open"]["per_second"], 1)))
            report["mpp"] = wrk(port, mpp, mpp_seconds, "Mozilla/5.0")
            report["mpp"]["drain_seconds"] = round(drain(port), 2)
            sampling.set()
            sampler.join()
            report["mpp"]["max_queue_depth"] = max(depths)
            report["dropped"] = dropped(port)
            report["lookups"] = lookups(port)
            report["mpp"]["stored"] = stored(url, "open", machine=True) - before
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
        report["bare_after"] = bare(folder, opens, clicks, args.seconds)
    report["bare_open"] = max(report["bare_before"]["open"], report["bare_after"]["open"], key=rate)
    report["bare_click"] = max(
        report["bare_before"]["click"], report["bare_after"]["click"], key=rate
    )
    for kind in ("open", "click"):
        ratio = report[f"dripper_{kind}"]["per_second"] / report[f"bare_{kind}"]["per_second"]
        report[f"{kind}_ratio_to_bare"] = round(ratio, 2)
        # What was answered over the time it took to answer it *and* store it: a server
        # that answers fast and writes later only looks fast for as long as its queue holds.
        done = report[f"dripper_{kind}"]["requests"] - report[f"dripper_{kind}"]["bad"]
        sustained = done / (args.seconds + report[f"{kind}_drain_seconds"])
        report[f"{kind}_sustained_per_second"] = round(sustained, 1)
        report[f"{kind}_sustained_ratio_to_bare"] = round(
            sustained / report[f"bare_{kind}"]["per_second"], 2
        )
    for kind in ("open", "click"):
        # Negative: hits answered but still in flight when wrk stopped counting.
        answered = report[f"dripper_{kind}"]["requests"] - report[f"dripper_{kind}"]["bad"]
        report[f"{kind}_lost"] = answered - report[f"{kind}_stored"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
