"""What HTTP delivery reads and writes: the job for one delivery (claimed through the one
claim of ``shared.deliveries``), its attempts, its outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from shared import deliveries, routing
from shared.configstore import ConfigStore
from shared.db.engine import as_utc, utcnow
from shared.db.models import Event, Lead
from shared.db.queries import PerDialect
from shared.errors import PermanentError
from shared.flowconfig import HttpTarget
from shared.leaddata import base_variables, recipient_results
from shared.messaging import DeliverHttp, StepCompleted

_events = cast(Table, Event.__table__)
_leads = cast(Table, Lead.__table__)


@dataclass(frozen=True, slots=True)
class Job:
    lead_id: str
    event_id: str
    recipient_id: str
    target: HttpTarget
    flow_fields: list[str]
    variables: dict[str, Any]
    claimed: deliveries.Claim
    started_at: datetime | None = None  # the step event's start (for its duration)
    price: Decimal | None = None  # the recipient's (an auction's post: its bid), if unanswered
    once: bool = False  # an auction's post: never retried, a failure moves on at once

    @property
    def attempt(self) -> int:
        return self.claimed.attempt


@dataclass(frozen=True, slots=True)
class Wanted:
    """A delivery message, and who would hold its claim."""

    message: DeliverHttp
    holder: str


_LEADS_OF_STEPS = PerDialect(
    lambda one_of: (
        select(
            _events.c.id,
            _events.c.started_at,
            _events.c.parent_event_id,
            _events.c.price,
            _events.c.appended,
            _leads.c.id.label("lead_id"),
            _leads.c.flow_id,
            _leads.c.source_id,
            _leads.c.received_at,
            _leads.c.fields,
            _leads.c.config_version,
        )
        .select_from(_events.join(_leads, _leads.c.id == _events.c.lead_id))
        .where(one_of(_events.c.id, "event_ids"))
    )
)
_EARLIER_RESULTS = PerDialect(
    lambda one_of: (
        select(
            _events.c.lead_id,
            _events.c.recipient_id,
            _events.c.outcome,
            _events.c.reason,
            _events.c.price,
            _events.c.appended,
        )
        .where(
            one_of(_events.c.lead_id, "lead_ids"),
            _events.c.type == "recipient",
            _events.c.outcome.is_not(None),
        )
        .order_by(_events.c.lead_id, _events.c.step)
    )
)


def claim_many(
    configs: ConfigStore, margin: float, session: Session, wanted: Sequence[Wanted]
) -> list[Job | BaseException | None]:
    """The job of each delivery, claimed for its holder (``shared.deliveries``): a
    ``Job``, None when the delivery is final already, or the error of that one alone
    (``Busy`` while another worker holds it). Four statements for the whole batch."""
    steps = {
        row.id: row
        for row in _LEADS_OF_STEPS.execute(
            session.connection(), {"event_ids": list({w.message.event_id for w in wanted})}
        )
    }
    targets: list[HttpTarget | BaseException] = []
    prices: dict[str, Decimal | None] = {}
    for one in wanted:
        step = steps.get(one.message.event_id)
        if step is None or step.lead_id != one.message.lead_id:
            targets.append(PermanentError(f"no delivery {one.message.event_id}"))
            continue
        recipient = configs.get(step.config_version, session).recipients.get(
            one.message.recipient_id
        )
        if recipient is None or recipient.http is None:
            targets.append(
                PermanentError(f"recipient {one.message.recipient_id} has no http settings")
            )
            continue
        targets.append(recipient.http)
        # an auction's post is paid its bid unless its answer carries a price
        auctioned = step.parent_event_id is not None
        prices[one.message.event_id] = step.price if auctioned else recipient.price
    asked = [
        (one, target)
        for one, target in zip(wanted, targets, strict=True)
        if isinstance(target, HttpTarget)
    ]
    claims = iter(
        deliveries.claim_many(
            session,
            [
                deliveries.Asked(
                    one.message.event_id, one.holder, deliveries.lease_for(target.timeout + margin)
                )
                for one, target in asked
            ],
        )
    )
    earlier = _earlier_results(session, [steps[one.message.event_id].lead_id for one, _ in asked])
    results: list[Job | BaseException | None] = []
    for one, target in zip(wanted, targets, strict=True):
        if not isinstance(target, HttpTarget):
            results.append(target)
            continue
        claimed = next(claims)
        if isinstance(claimed, BaseException) or claimed.final:
            results.append(claimed if isinstance(claimed, BaseException) else None)
            continue
        job = _job(configs, session, one.message, target, claimed, steps, earlier)
        results.append(replace(job, price=prices.get(one.message.event_id)))
    return results


def _job(
    configs: ConfigStore,
    session: Session,
    message: DeliverHttp,
    target: HttpTarget,
    claimed: deliveries.Claim,
    steps: dict[str, Any],
    earlier: dict[str, dict[str, dict[str, Any]]],
) -> Job:
    step = steps[message.event_id]
    flow = configs.get(step.config_version, session).flows[step.flow_id]
    variables = base_variables(
        message.lead_id,
        step.flow_id,
        step.source_id,
        as_utc(step.received_at) or utcnow(),
        step.fields,
    )
    variables.update(earlier.get(message.lead_id, {}))
    variables["event"] = {"id": message.event_id}
    if step.parent_event_id is not None:  # an auction's post: {{ping.reference}}
        variables["ping"] = (step.appended or {}).get("ping") or {"reference": None}
    return Job(
        lead_id=message.lead_id,
        event_id=message.event_id,
        recipient_id=claimed.recipient_id,
        target=target,
        flow_fields=list(flow.fields),
        variables=variables,
        claimed=claimed,
        started_at=step.started_at,
        once=step.parent_event_id is not None,
    )


def claim(
    session: Session, configs: ConfigStore, message: DeliverHttp, *, holder: str, margin: float
) -> Job | None:
    """``claim_many`` for one delivery (raises its error)."""
    (result,) = claim_many(configs, margin, session, [Wanted(message, holder)])
    if isinstance(result, BaseException):
        raise result
    return result


def _earlier_results(session: Session, lead_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """What each lead's earlier recipient steps answered (templates may use it)."""
    if not lead_ids:
        return {}
    by_lead: dict[str, list[Any]] = {}
    results = _EARLIER_RESULTS.execute(session.connection(), {"lead_ids": list(set(lead_ids))})
    for row in results:
        by_lead.setdefault(row.lead_id, []).append(tuple(row)[1:])
    return {lead_id: recipient_results(rows) for lead_id, rows in by_lead.items()}


def record_and_route(
    config_for: Any, session: Session, answered: Sequence[deliveries.Answered]
) -> list[routing.Outbound | BaseException | None]:
    """Record the answered attempts (``shared.deliveries.record_many``) and, for each
    that ends the step, move its lead on in the same transaction (``shared.routing``):
    what to publish once it commits, or None for an attempt to be retried."""
    deliveries.record_many(session, answered)
    ended = [a for a in answered if a.completion is not None]
    routed = iter(
        routing.route(
            session,
            config_for,
            [StepCompleted(lead_id=a.claimed.lead_id, event_id=a.claimed.event_id) for a in ended],
        )
        if ended
        else []
    )
    return [next(routed) if a.completion is not None else None for a in answered]
