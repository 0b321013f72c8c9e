"""Leads stored and routed by the real intake and router code, without their processes."""

from __future__ import annotations

from services.intake.leads import new_lead
from shared import routing as flow
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, transaction, utcnow


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
    with transaction(sessions) as session:
        session.add_all([created.lead, created.source_event])
    with transaction(sessions) as session:
        flow.start(session, configs.get, created.lead.id)
    return created.lead.id
