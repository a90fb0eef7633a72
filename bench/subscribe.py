"""`POST /subscribe` under a steady load (DESIGN 13, issue 26): its latency at a fixed rate
on one `dripper serve` process with `[signup] enabled`, and what the signup routes leave
of `/o/` and `/c/` against a bare starlette app, in the same run, on the same machine.

    .venv/bin/python bench/subscribe.py [--db sqlite|postgresql] [--rate 200] [--seconds 10]
                                        [--deliveries 20000] [--ratio-seconds 5]

Needs Debian's `wrk` and `hey` (`apt-get install wrk hey`), as bench/serve.py does, whose
seeding, wrk runs and bare app this script reuses.

1. A fresh project (`dripper init`) with `[signup] enabled = true` and `per_ip` raised to
   "10000000/h": every POST comes from 127.0.0.1, and the per-IP limit (10/h by default)
   must not stop the load. The limit's query still runs on every POST and counts every
   row this run stored (all from one address): its worst case.
   PostgreSQL: a schema of its own in the database `test`, dropped at the end.
2. N sent deliveries are seeded with a signed pixel and click token each (bench/serve.py).
   The bare app is measured (wrk, 2 threads, 32 connections) before `serve` starts and
   again after it stops; the higher rate is the ceiling.
3. One `dripper serve`: wrk on /o/, then /c/ (each queue drained, the rows counted), then
   `paced`: form-encoded POSTs at `--rate` a second for `--seconds`, over 10 keep-alive
   connections on a fixed schedule, each to a new address; a POST's latency counts from
   when it was due (a slow answer delays the ones behind it: no coordinated omission).
   Then hey at the same rate (10 workers, one address repeated: each POST still stores a
   row). After each, the `signups` rows are counted: every 200 must be one. During the
   paced POSTs the CPU time of `serve`, of its hit writer and of PostgreSQL is read from
   /proc: microseconds of CPU per POST, by process.
4. Printed: JSON (everything), then a summary with the targets: p99 under 50 ms at 200/s,
   and /o/ and /c/ at 0.6 or more of the bare app's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import serve as serve_bench  # bench/serve.py: seeding, wrk, the bare app

PG_TEST = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SECRET = "bench-subscribe-secret-0123456789"
PER_IP = "10000000/h"
CONNECTIONS = 10
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.6


def database(kind: str, folder: Path) -> tuple[str, str | None]:
    """The database URL, and the PostgreSQL schema made for it (None on SQLite)."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}", None
    schema = f"bench_subscribe_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_TEST, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    admin.dispose()
    return f"{PG_TEST}?options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    admin = sa.create_engine(PG_TEST, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    admin.dispose()


def set_signup(config: Path, **values: str) -> None:
    """Set keys of the `[signup]` section (TOML literals, as given) in place."""
    text = config.read_text()
    start = text.index("\n[signup]")
    end = text.index("\n[", start + 1)
    section = text[start:end]
    for key, value in values.items():
        section, found = re.subn(
            rf"^{key} = [^#\n]*?(\s*#|$)", f"{key} = {value}\\1", section, count=1, flags=re.M
        )
        assert found == 1, f"[signup] {key} not in {config}"
    config.write_text(text[:start] + section + text[end:])


def signups_stored(url: str) -> int:
    from dripper.store import open_store
    from dripper.store.schema import signups

    store = open_store(url)
    with store.reading() as conn:
        count = int(conn.execute(sa.select(sa.func.count()).select_from(signups)).scalar_one())
    store.close()
    return count


def paced_posts(port: int, seconds: int, rate: int, connections: int) -> dict[str, Any]:
    """Form-encoded POST /subscribe at `rate` a second over `connections` keep-alive
    connections, each on a fixed schedule, each POST a new address; latency from when it
    was due."""

    async def run() -> tuple[list[float], dict[int, int]]:
        loop = asyncio.get_running_loop()
        interval = connections / rate
        start = loop.time() + 0.2
        latencies: list[float] = []
        statuses: dict[int, int] = {}

        async def connection(k: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            n = 0
            while (due := start + (k / connections + n) * interval) < start + seconds:
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                body = f"email=reader-{k}-{n}%40example.com&first_name=Ada".encode()
                writer.write(
                    b"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(loop.time() - due)
                statuses[status] = statuses.get(status, 0) + 1
                n += 1
            writer.close()

        await asyncio.gather(*(connection(k) for k in range(connections)))
        return latencies, statuses

    latencies, statuses = asyncio.run(run())
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 2)

    return {
        "posts": len(latencies),
        "per_second": round(len(latencies) / seconds, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "statuses": statuses,
    }


def hey_posts(port: int, seconds: int, rate: int, connections: int) -> dict[str, Any]:
    """hey at the same rate: `connections` workers at rate/connections a second each,
    one address repeated (each POST still stores a row)."""
    done = subprocess.run(
        [serve_bench.need("hey"), "-z", f"{seconds}s", "-q", str(rate // connections),
         "-c", str(connections), "-m", "POST", "-T", "application/x-www-form-urlencoded",
         "-d", "email=hey%40example.com&first_name=Ada", f"http://127.0.0.1:{port}/subscribe"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = done.stdout
    found: dict[str, Any] = {}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%+ in ([\d.]+) secs", out)
        found[f"p{pct}_ms"] = round(float(m.group(1)) * 1000, 2) if m else float("nan")
    slowest = re.search(r"Slowest:\s+([\d.]+) secs", out)
    found["max_ms"] = round(float(slowest.group(1)) * 1000, 2) if slowest else float("nan")
    per_second = re.search(r"Requests/sec:\s+([\d.]+)", out)
    found["per_second"] = float(per_second.group(1)) if per_second else float("nan")
    found["statuses"] = {int(s): int(n) for s, n in re.findall(r"\[(\d{3})\]\s+(\d+) resp", out)}
    found["posts"] = sum(found["statuses"].values())
    found["errors"] = out.count("Error distribution")
    return found


def start_serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DRIPPER_SECRET": SECRET}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dripper"), "--config", str(config), "serve",
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    serve_bench.wait_for(port, proc)
    return proc


def wrk_route(
    report: dict[str, Any], url: str, port: int, kind: str, paths: Path, seconds: int
) -> None:
    os.sync()
    time.sleep(2)
    report[f"dripper_{kind}"] = serve_bench.wrk(port, paths, seconds, serve_bench.BROWSER)
    report[f"{kind}_drain_seconds"] = round(serve_bench.drain(port), 2)
    report[f"{kind}_stored"] = serve_bench.stored(url, kind)


def ratios(report: dict[str, Any], seconds: int) -> None:
    for kind in ("open", "click"):
        bare = max(report["bare_before"][kind], report["bare_after"][kind], key=serve_bench.rate)
        report[f"bare_{kind}"] = bare
        run = report[f"dripper_{kind}"]
        report[f"{kind}_ratio_to_bare"] = round(run["per_second"] / bare["per_second"], 2)
        done = run["requests"] - run["bad"]
        sustained = done / (seconds + report[f"{kind}_drain_seconds"])
        report[f"{kind}_sustained_ratio_to_bare"] = round(sustained / bare["per_second"], 2)
        # Negative: hits answered but still in flight when wrk stopped counting them.
        report[f"{kind}_lost"] = done - report[f"{kind}_stored"]


def summary(report: dict[str, Any], rate: int) -> str:
    paced, hey = report["subscribe_paced"], report["subscribe_hey"]
    lines = [
        f"db {report['db']}; [signup] per_ip raised to {PER_IP} so that the limit does "
        "not stop the load (every POST comes from 127.0.0.1)",
        f"POST /subscribe at {rate}/s, paced (a new address each): {paced['posts']} posts, "
        f"statuses {paced['statuses']}, p50 {paced['p50_ms']} ms, p99 {paced['p99_ms']} ms, "
        f"max {paced['max_ms']} ms; rows stored {report['paced_rows']} "
        f"(= 200s: {report['paced_rows'] == paced['statuses'].get(200, 0)})",
        f"POST /subscribe at {rate}/s, hey (one address): {hey['posts']} posts, "
        f"statuses {hey['statuses']}, p50 {hey['p50_ms']} ms, p99 {hey['p99_ms']} ms, "
        f"max {hey['max_ms']} ms; rows stored {report['hey_rows']} "
        f"(= 200s: {report['hey_rows'] == hey['statuses'].get(200, 0)})",
        f"CPU per POST (paced): {report['subscribe_cpu_us_per_post']} us",
        f"target p99 < {TARGET_P99_MS:.0f} ms at {rate}/s, paced: "
        + ("met" if paced["p99_ms"] < TARGET_P99_MS else "NOT met")
        + f"; hey (its {CONNECTIONS} workers send together: bursts of {CONNECTIONS}): "
        + ("met" if hey["p99_ms"] < TARGET_P99_MS else "NOT met"),
    ]
    for kind, route in (("open", "/o/"), ("click", "/c/")):
        ratio = report[f"{kind}_ratio_to_bare"]
        lines.append(
            f"{route}: {report[f'dripper_{kind}']['per_second']:,.0f}/s against bare "
            f"{report[f'bare_{kind}']['per_second']:,.0f}/s: ratio {ratio} (sustained "
            f"{report[f'{kind}_sustained_ratio_to_bare']}); target >= {TARGET_RATIO}: "
            + ("met" if ratio >= TARGET_RATIO else "NOT met")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rate", type=int, default=200, help="POSTs a second")
    parser.add_argument("--seconds", type=int, default=10, help="of POSTs, each way")
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--ratio-seconds", type=int, default=5, help="each wrk run")
    args = parser.parse_args()
    from dripper.tokens import Keyring

    serve_bench.need("wrk")
    serve_bench.need("hey")
    report: dict[str, Any] = {"db": args.db, "rate": args.rate, "per_ip": PER_IP}
    folder = Path(tempfile.mkdtemp(prefix="dripper-bench-subscribe-"))
    schema: str | None = None
    try:
        url, schema = database(args.db, folder)
        port = serve_bench.free_port()
        config = serve_bench.project(folder / "shop", url, port)
        set_signup(config, enabled="true", per_ip=f'"{PER_IP}"')
        sends = serve_bench.seed(url, args.deliveries)
        serve_bench.claim(url, sends)
        keyring = Keyring.from_secret(SECRET)
        opens, clicks = folder / "opens.txt", folder / "clicks.txt"
        opens.write_text("".join(f"/o/{keyring.sign_open(d)}\n" for d in sends.values()))
        clicks.write_text(
            "".join(
                f"/c/{keyring.sign_click(d, 'https://acme.test/shop')}\n" for d in sends.values()
            )
        )
        report["bare_before"] = serve_bench.bare(folder, opens, clicks, args.ratio_seconds)
        serve = start_serve(config, port)
        try:
            wrk_route(report, url, port, "open", opens, args.ratio_seconds)
            wrk_route(report, url, port, "click", clicks, args.ratio_seconds)
            os.sync()
            time.sleep(2)
            cpu = serve_bench.cpu_seconds(serve.pid)
            report["subscribe_paced"] = paced_posts(port, args.seconds, args.rate, CONNECTIONS)
            report["subscribe_cpu_us_per_post"] = serve_bench.cpu_per_hit(
                cpu, serve_bench.cpu_seconds(serve.pid), report["subscribe_paced"]["posts"]
            )
            report["paced_rows"] = signups_stored(url)
            time.sleep(1)
            report["subscribe_hey"] = hey_posts(port, args.seconds, args.rate, CONNECTIONS)
            report["hey_rows"] = signups_stored(url) - report["paced_rows"]
            report["dropped"] = serve_bench.dropped(port)
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
        report["bare_after"] = serve_bench.bare(folder, opens, clicks, args.ratio_seconds)
        ratios(report, args.ratio_seconds)
    finally:
        if schema is not None:
            drop_schema(schema)
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(report, indent=2))
    print(summary(report, args.rate))


if __name__ == "__main__":
    main()
