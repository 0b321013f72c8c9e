"""Group commit: leads arriving together are written, and routed, in one transaction.

Each request hands its ``NewLead`` to ``LeadWriter.write`` and waits; a single writer task
takes everything queued, stores it in one transaction on a database thread and answers
every waiter. Under load many leads share one commit; alone, a lead waits for nothing
but its own commit.

The transaction first takes the batch's resubmission keys (``shared.resubmits``): a
submission whose key is live is answered with the earlier lead and stores nothing. Then
the accepted leads' duplicate keys (``shared.gates.duplicates``): a lead matching one the
flow accepted within its lookback is stored as failed, ``Duplicate``, naming it; so is one
for which a cap of its flow or source is full (``Cap reached``: ``shared.gates.caps``,
a slot taken by a conditional update of the cap's counter). Each
new lead that enters its flow then gets its first pass here (``shared.routing``: the
steps the router would run, up to the first that waits), so it is stored already routed
and its hand-off goes straight to the delivery queue: no trip through the router's
queue. The rows go in as one Core ``INSERT`` per table (leads, events, deliveries), with
one outbox row holding every message of the batch, published after the commit
(``shared.outbox``); the same transaction deletes the outbox rows whose messages the
broker has confirmed since the last one (no transaction of their own while leads come).

A failed transaction fails every lead in it and stores none of them: the sources are told
503 and send again. If the commit did happen and only its answer was lost, the copy they
send is a resubmission and gets the lead that was stored, so nothing is stored twice.

Just over 300 lines: the steps of one transaction (keys, pings, caps, duplicates, first
pass, rows, outbox) read in the order they run; each is a call into its own module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, insert

from services.intake.leads import NewLead
from shared import pings, resubmits, routing
from shared.db.engine import SessionFactory, transaction, utcnow
from shared.db.models import Base
from shared.db.queries import PerDialect
from shared.db.rows import insert_rows
from shared.flowconfig import LeadflowConfig
from shared.gates import caps, duplicates, steps
from shared.leaddata import base_variables
from shared.messaging import FlowReply, Message
from shared.metrics import FLOWS_COMPLETED
from shared.money import ledger
from shared.outbox import Outgoing, Relay, batch_row, outgoing_of

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH = 500
#: Tries of a batch whose keys another intake takes meanwhile (each sees the last's).
RACED_ATTEMPTS = 5

_INSERT_LEADS = insert(Base.metadata.tables["leads"])
_INSERT_EVENTS = insert(Base.metadata.tables["events"])
_INSERT_DELIVERIES = insert(Base.metadata.tables["deliveries"])
_OUTBOX = Base.metadata.tables["outbox"]
_INSERT_OUTBOX = insert(_OUTBOX).returning(_OUTBOX.c.id)
_DELETE_OUTBOX = PerDialect(lambda one_of: delete(_OUTBOX).where(one_of(_OUTBOX.c.id, "keys")))
#: How long confirmed outbox rows wait for a batch of leads to delete them in its
#: transaction before the relay deletes them itself.
CONFIRMED_WAIT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Written:
    """What became of a submission: stored as its own lead (and, if its flow already
    ended, the flow's answer), or a resubmission of ``lead_id``."""

    lead_id: str
    resubmission: bool = False
    reply: FlowReply | None = None


class LeadWriter:
    def __init__(
        self,
        factory: SessionFactory,
        executor: Executor,
        config_for: Callable[[int], LeadflowConfig],
        relay: Relay | None = None,
    ) -> None:
        self._factory = factory
        self._executor = executor
        self._config_for = config_for
        self._relay = relay
        if relay is not None:
            relay.defer_reports(CONFIRMED_WAIT_SECONDS)
        self._queue: asyncio.Queue[tuple[NewLead, asyncio.Future[Written]]] = asyncio.Queue()

    async def write(self, item: NewLead) -> Written:
        """Store the lead (or find the earlier one it repeats)."""
        future: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def run(self) -> None:
        """Write batches until cancelled."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            futures = [f for _, f in batch]
            sent = self._relay.take_confirmed() if self._relay is not None else []
            try:
                written, outgoing = await self._db(self._insert, [i for i, _ in batch], sent)
            except Exception as exc:
                if self._relay is not None:
                    self._relay.give_back(sent)
                logger.warning("storing %d leads failed: %s", len(batch), _first_line(exc))
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if outgoing is not None and self._relay is not None:
                self._relay.submit(outgoing)
            for future, result in zip(futures, written, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _insert(
        self, items: list[NewLead], sent: list[Any]
    ) -> tuple[list[Written], Outgoing | None]:
        for _ in range(RACED_ATTEMPTS - 1):
            try:
                return self._insert_once(items, sent)
            except resubmits.Raced:
                # Another intake stored one of these keys meanwhile: now it is read, not
                # raced (another key of the batch may be, while that intake's next batch
                # commits: each attempt reads what the last one raced for).
                continue
        return self._insert_once(items, sent)

    def _insert_once(
        self, items: list[NewLead], sent: list[Any]
    ) -> tuple[list[Written], Outgoing | None]:
        """Store the batch; ``sent``: outbox rows whose messages went out, to delete."""
        with transaction(self._factory) as session:
            connection = session.connection()
            if sent:
                _DELETE_OUTBOX.execute(connection, {"keys": sent})
            now = utcnow()
            held = resubmits.Held(connection, self._keys_to_read(items), now)
            earlier = held.take([(i.lead_id, i.keys) for i in items])
            new = [item for item, first in zip(items, earlier, strict=True) if first is None]
            _claim_pings(connection, new)
            gates = steps.StepGates.read(connection)
            entering = [i for i in new if i.enters_flow]
            stored = {i.lead_id: held.first(i.duplicate_keys) for i in entering}
            bounds = self._lock_caps(gates, [i for i in entering if stored[i.lead_id] is None])
            refused, full = _duplicates_then_caps(held, gates, entering, stored, bounds)
            passes = {
                i.lead_id: self._first_pass(i, held, gates)
                for i in new
                if i.enters_flow and i.lead_id not in refused and i.lead_id not in full
            }
            held.write()  # before any lead is changed: a race tries the batch again as it was
            gates.counters.write()
            for item in new:
                if item.lead_id in refused:
                    item.refuse(duplicates.REASON, duplicate_of=refused[item.lead_id])
                    logger.info(
                        "lead refused as a duplicate of %s",
                        refused[item.lead_id],
                        extra={"lead_id": item.lead_id, "event_id": item.event_id},
                    )
                elif item.lead_id in full:
                    item.refuse(caps.REASON)
                    logger.info(
                        "lead refused: a cap of its flow or source is full",
                        extra={"lead_id": item.lead_id, "event_id": item.event_id},
                    )
            leads = [passes[i.lead_id].lead_row if i.lead_id in passes else i.lead_row for i in new]
            events = [
                passes[i.lead_id].event_row if i.lead_id in passes else i.event_row for i in new
            ]
            deliveries: list[dict[str, Any]] = []
            messages: list[Message] = []
            for passed in passes.values():
                events.extend(passed.step_events)
                deliveries.extend(passed.deliveries)
                messages.extend(passed.outbound.messages)
            outgoing = None
            if new:
                connection.execute(_INSERT_LEADS, leads)
                ledger.write(connection, [_cost_entry(i, now) for i in new if i.cost])
                insert_rows(connection, _INSERT_EVENTS, events)
                if deliveries:
                    connection.execute(_INSERT_DELIVERIES, deliveries)
                if messages:
                    row = batch_row(messages, now)
                    row_id = connection.execute(_INSERT_OUTBOX, row).scalar_one()
                    outgoing = outgoing_of(row_id, row["queue"], row["body"])
        written = []
        for item, first in zip(items, earlier, strict=True):
            if first is not None:
                written.append(Written(first, resubmission=True))
                continue
            outbound = passes[item.lead_id].outbound if item.lead_id in passes else None
            if outbound is not None and outbound.finished is not None:
                FLOWS_COMPLETED.labels(*outbound.finished).inc()
            written.append(Written(item.lead_id, reply=outbound.reply if outbound else None))
        return written, outgoing

    def _keys_to_read(self, items: list[NewLead]) -> list[resubmits.HeldKey]:
        """Every key the batch may claim: resubmission, flow and recipient duplicate keys."""
        keys = [k for item in items for k in (*item.keys, *item.duplicate_keys)]
        for item in items:
            if item.enters_flow:
                config = self._config_for(item.lead_row["config_version"])
                keys.extend(
                    duplicates.recipient_keys_in_flow(
                        config, item.lead_row["flow_id"], item.lead_row["fields"]
                    )
                )
        return keys

    def _lock_caps(
        self, gates: steps.StepGates, entering: list[NewLead]
    ) -> dict[str, list[caps.Bound]]:
        """The flow and source caps counting each lead; every counter the batch may touch
        (its recipients' too) is locked at once, and slots reserved for the batch."""
        wanted: dict[str, list[caps.Bound]] = {}
        every: list[caps.Bound] = []
        for item in entering:
            row = item.lead_row
            config = self._config_for(row["config_version"])
            flow_id, source_id = row["flow_id"], row["source_id"]
            flow = config.flows[flow_id]
            source = flow.sources[source_id]
            if flow.caps or source.caps:
                now = gates.counters.now
                variables = base_variables(
                    item.lead_id, flow_id, source_id, row["received_at"], row["fields"]
                )
                bounds = caps.bounds("flow", flow_id, flow.caps, flow.timezone, now)
                bounds += caps.bounds(
                    "source", f"{flow_id}/{source_id}", source.caps, flow.timezone, now
                )
                wanted[item.lead_id] = [b for b in bounds if b.cap.counts(variables)]
                every += wanted[item.lead_id]
            every += gates.recipient_bounds(config, flow_id)
        gates.counters.lock(every)
        return wanted

    def _first_pass(
        self, item: NewLead, held: resubmits.Held, gates: steps.StepGates
    ) -> routing.FirstPass:
        config = self._config_for(item.lead_row["config_version"])
        first = routing.first_pass(item.lead_row, item.event_row, config, held, gates)
        if first.outbound.reply is None and first.lead_row["state"] == "done":
            # the flow ended at once: its answer, whatever the response mode
            first.outbound.reply = FlowReply(
                lead_id=item.lead_id,
                outcome=first.lead_row["outcome"],
                reason=first.lead_row["reason"],
                price=first.lead_row["price"],
            )
        return first


def _claim_pings(connection: Connection, new: list[NewLead]) -> None:
    """The posts of pings take their pings; a post whose ping another post took first
    fails, ``duplicate``."""
    for item in new:
        ping_id = item.lead_row.get("ping_id")
        if item.enters_flow and ping_id and not pings.claim(connection, ping_id, item.lead_id):
            item.refuse(pings.DUPLICATE_REASON)
            logger.info(
                "post refused: ping %s was posted already",
                ping_id,
                extra={"lead_id": item.lead_id, "event_id": item.event_id},
            )


def _duplicates_then_caps(
    held: resubmits.Held,
    gates: steps.StepGates,
    entering: list[NewLead],
    stored: dict[str, str | None],
    bounds: dict[str, list[caps.Bound]],
) -> tuple[dict[str, str], set[str]]:
    """Duplicates decide before caps, lead by lead in the batch's order: a lead matching
    one accepted before (``stored``: the lead a stored key names) or earlier in this batch
    is a duplicate of it and takes no slot; another takes a slot of each cap counting it
    (``bounds``), or fails on a full one and holds no key (it is not accepted); the rest
    hold their keys. Returns (duplicate: the earlier lead, cap-full)."""
    refused: dict[str, str] = {}
    full: set[str] = set()
    for item in entering:
        earlier = stored[item.lead_id] or held.first(item.duplicate_keys)
        if earlier is not None:
            refused[item.lead_id] = earlier
        elif not gates.counters.take(bounds.get(item.lead_id, [])):
            full.add(item.lead_id)
        elif item.duplicate_keys:
            held.hold(item.lead_id, item.duplicate_keys)
    return refused, full


def _cost_entry(item: NewLead, now: datetime) -> dict[str, Any]:
    row = item.lead_row
    lead = ledger.LeadOf(item.lead_id, row["flow_id"], row["source_id"], row["received_at"])
    party = ledger.source_party(row["flow_id"], row["source_id"])
    return ledger.entry(ledger.COST, lead, "source", party, item.cost or Decimal(0), now)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
