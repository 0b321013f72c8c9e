"""The router's flow engine on a real database: filters, criteria, waterfalls, events,
prices, idempotency and configuration versions."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select

from shared import routing as flow
from shared.db.engine import SessionFactory, make_engine, make_session_factory, transaction, utcnow
from shared.db.models import Delivery, Event, Lead
from shared.errors import PermanentError
from shared.flowconfig import LeadflowConfig, load_config_text
from shared.messaging import DeliverEmail, DeliverHttp
from tests.support.routing import lead_row, stored

CONFIG = """
recipients:
  a: {http: {url: "http://a.example/leads"}}
  b: {http: {url: "http://b.example/leads"}}
  batch_buyer: {email: {to: [x@y.example], mode: batch, every: 1h}}
  realtime_buyer: {email: {to: [x@y.example]}}
  desk: {manual: {}}
  priced_desk: {manual: {}, price: 9.00}
flows:
  waterfall:
    fields: {state: {type: state}, first_name: {type: first_name}}
    sources: {web: {}}
    steps:
      - filter:
          rule_set: {rules: [{lhv: lead.first_name, op: is equal to, rhv: test}]}
          reason: "Test lead from {{lead.state}}"
      - recipient: a
      - filter:
          name: Stop when sold
          rule_set: {rules: [{lhv: a.outcome, op: is equal to, rhv: success}]}
          outcome: success
      - recipient: b
        criteria: {rules: [{lhv: lead.state, op: is included in, rhv: [TX, OK]}]}
      - recipient: desk
  pending_only:
    sources: {web: {}}
    steps:
      - recipient: batch_buyer
      - recipient: desk
  skip_then_rule:
    fields: {state: {type: state}}
    sources: {web: {}}
    steps:
      - recipient: b
        criteria: {rules: [{lhv: lead.state, op: is equal to, rhv: CA}]}
      - filter:
          rule_set: {rules: [{lhv: b.outcome, op: is equal to, rhv: skip}]}
          reason: "b skipped: {{b.reason}}"
  priced_pending:
    sources: {web: {}}
    steps:
      - recipient: priced_desk
      - filter:
          rule_set: {rules: [{lhv: priced_desk.price, op: is equal to, rhv: 9}]}
          outcome: success
          reason: "pending at {{priced_desk.price}}"
  realtime_email:
    sources: {web: {}}
    steps:
      - recipient: realtime_buyer
  results:
    sources: {web: {}}
    steps:
      - recipient: a
      - filter:
          rule_set: {rules: [{lhv: a.quote.status, op: is equal to, rhv: expired}]}
          reason: "Quote {{a.quote.id}} expired"
      - filter:
          rule_set: {rules: [{lhv: a.reason, op: is equal to, rhv: duplicate}]}
          reason: "Already sold ({{a.reason}})"
          outcome: error
      - recipient: b
        criteria: {rules: [{lhv: a.price, op: is greater than, rhv: 1}]}
"""


@pytest.fixture
def sessions(database_url: str) -> Iterator[SessionFactory]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def config() -> LeadflowConfig:
    return load_config_text(CONFIG, {})


#: Store a lead as intake does (not routed yet), with the reply address "r1"; its id.
submit = partial(stored, reply_to="r1")


def start(
    sessions: SessionFactory, configs: dict[int, LeadflowConfig], lead_id: str
) -> flow.Outbound:
    with transaction(sessions) as session:
        return flow.start(session, configs.__getitem__, lead_id)


def report(
    sessions: SessionFactory,
    config: LeadflowConfig,
    lead_id: str,
    outcome: str,
    price: Decimal = Decimal(0),
    reason: str | None = None,
    appended: dict[str, Any] | None = None,
) -> flow.Outbound:
    """What a delivery worker does: record the step's outcome, then the router resumes."""
    with transaction(sessions) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None and lead.waiting_event_id is not None
        event_id = lead.waiting_event_id
        event = session.get(Event, event_id)
        assert event is not None
        event.outcome, event.price, event.reason = outcome, price, reason
        event.appended = appended
        event.completed_at = utcnow()
    with transaction(sessions) as session:
        return flow.resume(session, {1: config}.__getitem__, lead_id, event_id)


def events_of(
    sessions: SessionFactory, lead_id: str
) -> list[tuple[str, int | None, str | None, str | None]]:
    with sessions() as session:
        rows = session.scalars(
            select(Event)
            .where(Event.lead_id == lead_id, Event.type != "source")
            .order_by(Event.step)
        )
        return [(e.type, e.step, e.recipient_id, e.outcome) for e in rows]


def test_a_matching_filter_stops_the_flow_with_its_outcome_and_templated_reason(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    # given a test lead
    lead_id = submit(sessions, config, "waterfall", {"first_name": "test", "state": "Texas"})

    # when the router starts it
    outbound = start(sessions, {1: config}, lead_id)

    # then the filter stops it with the default outcome failure and its reason
    lead = lead_row(sessions, lead_id)
    assert (lead.outcome, lead.reason) == ("failure", "Test lead from TX")
    assert events_of(sessions, lead_id) == [("filter", 0, None, "stop")]
    assert outbound.messages == []
    assert outbound.reply is not None and outbound.reply.outcome == "failure"
    assert outbound.reply_to == "r1"


def test_a_recipient_step_creates_its_event_first_and_hands_the_lead_over(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    lead_id = submit(sessions, config, "waterfall", {"first_name": "ann", "state": "TX"})

    outbound = start(sessions, {1: config}, lead_id)

    # then the filter let it through, and the lead waits for recipient a's delivery
    assert events_of(sessions, lead_id) == [
        ("filter", 0, None, "continue"),
        ("recipient", 1, "a", None),
    ]
    lead = lead_row(sessions, lead_id)
    assert outbound.messages == [
        DeliverHttp(lead_id=lead_id, event_id=lead.waiting_event_id or "", recipient_id="a")
    ]
    assert len(lead.waiting_event_id or "") == 24  # 96 random bits
    with sessions() as session:
        delivery = session.get(Delivery, lead.waiting_event_id)
        assert delivery is not None and delivery.status == "queued"


def test_a_waterfall_goes_on_to_the_next_recipient_when_the_first_rejects(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    lead_id = submit(sessions, config, "waterfall", {"first_name": "ann", "state": "TX"})
    start(sessions, {1: config}, lead_id)

    # when recipient a rejects the lead
    outbound = report(sessions, config, lead_id, "failure", reason="Duplicate")

    # then the stop-when-sold filter lets it go on and recipient b receives it
    assert [type(m) for m in outbound.messages] == [DeliverHttp]
    assert outbound.messages[0].recipient_id == "b"  # type: ignore[attr-defined]

    # when b accepts at a price, the manual desk gets it pending and the flow succeeds
    outbound = report(sessions, config, lead_id, "success", price=Decimal("12.5"))
    lead = lead_row(sessions, lead_id)
    assert (lead.outcome, lead.price) == ("success", 12.5)
    assert events_of(sessions, lead_id) == [
        ("filter", 0, None, "continue"),
        ("recipient", 1, "a", "failure"),
        ("filter", 2, None, "continue"),
        ("recipient", 3, "b", "success"),
        ("recipient", 4, "desk", "success"),
    ]
    assert outbound.reply is not None and outbound.reply.price == 12.5


def test_a_stop_when_sold_filter_keeps_the_next_recipient_from_receiving_the_lead(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    lead_id = submit(sessions, config, "waterfall", {"first_name": "ann", "state": "TX"})
    start(sessions, {1: config}, lead_id)

    # when recipient a accepts
    outbound = report(sessions, config, lead_id, "success", price=Decimal(3))

    # then the filter stops the flow with success, and b gets nothing
    assert outbound.messages == []
    assert events_of(sessions, lead_id)[-1] == ("filter", 2, None, "stop")
    lead = lead_row(sessions, lead_id)
    assert (lead.outcome, lead.reason, lead.price) == ("success", None, 3.0)


def test_unmatched_criteria_skip_a_recipient(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    lead_id = submit(sessions, config, "waterfall", {"first_name": "ann", "state": "CA"})
    start(sessions, {1: config}, lead_id)
    report(sessions, config, lead_id, "failure")

    assert ("recipient", 3, "b", "skip") in events_of(sessions, lead_id)
    assert lead_row(sessions, lead_id).outcome == "success"


def test_a_recipients_error_does_not_fail_the_lead(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    lead_id = submit(sessions, config, "waterfall", {"first_name": "ann", "state": "CA"})
    start(sessions, {1: config}, lead_id)
    report(sessions, config, lead_id, "error", reason="Server error")
    assert lead_row(sessions, lead_id).outcome == "success"


def test_batch_email_and_manual_recipients_leave_the_lead_pending_and_the_flow_goes_on(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    lead_id = submit(sessions, config, "pending_only", {})
    outbound = start(sessions, {1: config}, lead_id)
    assert outbound.messages == []
    with sessions() as session:
        statuses = sorted(
            d.status for d in session.scalars(select(Delivery).where(Delivery.lead_id == lead_id))
        )
    assert statuses == ["pending", "pending"]
    assert lead_row(sessions, lead_id).outcome == "success"


def test_a_skipped_step_is_read_by_the_rules_after_it_in_the_same_pass(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    # given a lead whose state does not meet b's criteria
    lead_id = submit(sessions, config, "skip_then_rule", {"state": "TX"})

    # when the router starts it (nothing waits between the skip and the filter)
    start(sessions, {1: config}, lead_id)

    # then the filter after the step reads b's skip at once
    lead = lead_row(sessions, lead_id)
    assert (lead.outcome, lead.reason) == ("failure", "b skipped: Recipient criteria not met")


def test_a_lead_left_pending_is_sold_at_the_recipients_price(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    # when a lead is left pending for a manual recipient priced 9.00
    lead_id = submit(sessions, config, "priced_pending", {})
    start(sessions, {1: config}, lead_id)

    # then its step, the rules after it and the lead carry that price
    lead = lead_row(sessions, lead_id)
    assert (lead.outcome, lead.reason, lead.price) == ("success", "pending at 9.00", Decimal(9))
    assert ("recipient", 0, "priced_desk", "success") in events_of(sessions, lead_id)


def test_a_realtime_email_recipient_is_handed_to_email_delivery(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    lead_id = submit(sessions, config, "realtime_email", {})
    outbound = start(sessions, {1: config}, lead_id)
    assert [type(m) for m in outbound.messages] == [DeliverEmail]


def test_the_source_event_is_completed_with_the_flows_summary(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    lead_id = submit(sessions, config, "waterfall", {"first_name": "ann", "state": "TX"})
    start(sessions, {1: config}, lead_id)
    report(sessions, config, lead_id, "success", price=Decimal("2"))
    with sessions() as session:
        source = session.scalars(
            select(Event).where(Event.lead_id == lead_id, Event.type == "source")
        ).one()
    assert (source.outcome, source.price, source.steps_processed) == ("success", 2.0, 3)
    assert source.completed_at is not None and source.ms is not None and source.ms >= 0


def test_a_lead_message_seen_twice_changes_nothing_the_second_time(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    lead_id = submit(sessions, config, "waterfall", {"first_name": "ann", "state": "TX"})
    first = start(sessions, {1: config}, lead_id)
    before = events_of(sessions, lead_id)

    # when the same lead message is delivered again while the lead waits at recipient a
    second = start(sessions, {1: config}, lead_id)

    # then no event is added, and only the pending hand-off is published again
    assert events_of(sessions, lead_id) == before
    assert second.messages == first.messages
    assert second.reply is None


def test_a_step_result_seen_twice_changes_nothing_the_second_time(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    # given a lead that recipient a rejected, whose delivery to b is waiting for a retry
    lead_id = submit(sessions, config, "waterfall", {"first_name": "ann", "state": "TX"})
    start(sessions, {1: config}, lead_id)
    step_event = lead_row(sessions, lead_id).waiting_event_id or ""
    report(sessions, config, lead_id, "failure")
    with transaction(sessions) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        to_b = session.get(Delivery, lead.waiting_event_id)
        assert to_b is not None and to_b.recipient_id == "b"
        to_b.status, to_b.attempts = "retrying", 1
    after_first = events_of(sessions, lead_id)

    # when a's step result arrives again
    with transaction(sessions) as session:
        outbound = flow.resume(session, {1: config}.__getitem__, lead_id, step_event)

    # then it is ignored: no event, and no second hand-off to b ahead of its retry
    assert events_of(sessions, lead_id) == after_first
    assert outbound.messages == [] and outbound.reply is None


def test_a_router_stopped_between_its_commit_and_the_publish_hands_the_lead_on_when_the_result_comes_again(  # noqa: E501
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    # given a step result the router applied and committed, whose hand-off to b was lost
    lead_id = submit(sessions, config, "waterfall", {"first_name": "ann", "state": "TX"})
    start(sessions, {1: config}, lead_id)
    step_event = lead_row(sessions, lead_id).waiting_event_id or ""
    lost = report(sessions, config, lead_id, "failure").messages

    # when RabbitMQ delivers the unacknowledged step result again
    with transaction(sessions) as session:
        outbound = flow.resume(session, {1: config}.__getitem__, lead_id, step_event)

    # then the hand-off to b is published again and the lead is not stuck
    assert outbound.messages == lost
    assert lead_row(sessions, lead_id).state == "routing"


def test_later_steps_read_a_recipients_reason_price_and_appended_data(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    # given leads whose first recipient answered with different results
    expired = submit(sessions, config, "results", {})
    start(sessions, {1: config}, expired)
    sold_twice = submit(sessions, config, "results", {})
    start(sessions, {1: config}, sold_twice)
    cheap = submit(sessions, config, "results", {})
    start(sessions, {1: config}, cheap)
    dear = submit(sessions, config, "results", {})
    start(sessions, {1: config}, dear)

    # when a's results come back
    quote = {"quote": {"id": "Q-7", "status": "expired"}}
    report(sessions, config, expired, "success", price=Decimal("2"), appended=quote)
    report(sessions, config, sold_twice, "failure", reason="Duplicate")
    report(sessions, config, cheap, "success", price=Decimal("1"))
    to_b = report(sessions, config, dear, "success", price=Decimal("2.5")).messages

    # then filters read a's appended data and reason, and b's criteria read a's price
    assert (lead_row(sessions, expired).outcome, lead_row(sessions, expired).reason) == (
        "failure",
        "Quote Q-7 expired",
    )
    assert (lead_row(sessions, sold_twice).outcome, lead_row(sessions, sold_twice).reason) == (
        "error",
        "Already sold (Duplicate)",
    )
    assert events_of(sessions, cheap)[-1] == ("recipient", 3, "b", "skip")
    assert [m.recipient_id for m in to_b] == ["b"]  # type: ignore[attr-defined]


def test_the_leads_price_is_the_sum_of_every_accepting_recipients_price(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    # given a lead that a accepts at 2.5, so b (criteria: a's price above 1) gets it too
    lead_id = submit(sessions, config, "results", {})
    start(sessions, {1: config}, lead_id)
    report(sessions, config, lead_id, "success", price=Decimal("2.5"))

    # when b accepts at 3
    outbound = report(sessions, config, lead_id, "success", price=Decimal(3))

    # then the lead, its source event and the reply carry 5.5
    lead = lead_row(sessions, lead_id)
    assert (lead.outcome, lead.price) == ("success", 5.5)
    with sessions() as session:
        source = session.scalars(
            select(Event).where(Event.lead_id == lead_id, Event.type == "source")
        ).one()
    assert source.price == 5.5
    assert outbound.reply is not None and outbound.reply.price == 5.5


def test_a_lead_finishes_on_the_configuration_version_it_started_with(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    # given a lead routed under version 1, waiting at recipient a
    lead_id = submit(sessions, config, "waterfall", {"first_name": "ann", "state": "TX"}, version=1)
    start(sessions, {1: config}, lead_id)

    # when version 2 drops recipient b (desk would be step 3), and a's result comes back
    b_step = (
        "      - recipient: b\n        criteria: {rules: [{lhv: lead.state, "
        "op: is included in, rhv: [TX, OK]}]}\n"
    )
    assert b_step in CONFIG
    changed = load_config_text(CONFIG.replace(b_step, ""), {})
    assert changed.flows["waterfall"].steps[3].recipient == "desk"
    with transaction(sessions) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        event = session.get(Event, lead.waiting_event_id)
        assert event is not None
        event.outcome, event.completed_at = "failure", utcnow()
        waiting = event.id
    with transaction(sessions) as session:
        flow.resume(session, {1: config, 2: changed}.__getitem__, lead_id, waiting)

    # then the lead still goes on under version 1 (b is next there)
    assert events_of(sessions, lead_id)[-1] == ("recipient", 3, "b", None)


def test_an_unknown_lead_is_a_permanent_error(
    sessions: SessionFactory, config: LeadflowConfig
) -> None:
    with pytest.raises(PermanentError), transaction(sessions) as session:
        flow.start(session, {1: config}.__getitem__, "0" * 24)


def test_a_held_step_left_pending_when_it_opens_is_sold_at_the_recipients_price(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a manual recipient priced 9.00, closed today, holding its leads
    from datetime import UTC, datetime, timedelta

    from shared import clock
    from shared.messaging import StepDue

    today = datetime.now(UTC).date().isoformat()
    held = load_config_text(
        f"""
recipients:
  desk:
    manual: {{}}
    price: 9.00
    schedule: {{mon-sun: ["00:00-24:00"], closed: ["{today}"]}}
    when_closed: hold
flows:
  f:
    sources: {{web: {{}}}}
    steps: [{{recipient: desk}}]
""",
        {},
    )
    lead_id = stored(sessions, held, "f", {})
    outbound = start(sessions, {1: held}, lead_id)
    (due,) = outbound.messages
    assert isinstance(due, StepDue)

    # when the step comes due the next day
    monkeypatch.setattr(clock, "_OFFSET", timedelta(days=1, hours=1))
    with transaction(sessions) as session:
        flow.route(session, {1: held}.__getitem__, [due])

    # then the step, the lead and its source event carry the price
    lead = lead_row(sessions, lead_id)
    assert (lead.outcome, lead.price) == ("success", Decimal(9))
    with sessions() as session:
        prices = {
            e.type: e.price for e in session.scalars(select(Event).where(Event.lead_id == lead_id))
        }
    assert prices == {"recipient": Decimal(9), "source": Decimal(9)}
