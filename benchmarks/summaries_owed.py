"""How long the start-up scan for owed rolling summaries (`Memory.summaries_owed`) takes on a store of a
realistic size, before and after mem17, side by side on one store.

The store is filled as a server from before mem17 left it (`store_before_migration_3` in tests/services.py: no
messages_said index, no summaries row for a user without a summary): `--items` items, four fifths of them by
`--users` named users, the rest by anonymous sessions of ten items each, interleaved in time; three quarters of
the named users have a summary covering all but 0 to 20 of their items. Then, in order:
  before    the query the server ran at start before mem17 (every item read), timed `--repeat` times
  upgrade   the store opened by this server (SQLite: PRAGMA user_version 1; PostgreSQL: migration 3), once
  after     `summaries_owed` of this server, timed `--repeat` times
and the two answers are checked to name the same users. PostgreSQL: a throwaway cluster (tests/services.py,
Debian's postgresql), tables vacuumed and analysed after the fill and after the upgrade, as
autovacuum would.

    python benchmarks/summaries_owed.py --backend sqlite --items 100000
    python benchmarks/summaries_owed.py --backend postgresql --items 100000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import ROOT, machine

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from services import PostgresCluster, postgres_bin_dir, store_before_migration_3  # noqa: E402

import s2s_server as s2s  # noqa: E402
from s2s_config import validate_config  # noqa: E402

# The start-up scan before mem17 (s2s_server.py at 51a8755), as each store ran it.
BEFORE_SQLITE = ("SELECT m.user_id FROM messages m LEFT JOIN summaries s ON s.user_id=m.user_id "
                 "WHERE m.id>COALESCE(s.covered_id, 0) AND m.text<>'' AND m.user_id NOT GLOB ? "
                 "GROUP BY m.user_id HAVING COUNT(*)>=? ORDER BY MAX(m.id)")
BEFORE_POSTGRES = BEFORE_SQLITE.replace("NOT GLOB ?", "NOT LIKE %s").replace(">=?", ">=%s")


def rows(items: int, users: int, seed: int = 0) -> tuple[list[tuple], list[tuple]]:
    """(messages, summaries) rows of a store as described above; messages in insertion (id) order."""
    rng = random.Random(seed)
    named = int(items * 0.8)
    owners = [f"user-{rng.randrange(users)}" for _ in range(named)]
    owners += [f"{s2s.ANONYMOUS_PREFIX}sess_{n // 10}" for n in range(items - named)]
    rng.shuffle(owners)
    messages, count = [], {}
    for n, user in enumerate(owners):
        count[user] = count.get(user, 0) + 1
        messages.append((user, "s", f"item_{n}", "user" if n % 2 else "assistant", f"Said thing {n}.", 0,
                         1.7e9 + n))
    summaries = []
    for user in sorted(u for u in count if not u.startswith(s2s.ANONYMOUS_PREFIX)):
        if rng.random() < 0.75:
            covered_n = max(count[user] - rng.randrange(21), 0)  # the summary covers their first covered_n items
            summaries.append((user, covered_n))
    return messages, summaries


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def upgraded_and_timed(memory: s2s.Memory, every: int, repeat: int,
                             after_open: Callable[[], None] = lambda: None) -> dict:
    """Open `memory` (an old store: its upgrade at open, timed), run `after_open`, then time the start-up scan
    `repeat` times: {"upgrade": ms, "after": (median ms, the users owed a summary)}."""
    started = time.perf_counter()
    await memory.open()
    upgrade_ms = (time.perf_counter() - started) * 1000
    try:
        after_open()
        times, after = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            after = await memory.summaries_owed(every)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await memory.close()
    return {"upgrade": upgrade_ms, "after": (statistics.median(times), after)}


async def run_sqlite(messages: list[tuple], summaries: list[tuple], every: int, repeat: int) -> dict:
    import sqlite3

    folder = Path(tempfile.mkdtemp(prefix="s2s-owed-"))
    store_before_migration_3(messages, summaries, data_dir=folder)
    with sqlite3.connect(folder / "memory.sqlite3") as db:
        before_ms, before = timed(lambda: [r[0] for r in db.execute(
            BEFORE_SQLITE, (s2s.ANONYMOUS_PREFIX + "*", every))], repeat)
    memory = s2s.SQLiteMemory(validate_config({"data_dir": str(folder)}))
    return {"before": (before_ms, before), **await upgraded_and_timed(memory, every, repeat)}


async def run_postgres(messages: list[tuple], summaries: list[tuple], every: int, repeat: int) -> dict:
    import psycopg

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is needed: apt-get install postgresql")
    cluster = PostgresCluster(bin_dir).init()
    try:
        url = cluster.new_database()
        store_before_migration_3(messages, summaries, memory_url=url)
        with psycopg.connect(url, autocommit=True) as db:
            before_ms, before = timed(lambda: [r[0] for r in db.execute(
                BEFORE_POSTGRES, (s2s.ANONYMOUS_PREFIX + "%", every)).fetchall()], repeat)
        memory = s2s.PostgresMemory(validate_config({"memory_url": url, "memory_timeout_s": 60}))

        def analyse() -> None:  # autovacuum's, after the migration's index and rows
            with psycopg.connect(url, autocommit=True) as db:
                db.execute("VACUUM ANALYZE")

        return {"before": (before_ms, before), **await upgraded_and_timed(memory, every, repeat, analyse)}
    finally:
        cluster.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=2000, help="named users")
    parser.add_argument("--every", type=int, default=12, help="memory_summary_every_items")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    messages, summaries = rows(args.items, args.users)
    run = run_sqlite if args.backend == "sqlite" else run_postgres
    result = asyncio.run(run(messages, summaries, args.every, args.repeat))
    (before_ms, before), (after_ms, after) = result["before"], result["after"]
    print(f"{args.backend}: {args.items} items, {args.users} named users, {len(summaries)} summaries, "
          f"every {args.every}")
    print(f"  before (every item read): {before_ms:8.1f} ms median of {args.repeat}, {len(before)} owed")
    print(f"  upgrade at open (once):   {result['upgrade']:8.1f} ms")
    print(f"  after (summaries_owed):   {after_ms:8.1f} ms median of {args.repeat}, {len(after)} owed")
    if sorted(before) != sorted(after):
        raise SystemExit(f"the answers differ: {sorted(set(before) ^ set(after))[:10]}")
    print("  the same users owed")


if __name__ == "__main__":
    main()
