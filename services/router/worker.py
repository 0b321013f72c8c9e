"""The ``router`` queue: new leads, step results and held steps come due move a lead
through its flow.

Every message in hand joins the next transaction (``shared.db.grouped``): under load the
router applies a hundred messages in one commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import routing
from shared.db.grouped import GroupCommit
from shared.messaging import AsyncPublisher, LeadSubmitted, Message, StepCompleted, StepDue

QUEUE = "router"
#: Messages in hand at once (the prefetch window); they share transactions.
CONCURRENCY = 256


@dataclass(frozen=True, slots=True)
class Deps:
    route: GroupCommit[routing.RouterMessage, routing.Outbound]
    publisher: AsyncPublisher


async def handle(message: Message, deps: Deps) -> None:
    if not isinstance(message, LeadSubmitted | StepCompleted | StepDue):
        raise TypeError(f"router cannot handle {message.KIND}")
    await routing.publish_outbound(await deps.route(message), deps.publisher)
