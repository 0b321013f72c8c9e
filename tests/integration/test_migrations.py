"""Migrations over stored data (SQLite, or PostgreSQL when LEADFLOW_TEST_DATABASE_URL is
set): what was held before an upgrade is still held after it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from shared import resubmits
from shared.db.engine import make_engine, utcnow
from shared.db.migrate import upgrade
from tests.support.infra import fresh_database


def test_a_key_held_as_hex_text_before_0010_still_answers_its_resubmission_after_it(
    tmp_path: Path,
) -> None:
    # given a submission's key stored as 64 hex characters by the schema before 0010
    keys = resubmits.keys_of(
        "auto",
        "web",
        content_type="application/json",
        query="",
        body=b"{}",
        idempotency_key=None,
        window=60,
    )
    with fresh_database(str(tmp_path)) as url:
        upgrade(url, "0009")
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO submissions (key, record_id, expires_at) VALUES (:k, 'L1', :e)"
                    ),
                    {"k": keys[0].key.hex(), "e": utcnow() + timedelta(seconds=60)},
                )

            # when the schema is upgraded
            upgrade(url)

            # then the same submission finds the lead it made
            with engine.begin() as connection:
                assert resubmits.find(connection, keys, utcnow()) == "L1"
        finally:
            engine.dispose()
