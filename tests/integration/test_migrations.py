"""Migrations over stored data (SQLite, or PostgreSQL when LEADFLOW_TEST_DATABASE_URL is
set): what was stored before an upgrade is still found after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

from shared import resubmits
from shared.db.engine import make_engine, utcnow
from shared.db.migrate import upgrade
from shared.db.models import Lead
from tests.support.infra import fresh_database


@contextmanager
def upgraded_from(
    tmp_path: Path, revision: str, stored: str, values: dict[str, Any]
) -> Iterator[Engine]:
    """A database at ``revision`` holding the row ``stored`` writes, upgraded to the head."""
    with fresh_database(str(tmp_path)) as url:
        upgrade(url, revision)
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(text(stored), values)
            upgrade(url)
            yield engine
        finally:
            engine.dispose()


def test_a_key_held_as_hex_text_before_0010_still_answers_its_resubmission_after_it(
    tmp_path: Path,
) -> None:
    # given a submission's key stored as 64 hex characters before 0010, when upgraded
    keys = resubmits.keys_of(
        "auto",
        "web",
        content_type="application/json",
        query="",
        body=b"{}",
        idempotency_key=None,
        window=60,
    )
    stored = "INSERT INTO submissions (key, record_id, expires_at) VALUES (:k, 'L1', :e)"
    held = {"k": keys[0].key.hex(), "e": utcnow() + timedelta(seconds=60)}
    with upgraded_from(tmp_path, "0009", stored, held) as engine, engine.begin() as connection:
        # then the same submission finds the lead it made
        assert resubmits.find(connection, keys, utcnow()) == "L1"


def test_leads_stored_before_0011_are_found_by_their_e_mail_and_phone_after_it(
    tmp_path: Path,
) -> None:
    # given a lead with a valid e-mail and phone stored before 0011, when upgraded
    email = {"type": "email", "raw": "Ann@X.com", "valid": True, "normal": "ann@x.com"}
    phone = {"type": "phone", "raw": "(512) 555-1212", "valid": True, "normal": "5125551212"}
    fields = {"typed": {"email": email, "phone_1": phone}, "extra": {}}
    with upgraded_from(
        tmp_path,
        "0010",
        "INSERT INTO leads (id, flow_id, source_id, config_version, received_at, state, price,"
        " fields, step_index, version) VALUES ('L1', 'auto', 'web', 1, :at, 'done', 0, :fields,"
        " 0, 1)",
        {"at": utcnow(), "fields": json.dumps(fields)},
    ) as engine:
        # then the lead is found by the normal form of each
        with engine.begin() as connection:
            found = connection.execute(
                select(Lead.id).where(Lead.email == "ann@x.com", Lead.phone == "5125551212")
            ).all()
        assert [row.id for row in found] == ["L1"]


def test_a_return_waiting_before_0012_is_return_requested_after_it(tmp_path: Path) -> None:
    # given a delivery whose return waited for a decision, stored before 0012
    rows = [
        "INSERT INTO leads (id, flow_id, source_id, config_version, received_at, state, price,"
        " fields, step_index, version) VALUES ('L1', 'auto', 'web', 1, :at, 'done', 0, '{}',"
        " 0, 1)",
        "INSERT INTO events (id, lead_id, type, price, started_at, attempts)"
        " VALUES ('E1', 'L1', 'recipient', 0, :at, 1)",
        "INSERT INTO deliveries (event_id, lead_id, recipient_id, kind, status, attempts,"
        " dead_lettered, created_at, updated_at) VALUES ('E1', 'L1', 'r', 'http',"
        " 'return_requested', 1, false, :at, :at)",
    ]
    with fresh_database(str(tmp_path)) as url:
        upgrade(url, "0011")
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                for row in rows:
                    connection.execute(text(row), {"at": utcnow()})

            # when upgraded
            upgrade(url)

            # then it is spelled as SPEC section 15 spells it
            with engine.begin() as connection:
                status = connection.execute(text("SELECT status FROM deliveries")).scalar_one()
            assert status == "return requested"
        finally:
            engine.dispose()
