"""Whether a recipient's feedback is accepted: a pure decision from the step's feedback
settings, the delivery's state, the feedback and the time (SPEC section 8).

Checks, in order: the event is a recipient step; the feedback type is enabled; the lead
was delivered; the delivery was not already returned (nor converted, for a conversion);
a return is in time (at most ``max_lead_age_days`` x 24 hours since delivery, 0 refuses
every return); a return's reason, mapped through ``reason_map``, is one of ``reasons``;
a return does not pass the recipient's ``max_percent`` of the month's purchases. An
accepted return with ``approval: manual`` waits (``return requested``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shared.deliveries import SOLD, Status
from shared.flowconfig import ReturnsFeedback, StepFeedback

Kind = Literal["return", "conversion"]
KINDS: tuple[Kind, ...] = ("return", "conversion")
STATUS_AFTER: dict[Kind, str] = {"return": "returned", "conversion": "converted"}
RETURN_LIMIT = "Return limit reached"


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """What acceptance needs to know about the step's delivery."""

    status: str
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Decision:
    accepted: bool
    #: Why the feedback is not accepted (None when accepted).
    refusal: str | None
    #: The reason to store and forward: the recipient's words mapped to the operator's.
    reason: str | None
    #: The delivery's status once the feedback is accepted.
    status: str | None = None


def refuse(refusal: str, reason: str | None) -> Decision:
    return Decision(accepted=False, refusal=refusal, reason=reason)


def map_reason(rules: ReturnsFeedback, reason: str | None) -> str | None:
    """The operator's words for the recipient's (``reason_map``, case and spaces ignored)."""
    if reason is None:
        return None
    wanted = reason.strip().casefold()
    for theirs, ours in rules.reason_map.items():
        if theirs.strip().casefold() == wanted:
            return ours
    return reason.strip()


def allowed_reason(rules: ReturnsFeedback, reason: str | None) -> str | None:
    """The allowed spelling of ``reason`` when ``reasons`` lists it (or sets no list)."""
    if rules.reasons is None:
        return reason
    wanted = (reason or "").strip().casefold()
    return next((r for r in rules.reasons if r.strip().casefold() == wanted), None)


def decide(
    rules: StepFeedback | None,
    delivery: DeliveryState | None,
    kind: Kind,
    reason: str | None,
    now: datetime,
    *,
    over_limit: bool = False,
) -> Decision:
    """Accept or refuse one feedback. ``rules`` is None when the event is not a recipient
    step; ``delivery`` is None when the step has no delivery (a skipped recipient)."""
    if rules is None:
        return refuse("Event is not a recipient step", reason)
    mapped = map_reason(rules.returns, reason) if kind == "return" else reason
    if kind == "return" and not rules.returns.enabled:
        return refuse("Returns are not accepted", mapped)
    if kind == "conversion" and not rules.conversions.enabled:
        return refuse("Conversions are not accepted", mapped)
    if delivery is None or delivery.status not in SOLD:
        return refuse("Lead was not delivered", mapped)
    if delivery.status == Status.RETURN_REQUESTED:
        return refuse("A return of this lead waits for a decision", mapped)
    if delivery.status == "returned":
        if kind == "return":
            return refuse("Lead was already returned", mapped)
        return refuse("Lead was returned and cannot be converted", mapped)
    if kind == "conversion":
        if delivery.status == "converted":
            return refuse("Lead was already converted", mapped)
        return Decision(True, None, mapped, STATUS_AFTER[kind])
    max_days = rules.returns.max_lead_age_days
    if max_days is not None:
        delivered_at = delivery.delivered_at
        in_time = (
            max_days > 0
            and delivered_at is not None
            and now - delivered_at <= timedelta(days=max_days)
        )
        if not in_time:
            return refuse(f"Must provide return within {max_days:g} days", mapped)
    allowed = allowed_reason(rules.returns, mapped)
    if allowed is None:
        listed = ", ".join(rules.returns.reasons or [])
        return refuse(f"Return reason '{mapped or ''}' is not one of: {listed}", mapped)
    if over_limit:
        return refuse(RETURN_LIMIT, mapped)
    status = Status.RETURN_REQUESTED if rules.returns.approval == "manual" else STATUS_AFTER[kind]
    return Decision(True, None, allowed, status)
