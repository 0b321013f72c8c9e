"""Auctions (SPEC section 12): ask every eligible buyer for a bid at once, rank the bids.

Used by intake (a source's ping: buyers are pinged, never posted) and by the HTTP
delivery workers (an ``auction`` step of a lead submitted without a ping). The fan-out is
one ``asyncio.wait`` with a hard deadline: a buyer unanswered at the deadline is recorded
``timeout`` at once and its request cancelled, so the answer time is the deadline at
worst, whatever the buyers do. Pings are never retried and never go through a queue.

Which buyers may bid is decided by ``eligible`` (criteria, pause, hours, caps with room,
duplicate keys not held: the same gates a recipient step checks, read without taking
anything), ranking by ``rank`` (best first; ties: the buyer listed first; bids under the
floor dropped). Both are pure; the database reads they need come in through ``Gates``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import aiohttp

from shared.flowconfig import AuctionStep, Flow, LeadflowConfig, Recipient, Source
from shared.gates import hours
from shared.money.pricing import Margin, bid_cents
from shared.outbound.request import build_request
from shared.outbound.response import interpret
from shared.outbound.send import send
from shared.rules import evaluate

logger = logging.getLogger(__name__)

BID, NO_BID, TIMEOUT, ERROR = "bid", "no bid", "timeout", "error"
NO_BID_REASON = "no bid"
NO_BUYER_REASON = "no buyer"


@dataclass(frozen=True, slots=True)
class Bid:
    """One buyer's answer to a ping (or its fixed ``price``): ``outcome`` is ``bid``,
    ``no bid``, ``timeout`` or ``error``; ``amount`` is 0 unless it bid (to the cent
    below: what it pays), ``exact`` the bid as it wrote it, when that had more places
    (what the quote and the ranking read)."""

    recipient_id: str
    outcome: str
    amount: Decimal = Decimal(0)
    reference: str | None = None
    ms: int = 0
    reason: str | None = None
    pinged: bool = True  # False: a fixed-price buyer, never asked
    exact: Decimal | None = None

    @property
    def value(self) -> Decimal:
        """The bid as the buyer made it."""
        return self.exact if self.exact is not None else self.amount

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient_id,
            "buyer": self.recipient_id,  # SPEC section 12's word for it
            "outcome": self.outcome,
            "bid": f"{self.amount}",
            "reference": self.reference,
            "ms": self.ms,
            "reason": self.reason,
            "pinged": self.pinged,
        }

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Bid:
        return cls(
            recipient_id=str(raw["recipient"]),
            outcome=str(raw["outcome"]),
            amount=Decimal(str(raw.get("bid") or 0)),
            reference=raw.get("reference"),
            ms=int(raw.get("ms") or 0),
            reason=raw.get("reason"),
            pinged=bool(raw.get("pinged", True)),
        )


class Gates(Protocol):
    """What deciding a bidder's eligibility reads (``shared.pings.ReadGates``)."""

    now: datetime
    paused: frozenset[str]

    def has_room(
        self, recipient_id: str, recipient: Recipient, variables: Mapping[str, Any]
    ) -> bool: ...

    def holds_duplicate(
        self, recipient_id: str, recipient: Recipient, fields: Mapping[str, Any]
    ) -> bool: ...


def eligible(
    auction: AuctionStep,
    config: LeadflowConfig,
    variables: Mapping[str, Any],
    fields: Mapping[str, Any],
    gates: Gates,
) -> list[str]:
    """The listed bidders whose criteria, pause state, hours, caps and duplicate keys let
    them take the lead, in the auction's order."""
    found = []
    for bidder in auction.recipients:
        recipient = config.recipients[bidder.recipient]
        if bidder.criteria is not None and not evaluate(bidder.criteria, variables):
            continue
        if bidder.recipient in gates.paused:
            continue
        if not hours.is_open(recipient.schedule, recipient.timezone, gates.now):
            continue
        if not gates.has_room(bidder.recipient, recipient, variables):
            continue
        if gates.holds_duplicate(bidder.recipient, recipient, fields):
            continue
        found.append(bidder.recipient)
    return found


async def collect(
    http: aiohttp.ClientSession,
    auction: AuctionStep,
    config: LeadflowConfig,
    bidders: Sequence[str],
    variables: Mapping[str, Any],
    flow_fields: list[str],
    ping_id: str,
    started: float | None = None,
) -> list[Bid]:
    """Every bidder's bid, in the bidders' order: buyers with ``ping`` asked all at once
    (each within its own timeout and the auction's deadline), the others bidding their
    ``price``. The deadline runs from ``started`` (``time.monotonic()``; default: now):
    a ping's from its arrival, so the time spent reading it comes out of the bidders'."""
    started = time.monotonic() if started is None else started
    deadline = max(0.0, auction.timeout - (time.monotonic() - started))
    tasks: dict[str, asyncio.Task[Bid]] = {}
    fixed: dict[str, Bid] = {}
    for recipient_id in bidders:
        recipient = config.recipients[recipient_id]
        if recipient.ping is None:
            price = recipient.price or Decimal(0)
            outcome = BID if price > 0 else NO_BID
            fixed[recipient_id] = Bid(recipient_id, outcome, bid_cents(price), pinged=False)
            continue
        tasks[recipient_id] = asyncio.create_task(
            _ask(http, recipient_id, recipient, variables, flow_fields, ping_id, deadline)
        )
    if tasks:
        await asyncio.wait(tasks.values(), timeout=deadline)
    late_ms = int((time.monotonic() - started) * 1000)
    bids = []
    for recipient_id in bidders:
        if recipient_id in fixed:
            bids.append(fixed[recipient_id])
            continue
        task = tasks[recipient_id]
        if task.done() and not task.cancelled() and task.exception() is None:
            bids.append(task.result())
            continue
        task.cancel()
        task.add_done_callback(_quiet)
        reason = f"No answer within {auction.timeout:g}s"
        bids.append(Bid(recipient_id, TIMEOUT, ms=late_ms, reason=reason))
    return bids


def _quiet(task: asyncio.Task[Bid]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("a ping failed after its deadline: %s", task.exception())


async def _ask(
    http: aiohttp.ClientSession,
    recipient_id: str,
    recipient: Recipient,
    variables: Mapping[str, Any],
    flow_fields: list[str],
    ping_id: str,
    deadline: float,
) -> Bid:
    target = recipient.ping
    assert target is not None
    try:
        request = build_request(target, variables, flow_fields, ping_id)
    except ValueError as exc:
        return Bid(recipient_id, ERROR, reason=f"Ping not built: {exc}")
    answer = await send(http, request, min(target.timeout, deadline))
    if answer.status is None:
        timed_out = (answer.error or "").startswith("Timed out")
        return Bid(recipient_id, TIMEOUT if timed_out else ERROR, ms=answer.ms, reason=answer.error)
    try:
        read = interpret(answer.status, answer.content_type, answer.body, target.response)
    except Exception as exc:  # an answer no rule can read is no bid, never a failed ping
        return Bid(recipient_id, NO_BID, ms=answer.ms, reason=f"Unreadable answer: {exc}")
    if read.outcome == "error":
        return Bid(recipient_id, ERROR, ms=answer.ms, reason=read.reason)
    if read.outcome != "success":
        return Bid(recipient_id, NO_BID, ms=answer.ms, reason=read.reason, reference=read.reference)
    amount = bid_cents(read.price) if read.price > 0 else Decimal(0)
    if amount <= 0:
        return Bid(recipient_id, NO_BID, ms=answer.ms, reason="No price in the answer")
    exact = read.price if read.price != amount else None
    return Bid(recipient_id, BID, amount, read.reference, answer.ms, exact=exact)


def rank(bids: Sequence[Bid], floor: Decimal | None) -> list[Bid]:
    """The bids that may buy, best first; a tie goes to the buyer listed first (the
    sort is stable); bids under ``floor`` (none: not above 0) are dropped."""
    usable = [
        b for b in bids if b.outcome == BID and b.amount > 0 and (floor is None or b.value >= floor)
    ]
    return sorted(usable, key=lambda b: -b.value)


def margin_of(flow: Flow, source: Source) -> Margin | None:
    """The source's margin, else the flow's."""
    return source.margin if source.margin is not None else flow.margin
