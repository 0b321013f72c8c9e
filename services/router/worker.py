"""The ``router`` queue: new leads and step results move a lead through its flow."""

from __future__ import annotations

from dataclasses import dataclass

from services.router import flow
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, transaction
from shared.messaging import LeadSubmitted, Message, Publisher, StepCompleted
from shared.metrics import FLOWS_COMPLETED

QUEUE = "router"
THREADS = 8  # default; LEADFLOW_ROUTER_THREADS overrides


@dataclass(frozen=True, slots=True)
class Deps:
    sessions: SessionFactory
    configs: ConfigStore
    publisher: Publisher


def handle(message: Message, deps: Deps) -> None:
    with transaction(deps.sessions) as session:
        match message:
            case LeadSubmitted(lead_id=lead_id):
                outbound = flow.start(session, deps.configs.get, lead_id)
            case StepCompleted(lead_id=lead_id, event_id=event_id):
                outbound = flow.resume(session, deps.configs.get, lead_id, event_id)
            case _:
                raise TypeError(f"router cannot handle {message.KIND}")
    if outbound.finished is not None:
        FLOWS_COMPLETED.labels(*outbound.finished).inc()
    for follow_up in outbound.messages:
        deps.publisher.publish(follow_up)
    if outbound.reply_to and outbound.reply:
        deps.publisher.reply(outbound.reply_to, outbound.reply)
