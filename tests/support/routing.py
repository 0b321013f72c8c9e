"""Leads stored and routed by the real intake and router code, without their processes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from services.intake.leads import NewLead, new_lead
from shared import routing as flow
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, transaction, utcnow
from shared.db.models import Base, Lead
from shared.flowconfig import LeadflowConfig


def store(sessions: SessionFactory, created: NewLead) -> None:
    """Write the lead and its source event with the Core inserts intake uses."""
    with transaction(sessions) as session:
        session.execute(insert(Base.metadata.tables["leads"]), [created.lead_row])
        session.execute(insert(Base.metadata.tables["events"]), [created.event_row])


def stored(
    sessions: SessionFactory,
    config: LeadflowConfig,
    flow_id: str,
    fields: dict[str, Any],
    *,
    version: int = 1,
    reply_to: str | None = None,
) -> str:
    """Store a lead as intake does (not routed yet); returns its id."""
    created = new_lead(
        config_version=version,
        flow_id=flow_id,
        flow=config.flows[flow_id],
        source_id="web",
        submitted=fields,
        received_at=utcnow(),
        reply_to=reply_to,
    )
    store(sessions, created)
    return created.lead_id


def submit(sessions: SessionFactory, configs: ConfigStore, flow_id: str, **fields: str) -> str:
    """Store a lead as intake does and route it as the router does; returns its id."""
    version, config = configs.latest()
    lead_id = stored(sessions, config, flow_id, dict(fields), version=version)
    with transaction(sessions) as session:
        flow.start(session, configs.get, lead_id)
    return lead_id


def lead_row(sessions: SessionFactory, lead_id: str) -> Lead:
    """The lead's row as it is now."""
    with sessions() as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        return lead
