"""The ``router`` queue: new leads and step results move a lead through its flow.

Every message in hand joins the next transaction (``shared.db.grouped``): under load the
router applies a hundred messages in one commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.router import flow
from shared.db.grouped import GroupCommit
from shared.messaging import AsyncPublisher, LeadSubmitted, Message, StepCompleted
from shared.metrics import FLOWS_COMPLETED

QUEUE = "router"
#: Messages in hand at once (the prefetch window); they share transactions.
CONCURRENCY = 256


@dataclass(frozen=True, slots=True)
class Deps:
    route: GroupCommit[flow.RouterMessage, flow.Outbound]
    publisher: AsyncPublisher


async def handle(message: Message, deps: Deps) -> None:
    if not isinstance(message, LeadSubmitted | StepCompleted):
        raise TypeError(f"router cannot handle {message.KIND}")
    outbound = await deps.route(message)
    if outbound.finished is not None:
        FLOWS_COMPLETED.labels(*outbound.finished).inc()
    for follow_up in outbound.messages:
        await deps.publisher.publish(follow_up)
    if outbound.reply_to and outbound.reply:
        deps.publisher.reply(outbound.reply_to, outbound.reply)
