"""The ``router`` queue: new leads and step results move a lead through its flow."""

from __future__ import annotations

from dataclasses import dataclass

from services.router import flow
from shared.configstore import ConfigStore
from shared.db.threads import DatabaseThreads
from shared.messaging import AsyncPublisher, LeadSubmitted, Message, StepCompleted
from shared.metrics import FLOWS_COMPLETED

QUEUE = "router"
#: Messages in hand at once (the prefetch window); their transactions share the threads.
CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class Deps:
    db: DatabaseThreads
    configs: ConfigStore
    publisher: AsyncPublisher


async def handle(message: Message, deps: Deps) -> None:
    match message:
        case LeadSubmitted(lead_id=lead_id):
            outbound = await deps.db.transaction(flow.start, deps.configs.get, lead_id)
        case StepCompleted(lead_id=lead_id, event_id=event_id):
            outbound = await deps.db.transaction(flow.resume, deps.configs.get, lead_id, event_id)
        case _:
            raise TypeError(f"router cannot handle {message.KIND}")
    if outbound.finished is not None:
        FLOWS_COMPLETED.labels(*outbound.finished).inc()
    for follow_up in outbound.messages:
        await deps.publisher.publish(follow_up)
    if outbound.reply_to and outbound.reply:
        deps.publisher.reply(outbound.reply_to, outbound.reply)
