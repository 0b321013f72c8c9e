"""Leads stored and routed by the real intake and router code, without their processes."""

from __future__ import annotations

from sqlalchemy import insert

from services.intake.leads import NewLead, new_lead
from shared import routing as flow
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, transaction, utcnow
from shared.db.models import Base


def store(sessions: SessionFactory, created: NewLead) -> None:
    """Write the lead and its source event with the Core inserts intake uses."""
    with transaction(sessions) as session:
        session.execute(insert(Base.metadata.tables["leads"]), [created.lead_row])
        session.execute(insert(Base.metadata.tables["events"]), [created.event_row])


def submit(sessions: SessionFactory, configs: ConfigStore, flow_id: str, **fields: str) -> str:
    """Store a lead as intake does and route it as the router does; returns its id."""
    version, config = configs.latest()
    created = new_lead(
        config_version=version,
        flow_id=flow_id,
        flow=config.flows[flow_id],
        source_id="web",
        submitted=fields,
        received_at=utcnow(),
        reply_to=None,
    )
    store(sessions, created)
    with transaction(sessions) as session:
        flow.start(session, configs.get, created.lead_id)
    return created.lead_id
