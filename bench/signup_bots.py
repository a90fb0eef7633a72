"""What a bot gets out of `POST /subscribe` (DESIGN 13, issue 26) against the default
`[signup]` settings: per_ip "10/h", max_per_day 1000, one confirmation email per address
per 24 hours, the honeypot `website`. Counted: the POSTs' answers, the signups stored, and
the confirmation emails that leave (.eml files the file transport writes into outbox/).

    .venv/bin/python bench/signup_bots.py [--posts 1000] [--challenges 20] [--no-postgresql]

Each scenario runs on a fresh SQLite project (`dripper init`, `[signup] enabled = true`,
nothing else changed) with `dripper --now T serve` (the clock fixed: every POST of a
scenario falls in the same hour), the POSTs sent 10 at a time (form-encoded, each with
X-Forwarded-For, which serve trusts from 127.0.0.1), then `dripper --now T run --once`:

  a   one IP posts 1,000 different addresses in an hour
  b   1,000 IPs post 1,000 different addresses (one each)
  c   1,000 IPs post ONE victim's address (subscription bombing one person)
  d1  b's project, an hour later: 1,000 more addresses from 1,000 more IPs, then one real
      reader signs up from an IP of their own (the daily cap is spent)
  d2  b's project, the next day (25 h after b): 1,000 more addresses from 1,000 more IPs
  e1  a with every field filled, the honeypot too (a naive bot)
  e2  b with every field filled, the honeypot too
  f   one IP posts 1,000 addresses 100 at a time (the per-IP limit under concurrency), on
      SQLite and (unless --no-postgresql) on PostgreSQL, in a schema of its own

Then, with `proof_of_work = true`: a POST without a solution, and N challenges fetched from
GET /subscribe/challenge, each solved in Python (the `altcha` library's `solve_challenge`,
and a tight hashlib loop: a bot's cost per POST), each solution posted once, then posted
again (refused: a solution is accepted once) and again with the salt's trailing "&" taken
off (the same hash to the verifier).

Prints JSON (everything), then the table and the proof-of-work figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import serve as serve_bench  # bench/serve.py: the project, the port, waiting for serve
from subscribe import database, drop_schema, set_signup

SECRET = "bench-signup-bots-secret-0123456789"
T0 = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
CONCURRENCY = 10
EVERY_FIELD = {"first_name": "Bot", "website": "https://spam.example", "topics": "news"}


@dataclass(frozen=True)
class Post:
    email: str
    ip: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Project:
    folder: Path
    config: Path
    url: str
    port: int
    schema: str | None = None

    @property
    def outbox(self) -> Path:
        return self.config.parent / "outbox"


def ip_of(n: int) -> str:
    """The n-th address of 198.18.0.0/15 (RFC 2544: benchmarking)."""
    return f"198.{18 + n // 65536}.{n // 256 % 256}.{n % 256}"


def make_project(root: Path, db: str = "sqlite", **signup: str) -> Project:
    folder = Path(tempfile.mkdtemp(prefix="project-", dir=root))
    url, schema = (
        (f"sqlite:///{folder / 'dripper.db'}", None) if db == "sqlite" else database(db, folder)
    )
    port = serve_bench.free_port()
    config = serve_bench.project(folder / "shop", url, port)
    set_signup(config, enabled="true", **signup)
    from dripper.store import open_store

    store = open_store(url)
    store.ensure_schema()
    store.close()
    return Project(folder, config, url, port, schema)


def dripper(project: Project, now: datetime, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "dripper"), "--now", now.isoformat(),
            "--config", str(project.config), *args]  # fmt: skip


@contextmanager
def serving(project: Project, now: datetime) -> Iterator[None]:
    env = {**os.environ, "DRIPPER_SECRET": SECRET}
    proc = subprocess.Popen(
        dripper(project, now, "serve", "--port", str(project.port)),
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        serve_bench.wait_for(project.port, proc)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def run_once(project: Project, now: datetime) -> int:
    """`dripper run --once`: the confirmation emails it wrote (.eml files in outbox/)."""
    before = len(list(project.outbox.glob("*.eml"))) if project.outbox.exists() else 0
    subprocess.run(
        dripper(project, now, "run", "--once"),
        env={**os.environ, "DRIPPER_SECRET": SECRET},
        check=True,
        capture_output=True,
    )
    return len(list(project.outbox.glob("*.eml"))) - before


def signup_rows(project: Project) -> dict[str, int]:
    """Stored signups by status, and by reason for the limited ones."""
    from dripper.store import open_store
    from dripper.store.schema import signups

    store = open_store(project.url)
    found: dict[str, int] = {}
    with store.reading() as conn:
        t = signups.c
        query = sa.select(t.status, t.reason, sa.func.count()).group_by(t.status, t.reason)
        for status, reason, count in conn.execute(query):
            key = status if not reason else f"{status}: {reason}"
            found[key] = int(count)
    store.close()
    return found


def post_all(port: int, posts: Sequence[Post], concurrency: int) -> dict[int, int]:
    """Form-encoded POST /subscribe, `concurrency` at a time; the answers' status codes."""

    async def run() -> dict[int, int]:
        statuses: Counter[int] = Counter()
        queue = list(reversed(posts))
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
        ) as client:

            async def worker() -> None:
                while queue:
                    post = queue.pop()
                    answer = await client.post(
                        "/subscribe",
                        data={"email": post.email, **post.fields},
                        headers={"X-Forwarded-For": post.ip},
                    )
                    statuses[answer.status_code] += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return dict(sorted(statuses.items()))

    return asyncio.run(run())


def scenario(
    name: str,
    what: str,
    project: Project,
    now: datetime,
    posts: Sequence[Post],
    concurrency: int = CONCURRENCY,
) -> dict[str, Any]:
    before = sum(signup_rows(project).values())
    with serving(project, now):
        start = time.perf_counter()
        statuses = post_all(project.port, posts, concurrency)
        seconds = time.perf_counter() - start
    rows = signup_rows(project)
    stored = sum(rows.values()) - before
    sent = run_once(project, now)
    result = {
        "scenario": name,
        "what": what,
        "posts": len(posts),
        "concurrency": concurrency,
        "post_seconds": round(seconds, 2),
        "answers": statuses,
        "stored": stored,
        "emails_sent": sent,
        "signups_after_run": signup_rows(project),
    }
    print(f"{name}: {len(posts)} posts, {statuses}, stored {stored}, emails {sent}", flush=True)
    return result


# --- proof of work ---------------------------------------------------------------------------


def solve_loop(salt: str, challenge: str, max_number: int) -> int | None:
    """A bot's own solver: SHA-256 of the salt hashed once, each number added to a copy."""
    base = hashlib.sha256(salt.encode())
    target = bytes.fromhex(challenge)
    for n in range(max_number + 1):
        h = base.copy()
        h.update(str(n).encode())
        if h.digest() == target:
            return n
    return None


def payload(challenge: dict[str, Any], number: int, salt: str | None = None) -> str:
    data = {
        "algorithm": challenge["algorithm"],
        "challenge": challenge["challenge"],
        "number": number,
        "salt": challenge["salt"] if salt is None else salt,
        "signature": challenge["signature"],
    }
    return base64.b64encode(json.dumps(data).encode()).decode()


def proof_of_work(root: Path, challenges: int) -> dict[str, Any]:
    from altcha.v1 import solve_challenge

    project = make_project(root, proof_of_work="true")
    library: list[float] = []
    loop: list[float] = []
    numbers: list[int] = []
    answers: dict[str, Counter[int]] = {
        "no solution": Counter(),
        "solved": Counter(),
        "replayed": Counter(),
        "replayed, salt without its trailing &": Counter(),
    }
    with serving(project, T0), httpx.Client(base_url=f"http://127.0.0.1:{project.port}") as web:

        def post(n: int, altcha: str | None) -> int:
            data = {"email": f"pow-{n}-{time.monotonic_ns()}@example.com"}
            if altcha is not None:
                data["altcha"] = altcha
            headers = {"X-Forwarded-For": ip_of(n)}
            return web.post("/subscribe", data=data, headers=headers).status_code

        answers["no solution"][post(0, None)] += 1
        for n in range(1, challenges + 1):
            made = web.get("/subscribe/challenge").json()
            start = time.perf_counter()
            solved = solve_challenge(
                made["challenge"], made["salt"], made["algorithm"], made["maxNumber"]
            )
            library.append(time.perf_counter() - start)
            assert solved is not None, made
            start = time.perf_counter()
            number = solve_loop(made["salt"], made["challenge"], made["maxNumber"])
            loop.append(time.perf_counter() - start)
            assert number == solved.number
            numbers.append(number)
            answers["solved"][post(n, payload(made, number))] += 1
            answers["replayed"][post(n, payload(made, number))] += 1
            stripped = made["salt"].removesuffix("&")
            answers["replayed, salt without its trailing &"][
                post(n, payload(made, number, stripped))
            ] += 1
        max_number = int(made["maxNumber"])
    stored = sum(signup_rows(project).values())
    shutil.rmtree(project.folder, ignore_errors=True)
    return {
        "challenges": challenges,
        "max_number": max_number,
        "mean_number": round(statistics.mean(numbers)),
        "solve_ms_altcha_library": {
            "mean": round(statistics.mean(library) * 1000, 1),
            "median": round(statistics.median(library) * 1000, 1),
            "max": round(max(library) * 1000, 1),
        },
        "solve_ms_hashlib_loop": {
            "mean": round(statistics.mean(loop) * 1000, 1),
            "median": round(statistics.median(loop) * 1000, 1),
            "max": round(max(loop) * 1000, 1),
        },
        "worst_case_ms_hashlib_loop": round(
            statistics.mean(loop) / max(statistics.mean(numbers), 1) * max_number * 1000, 1
        ),
        "answers": {k: dict(v) for k, v in answers.items()},
        "stored": stored,
    }


# --- the report ----------------------------------------------------------------------------


def table(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| scenario | posts | stored signups | answers 200 / 429 / other | confirmation emails |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        ok, many = r["answers"].get(200, 0), r["answers"].get(429, 0)
        other = sum(n for s, n in r["answers"].items() if s not in (200, 429))
        lines.append(
            f"| {r['scenario']}: {r['what']} | {r['posts']:,} | {r['stored']:,} | "
            f"{ok:,} / {many:,} / {other:,} | {r['emails_sent']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1000, help="a bot's POSTs per scenario")
    parser.add_argument("--challenges", type=int, default=20)
    parser.add_argument("--no-postgresql", action="store_true", help="f on SQLite only")
    args = parser.parse_args()
    n = args.posts
    root = Path(tempfile.mkdtemp(prefix="dripper-bench-signup-bots-"))
    results: list[dict[str, Any]] = []
    schemas: list[str] = []
    try:
        one_ip = [Post(f"a{i}@example.com", ip_of(0)) for i in range(n)]
        results.append(scenario("a", "one IP, different addresses", make_project(root), T0, one_ip))
        b = make_project(root)
        many = [Post(f"b{i}@example.com", ip_of(i)) for i in range(n)]
        results.append(scenario("b", f"{n:,} IPs, different addresses", b, T0, many))
        victim = [Post("victim@example.com", ip_of(i)) for i in range(n)]
        results.append(
            scenario("c", f"{n:,} IPs, one victim's address", make_project(root), T0, victim)
        )
        later = T0 + timedelta(hours=1)
        more = [Post(f"d{i}@example.com", ip_of(n + i)) for i in range(n)]
        results.append(scenario("d1", "b's project, 1 h later: b again", b, later, more))
        reader = [Post("real.reader@example.com", ip_of(4 * n))]
        results.append(scenario("d1'", "then a real reader signs up", b, later, reader))
        next_day = T0 + timedelta(hours=25)
        again = [Post(f"e{i}@example.com", ip_of(2 * n + i)) for i in range(n)]
        results.append(scenario("d2", "b's project, next day: b again", b, next_day, again))
        pot_one = [Post(p.email, p.ip, EVERY_FIELD) for p in one_ip]
        results.append(
            scenario("e1", "a, every field filled (honeypot)", make_project(root), T0, pot_one)
        )
        pot_many = [Post(p.email, p.ip, EVERY_FIELD) for p in many]
        results.append(
            scenario("e2", "b, every field filled (honeypot)", make_project(root), T0, pot_many)
        )
        burst = [Post(f"f{i}@example.com", ip_of(0)) for i in range(n)]
        results.append(
            scenario(
                "f", "one IP, 100 at a time, SQLite", make_project(root), T0, burst, concurrency=100
            )
        )
        if not args.no_postgresql:
            pg = make_project(root, "postgresql")
            if pg.schema is not None:
                schemas.append(pg.schema)
            results.append(
                scenario("f", "one IP, 100 at a time, PostgreSQL", pg, T0, burst, concurrency=100)
            )
        pow_report = proof_of_work(root, args.challenges)
    finally:
        for schema in schemas:
            drop_schema(schema)
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"scenarios": results, "proof_of_work": pow_report}, indent=2))
    print(table(results))
    loop = pow_report["solve_ms_hashlib_loop"]
    lib = pow_report["solve_ms_altcha_library"]
    print(
        f"proof of work (max_number {pow_report['max_number']:,}, mean number found "
        f"{pow_report['mean_number']:,}): solving one in Python takes {lib['mean']} ms on "
        f"average with altcha's solve_challenge (median {lib['median']}, max {lib['max']}), "
        f"{loop['mean']} ms with a hashlib loop (median {loop['median']}, max {loop['max']}; "
        f"worst case {pow_report['worst_case_ms_hashlib_loop']} ms): {n:,} POSTs cost a bot "
        f"~{loop['mean'] * n / 1000:.0f} s of one core"
    )
    print(f"proof of work answers: {pow_report['answers']}; stored {pow_report['stored']}")


if __name__ == "__main__":
    main()
