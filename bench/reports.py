"""How long `leadflow report` takes over a million leads (SPEC section 15: under a
second), on PostgreSQL and on SQLite. Fills a fresh database with ``LEADS`` leads over 90
days, from 20 sources of 4 flows, each accepted one sold to one or two of 10 recipients,
with their ledger rows (cost, revenue, some returns and chargebacks), by ``INSERT ...
SELECT`` from ``generate_series`` (PostgreSQL) or a recursive counter (SQLite: the same
rows); then times each report (median of 3).

`python -m bench.reports [postgresql|sqlite]` alone, or the ``report`` phase of
`make bench`."""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from shared.db.migrate import upgrade
from shared.money import reports

LEADS = int(os.environ.get("BENCH_REPORT_LEADS", "1000000"))

FILL = [
    """
    INSERT INTO leads (id, flow_id, source_id, config_version, received_at, state, outcome,
                       price, fields, step_index, version, accepted, cost, sold, returned,
                       email, phone)
    SELECT 'l' || n, 'flow' || (n % 4), 'src' || (n % 20), 1,
           now() - (n % 7776000) * interval '1 second', 'done',
           CASE WHEN n % 10 = 0 THEN 'failure' ELSE 'success' END, 0, '{}', 0, 1,
           n % 10 <> 0, CASE WHEN n % 10 = 0 THEN NULL ELSE 2.50 END,
           n % 10 <> 0, n % 100 = 7,
           'person' || (n % 400000) || '@example.com', (5120000000 + n % 400000)::text
    FROM generate_series(1, :n) AS n
    """,
    """
    INSERT INTO events (id, lead_id, type, step, recipient_id, outcome, price, started_at,
                        attempts)
    SELECT 'e' || n || '_' || k, 'l' || n, 'recipient', k, 'buyer' || ((n + k) % 10),
           'success', 10 + k, now(), 1
    FROM generate_series(1, :n) AS n, generate_series(0, 1) AS k
    WHERE n % 10 <> 0 AND (k = 0 OR n % 3 = 0)
    """,
    """
    INSERT INTO deliveries (event_id, lead_id, recipient_id, kind, status, attempts,
                            dead_lettered, created_at, updated_at, delivered_at)
    SELECT id, lead_id, recipient_id, 'http',
           CASE WHEN substr(lead_id, 2)::bigint % 100 = 7 THEN 'returned'
                ELSE 'delivered' END,
           1, false, now(), now(), now()
    FROM events WHERE type = 'recipient'
    """,
    """
    INSERT INTO ledger (lead_id, event_id, party_type, party, flow_id, source_id,
                        received_at, kind, amount, at)
    SELECT id, NULL, 'source', flow_id || '/' || source_id, flow_id, source_id, received_at,
           'cost', cost, received_at
    FROM leads WHERE cost IS NOT NULL
    UNION ALL
    SELECT e.lead_id, e.id, 'recipient', e.recipient_id, l.flow_id, l.source_id,
           l.received_at, 'revenue', e.price, e.started_at
    FROM events e JOIN leads l ON l.id = e.lead_id WHERE e.type = 'recipient'
    UNION ALL
    SELECT d.lead_id, d.event_id, 'recipient', d.recipient_id, l.flow_id, l.source_id,
           l.received_at, 'return', -e.price, d.updated_at
    FROM deliveries d JOIN events e ON e.id = d.event_id JOIN leads l ON l.id = d.lead_id
    WHERE d.status = 'returned'
    """,
    "ANALYZE",
]

#: The same rows on SQLite: ``c`` counts 1 to :n, times are text as SQLAlchemy stores them
#: (UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``) from :now (Unix seconds), booleans 0 and 1.
COUNTER = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < :n)"
NOW = "datetime(:now, 'unixepoch') || '.000000'"
FILL_SQLITE = [
    f"""
    {COUNTER}
    INSERT INTO leads (id, flow_id, source_id, config_version, received_at, state, outcome,
                       price, fields, step_index, version, accepted, cost, sold, returned,
                       email, phone)
    SELECT 'l' || n, 'flow' || (n % 4), 'src' || (n % 20), 1,
           datetime(:now - n % 7776000, 'unixepoch') || '.000000', 'done',
           CASE WHEN n % 10 = 0 THEN 'failure' ELSE 'success' END, 0, '{{}}', 0, 1,
           n % 10 <> 0, CASE WHEN n % 10 = 0 THEN NULL ELSE 2.50 END,
           n % 10 <> 0, n % 100 = 7,
           'person' || (n % 400000) || '@example.com', CAST(5120000000 + n % 400000 AS TEXT)
    FROM c
    """,
    f"""
    {COUNTER}
    INSERT INTO events (id, lead_id, type, step, recipient_id, outcome, price, started_at,
                        attempts)
    SELECT 'e' || n || '_' || k, 'l' || n, 'recipient', k, 'buyer' || ((n + k) % 10),
           'success', 10 + k, {NOW}, 1
    FROM c, (SELECT 0 AS k UNION ALL SELECT 1)
    WHERE n % 10 <> 0 AND (k = 0 OR n % 3 = 0)
    """,
    f"""
    INSERT INTO deliveries (event_id, lead_id, recipient_id, kind, status, attempts,
                            dead_lettered, created_at, updated_at, delivered_at)
    SELECT id, lead_id, recipient_id, 'http',
           CASE WHEN CAST(substr(lead_id, 2) AS INTEGER) % 100 = 7 THEN 'returned'
                ELSE 'delivered' END,
           1, 0, {NOW}, {NOW}, {NOW}
    FROM events WHERE type = 'recipient'
    """,
    FILL[3],  # the ledger: the same statement
]


def fill(url: str, leads: int = LEADS) -> float:
    """Fill the database at ``url``; the seconds it took."""
    upgrade(url)
    began = time.monotonic()
    if make_url(url).get_backend_name() == "sqlite":
        _fill_sqlite(make_url(url).database or "", leads)
        return time.monotonic() - began
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in FILL[:-1]:
            connection.execute(text(statement), {"n": leads})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(FILL[-1]))
    engine.dispose()
    return time.monotonic() - began


def _fill_sqlite(path: str, leads: int) -> None:
    """One transaction without a journal or a sync (bench data: a crash just fails the
    run), then the statistics the planner reads, and WAL again as leadflow runs it."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1048576"):
            connection.execute(f"PRAGMA {pragma}")
        connection.execute("PRAGMA temp_store=MEMORY")
        connection.execute("BEGIN")
        for statement in FILL_SQLITE:
            connection.execute(statement, {"n": leads, "now": int(time.time())})
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def timings(url: str, runs: int = 3) -> dict[str, float]:
    """Seconds each report takes (median of ``runs``), over everything stored."""
    engine = create_engine(url)
    medians = {}
    try:
        for by in reports.BY:
            seconds = []
            for _ in range(runs):
                with engine.connect() as connection:
                    began = time.monotonic()
                    reports.report(connection, by)
                    seconds.append(time.monotonic() - began)
            medians[by] = statistics.median(seconds)
    finally:
        engine.dispose()
    return medians


def print_timings(timed: Callable[[str], dict[str, float]], prefix: str = "") -> None:
    """Fill a fresh database (PostgreSQL, or the kind the first argument names), then
    print each figure ``timed`` takes over it (its name after ``prefix``):
    `python -m bench.reports` and `python -m bench.console`."""
    from bench.run import database

    kind = sys.argv[1] if len(sys.argv) > 1 else "postgresql"
    with database(kind, Path(tempfile.mkdtemp())) as url:
        print(f"filled {LEADS:,} leads in {fill(url):.0f} s")
        for name, seconds in timed(url).items():
            print(f"{prefix}{name}: {seconds * 1000:.0f} ms")


def main() -> None:
    print_timings(timings, prefix="report --by ")


if __name__ == "__main__":
    main()
