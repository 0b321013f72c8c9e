"""What operators read about a lead: its events, deliveries, attempts and feedback as one
report, for ``leadflow leads show`` (and the console to come)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared import pings
from shared.db.engine import SessionFactory, iso_utc
from shared.db.models import Delivery, DeliveryAttempt, Event, Lead
from shared.errors import NotFound
from shared.leaddata import display_fields
from shared.money import ledger
from shared.money.pricing import cents


def _event_order(event: Event) -> tuple[int, str, int]:
    return (
        1 if event.type == "source" else 0,
        iso_utc(event.started_at) or "",
        event.step if event.step is not None else -1,
    )


def lead_report(factory: SessionFactory, lead_id: str) -> dict[str, Any]:
    with factory() as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"no lead {lead_id}")
        events = sorted(
            session.scalars(select(Event).where(Event.lead_id == lead_id)), key=_event_order
        )
        deliveries = list(session.scalars(select(Delivery).where(Delivery.lead_id == lead_id)))
        entries = ledger.of_lead(session.connection(), lead_id)
        bids = pings.bids_of_lead(session.connection(), lead_id)
        attempts = list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.event_id.in_([d.event_id for d in deliveries]))
                .order_by(DeliveryAttempt.event_id, DeliveryAttempt.number)
            )
        )
    step_of = {e.id: e.step for e in events}
    deliveries.sort(key=lambda d: step_of.get(d.event_id) or 0)
    report = _report(lead, events, deliveries, attempts, entries)
    # each bid an event of type ping (of the lead's ping, or of its auction steps)
    report["events"] = sorted(
        [*report["events"], *(_bid_event(row) for row in bids)],
        key=lambda e: (e["type"] == "source", e["started_at"] or "", e["step"] or -1),
    )
    return report


def _bid_event(row: dict[str, Any]) -> dict[str, Any]:
    """A bid as an event of the lead: its own id (``bid-`` and the bid's number: no
    feedback is taken on it), the auction's event or the ping in ``appended``."""
    return {
        "id": f"bid-{row['id']}",
        "type": "ping",
        "step": row["step"],
        "recipient": row["recipient_id"],
        "outcome": row["outcome"],
        "reason": row["reason"],
        "price": cents(row["amount"]),
        "attempts": 1 if row["pinged"] else 0,
        "started_at": iso_utc(row["at"]),
        "completed_at": iso_utc(row["at"]),
        "ms": row["ms"],
        "appended": {
            "reference": row["reference"],
            "ping_id": row["ping_id"],
            "auction_event_id": row["event_id"],
        },
    }


def _report(
    lead: Lead,
    events: list[Event],
    deliveries: list[Delivery],
    attempts: list[DeliveryAttempt],
    entries: list[dict[str, Any]],
) -> dict[str, Any]:
    # an auction's post is shown as an event of the auction's step (stored without one:
    # an auction may post more than once)
    auction_step: dict[str | None, int | None] = {
        e.id: e.step for e in events if e.type == "auction"
    }
    return {
        "lead": {
            "id": lead.id,
            "flow_id": lead.flow_id,
            "source_id": lead.source_id,
            "outcome": lead.outcome if lead.state == "done" else "queued",
            "reason": lead.reason,
            "duplicate_of": lead.duplicate_of,
            "price": cents(lead.price or 0),
            "cost": cents(lead.cost) if lead.cost is not None else None,
            "ping_id": lead.ping_id,
            "received_at": iso_utc(lead.received_at),
            "completed_at": iso_utc(lead.completed_at),
            "fields": display_fields(lead.fields),
        },
        "events": [
            {
                "id": e.id,
                "type": e.type,
                "step": e.step if e.step is not None else auction_step.get(e.parent_event_id),
                "recipient": e.recipient_id,
                "outcome": e.outcome,
                "reason": e.reason,
                "price": cents(e.price or 0),
                "attempts": e.attempts,
                "started_at": iso_utc(e.started_at),
                "completed_at": iso_utc(e.completed_at),
                "ms": e.ms,
                "appended": e.appended or {},
                **({"steps_processed": e.steps_processed} if e.type == "source" else {}),
            }
            for e in events
        ],
        "deliveries": [
            {
                "event_id": d.event_id,
                "recipient": d.recipient_id,
                "kind": d.kind,
                "status": d.status,
                "dead_lettered": d.dead_lettered,
                "attempts": [
                    {"at": iso_utc(a.at), "ms": a.ms, "status": a.status, "error": a.error}
                    for a in attempts
                    if a.event_id == d.event_id
                ],
            }
            for d in deliveries
        ],
        "feedback": [
            {
                "event_id": e.parent_event_id,
                "type": (e.appended or {}).get("type"),
                "reason": e.reason,
                "outcome": e.outcome,
                "received_at": iso_utc(e.started_at),
            }
            for e in events
            if e.type == "feedback-received"
        ],
        "ledger": [
            {
                "id": row["id"],
                "kind": row["kind"],
                "party_type": row["party_type"],
                "party": row["party"],
                "amount": cents(row["amount"]),
                "event_id": row["event_id"],
                "at": iso_utc(row["at"]),
            }
            for row in entries
        ],
    }


def format_report(report: dict[str, Any]) -> str:
    lead = report["lead"]
    lines = [
        f"lead {lead['id']}  flow {lead['flow_id']}  source {lead['source_id']}",
        f"  outcome: {lead['outcome']}"
        + (f" ({lead['reason']})" if lead["reason"] else "")
        + (f", duplicate of {lead['duplicate_of']}" if lead["duplicate_of"] else ""),
        f"  price: {lead['price']:.2f}  received: {lead['received_at']}"
        f"  completed: {lead['completed_at'] or '-'}",
        "  fields:",
        *[f"    {k}: {v}" for k, v in lead["fields"].items()],
        "events:",
    ]
    for e in report["events"]:
        where = f"step {e['step']}" if e["step"] is not None else e["type"]
        who = f" {e['recipient']}" if e["recipient"] else ""
        reason = f" ({e['reason']})" if e["reason"] else ""
        lines.append(
            f"  {e['id']}  {e['type']:<10} {where}{who}: {e['outcome'] or 'pending'}"
            f"{reason}  {e['ms'] if e['ms'] is not None else '-'} ms"
        )
        if e["appended"].get("reference") is not None:
            lines.append(f"    reference: {e['appended']['reference']}")
    lines.append("deliveries:")
    for d in report["deliveries"]:
        lines.append(
            f"  {d['recipient']} ({d['kind']}): {d['status']}"
            f"{' [dead-lettered]' if d['dead_lettered'] else ''}, "
            f"{len(d['attempts'])} attempt(s)"
        )
        for a in d["attempts"]:
            lines.append(
                f"    {a['at']}  {a['ms']} ms  status {a['status'] or '-'}"
                f"{'  ' + a['error'] if a['error'] else ''}"
            )
    if report["feedback"]:
        lines.append("feedback:")
        for f in report["feedback"]:
            lines.append(f"  {f['received_at']} {f['type']} {f['outcome']}: {f['reason'] or ''}")
    if report["ledger"]:
        lines.append("ledger:")
        for row in report["ledger"]:
            lines.append(
                f"  {row['at']}  {row['kind']:<10} {row['party_type']} {row['party']}: "
                f"{row['amount']:.2f}"
            )
    return "\n".join(lines)
