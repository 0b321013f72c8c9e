"""Feedback end to end: buyers post returns and conversions to the real feedback service
(started by `leadflow up`) with the event id they got with the lead; accepted feedback is
forwarded to the lead's source by the http-delivery workers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pika
import pytest
import requests
import yaml
from lxml import etree
from sqlalchemy import select, update

from shared.db.engine import SessionFactory, make_engine, make_session_factory, transaction, utcnow
from shared.db.models import Delivery, Event, Lead
from shared.messaging import FeedbackAccepted
from tests.e2e.conftest import (
    Stack,
    behind_proxy,
    merged_config,
)
from tests.support.infra import rabbitmqctl, wait_for
from tests.support.proxy import Proxy
from tests.support.queues import publish_messages
from tests.support.recipient import Received, Reply

BUYER = "/fb-buyer"
XML_BODY = '<?xml version="1.0" encoding="utf-8" ?>\n<feedback>{}</feedback>'
CONTENT_TYPES = {
    "json": "application/json",
    "xml": "text/xml",
    "form": "application/x-www-form-urlencoded",
}
LAUGHS = "".join(
    f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
)  # each level ten times the one before: 10^9 "lol"s once expanded
BILLION_LAUGHS = (
    f'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY lol0 "lol">{LAUGHS}]>'
    "<feedback><type>return</type><reason>&lol9;</reason></feedback>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<feedback><type>return</type><reason>&xxe;</reason></feedback>"
)


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Routed:
    lead_id: str
    event_id: str  # the recipient step's event id, as the buyer received it


def encode(fmt: str, fields: dict[str, str]) -> bytes:
    if fmt == "json":
        return json.dumps(fields).encode()
    if fmt == "xml":
        return XML_BODY.format("".join(f"<{k}>{v}</{k}>" for k, v in fields.items())).encode()
    return urlencode(fields).encode()


def read_answer(response: requests.Response) -> dict[str, Any]:
    """The answer in whichever format it came, checked to be well-formed."""
    content_type = response.headers["Content-Type"]
    if content_type.startswith("text/xml"):
        assert response.content.startswith(b"<?xml")
        root = etree.fromstring(response.content)
        assert root.tag == "result"
        return {child.tag: child.text for child in root}
    if content_type.startswith("text/plain"):
        return dict(line.split(": ", 1) for line in response.text.splitlines())
    assert content_type.startswith("application/json")
    return dict(response.json())


class Buyer:
    """The buyer's side: leads it received, feedback it posts."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def route(self, flow: str, source: str = "web", path: str = BUYER, **fields: str) -> Routed:
        data = {"first_name": "Ann", "phone_1": "5125551212", **fields}
        response = self.stack.submit(flow, source, data=data)
        assert response.status_code == 201, response.text
        lead_id = response.json()["lead"]["id"]

        def received() -> list[Received]:
            return [
                r for r in self.stack.recipient.requests(path) if r.json()["lc_lead_id"] == lead_id
            ]

        got = wait_for(received, timeout=10, message=f"lead {lead_id} at {path}")
        return Routed(lead_id, got[0].json()["lc_event_id"])

    def post(
        self,
        event_id: str | None,
        body: bytes | str = b"",
        content_type: str | None = "application/json",
        accept: str | None = "application/json",
        service: str | None = None,
    ) -> requests.Response:
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        params = {"event_id": event_id} if event_id is not None else {}
        return requests.post(
            f"{service or self.stack.feedback_url}/feedback",
            params=params,
            data=body.encode() if isinstance(body, str) else body,
            headers=headers,
            timeout=30,
        )

    def send(
        self,
        event_id: str,
        kind: str,
        reason: str | None = None,
        fmt: str = "json",
        service: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        fields = {"type": kind, **({"reason": reason} if reason is not None else {})}
        response = self.post(event_id, encode(fmt, fields), CONTENT_TYPES[fmt], service=service)
        return response.status_code, read_answer(response)


@pytest.fixture(scope="module")
def buyer(stack: Stack) -> Buyer:
    def healthy() -> bool:
        try:
            return requests.get(f"{stack.feedback_url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for(healthy, timeout=60, interval=0.2, message="the feedback service")
    return Buyer(stack)


@pytest.fixture(scope="module")
def db(stack: Stack) -> Iterator[SessionFactory]:
    engine = make_engine(stack.env["LEADFLOW_DATABASE_URL"], pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def zero_lead(buyer: Buyer) -> Routed:
    """A lead of a step that takes no returns at all (max_lead_age_days: 0)."""
    return buyer.route("fb_zero")


def events(db: SessionFactory, lead_id: str, kind: str) -> list[Event]:
    with db() as session:
        query = select(Event).where(Event.lead_id == lead_id, Event.type == kind)
        return list(session.scalars(query.order_by(Event.started_at)))


def delivery_status(db: SessionFactory, event_id: str) -> str:
    with db() as session:
        delivery = session.get(Delivery, event_id)
        assert delivery is not None
        return delivery.status


def delivered_ago(db: SessionFactory, event_id: str, age: timedelta) -> None:
    with transaction(db) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.event_id == event_id)
            .values(delivered_at=utcnow() - age)
        )


def feedback_queue_idle(stack: Stack) -> bool:
    vhost = pika.URLParameters(stack.env["LEADFLOW_BROKER_URL"]).virtual_host
    out = rabbitmqctl(
        "list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged"
    )
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "feedback":
            return parts[1:] == ["0", "0"]
    return False


def feedback_queues_idle(stack: Stack) -> bool:
    """The feedback queue and its retry tiers hold nothing (its dead letters aside)."""
    vhost = pika.URLParameters(stack.env["LEADFLOW_BROKER_URL"]).virtual_host
    out = rabbitmqctl(
        "list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged"
    )
    rows = [line.split() for line in out.splitlines()]
    tiers = [
        r for r in rows if len(r) == 3 and r[0].startswith("feedback") and r[0] != "feedback.XQ"
    ]
    return bool(tiers) and all(r[1:] == ["0", "0"] for r in tiers)


def answered(db: SessionFactory, lead_id: str) -> list[Event]:
    """The lead's ``feedback-sent`` events, once each holds the source's answer (one
    being forwarded has none yet)."""
    sent = events(db, lead_id, "feedback-sent")
    return sent if sent and all(e.outcome is not None for e in sent) else []


def forwarded(stack: Stack, path: str, lead_id: str) -> list[Received]:
    def about(request: Received) -> bool:
        if "json" in request.headers.get("Content-Type", ""):
            return bool(request.json()["lead_id"] == lead_id)
        return lead_id.encode() in request.body

    return [r for r in stack.recipient.requests(path) if about(r)]


# --- answers ---------------------------------------------------------------------------------

EXPECTED = {
    "success": (201, {"outcome": "success"}),
    "failure": (200, {"outcome": "failure", "reason": "Must provide return within 0 days"}),
    "error": (
        400,
        {"outcome": "error", "reason": "type must be 'return' or 'conversion', not 'refund'"},
    ),
}


@pytest.mark.parametrize("outcome", ["success", "failure", "error"])
@pytest.mark.parametrize("accept", ["application/json", "text/xml", "text/plain"])
@pytest.mark.parametrize("fmt", ["json", "xml", "form"])
def test_every_answer_comes_well_formed_in_the_format_the_buyer_accepts(
    buyer: Buyer, zero_lead: Routed, fmt: str, accept: str, outcome: str
) -> None:
    # given a lead that takes returns (success) or one that takes none (failure, error)
    lead = buyer.route("fb_free") if outcome == "success" else zero_lead
    kind = "refund" if outcome == "error" else "return"

    # when the buyer posts a return (or an invalid type) in one format, accepting another
    body = encode(fmt, {"type": kind, "reason": "Wrong number"})
    response = buyer.post(lead.event_id, body, CONTENT_TYPES[fmt], accept)

    # then the answer has the expected status and outcome, in the accepted format
    status, answer = EXPECTED[outcome]
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith(accept)
    assert read_answer(response) == answer


def test_without_an_accept_header_the_answer_is_json(buyer: Buyer, zero_lead: Routed) -> None:
    response = buyer.post(zero_lead.event_id, '{"type": "return", "reason": "x"}', accept=None)

    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["outcome"] == "failure"


@pytest.mark.parametrize(
    ("event", "body", "content_type", "status", "reason"),
    [
        ("unknown", '{"type": "return", "reason": "x"}', "application/json", 404,
         "Unknown event id 'nope'"),
        ("missing", '{"type": "return", "reason": "x"}', "application/json", 400,
         "event_id is required"),
        ("known", '{"type": "return", "reason": "x"}', None, 415,
         "a Content-Type header is required (form, JSON or XML)"),
        ("known", "type=return&reason=x", "text/plain", 415,
         "unsupported Content-Type 'text/plain' (use form, JSON or XML)"),
        ("known", '{"type": "return", "reason": "x"', "application/json", 400, "invalid JSON"),
        ("known", "<feedback><type>return</type>", "text/xml", 400, "invalid XML"),
        ("known", '{"reason": "x"}', "application/json", 400, "type is required"),
        ("known", "type=return", "application/x-www-form-urlencoded", 400,
         "reason is required for a return"),
        ("known", '{"type": "return", "reason": "' + "x" * 70_000 + '"}', "application/json",
         413, "Body too large: at most 64 KiB"),
    ],
    ids=[
        "unknown-event", "missing-event-id", "missing-content-type", "unsupported-content-type",
        "unparseable-json", "unparseable-xml", "missing-type", "missing-reason", "too-large",
    ],
)  # fmt: skip
def test_a_request_that_cannot_be_taken_is_an_error_answer_and_recorded_when_its_event_is_known(
    buyer: Buyer,
    db: SessionFactory,
    zero_lead: Routed,
    event: str,
    body: str,
    content_type: str | None,
    status: int,
    reason: str,
) -> None:
    # given the id of a known event, an unknown one, or none
    event_id = {"known": zero_lead.event_id, "unknown": "nope", "missing": None}[event]
    before = len(events(db, zero_lead.lead_id, "feedback-received"))

    # when the buyer posts a request with something wrong with it
    response = buyer.post(event_id, body, content_type)

    # then the answer is an error with the status and the reason
    assert response.status_code == status
    answer = response.json()
    assert answer["outcome"] == "error"
    assert answer["reason"].startswith(reason)
    # and a request for a known event is recorded with its outcome
    recorded = events(db, zero_lead.lead_id, "feedback-received")
    if event == "known":
        assert len(recorded) == before + 1
        assert (recorded[-1].outcome, recorded[-1].reason) == ("error", answer["reason"])
        assert recorded[-1].parent_event_id == zero_lead.event_id
    else:
        assert len(recorded) == before


@pytest.mark.parametrize("attack", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["laughs", "xxe"])
def test_an_xml_attack_is_refused_with_400_and_the_service_keeps_answering(
    buyer: Buyer, zero_lead: Routed, attack: str
) -> None:
    # when a buyer posts XML that declares entities
    response = buyer.post(zero_lead.event_id, attack, "text/xml", "text/xml")

    # then it is refused unexpanded
    assert response.status_code == 400
    answer = read_answer(response)
    assert answer["outcome"] == "error"
    assert answer["reason"].startswith("XML refused")
    assert "lollol" not in response.text
    assert "root:" not in response.text
    # and the service still answers
    assert requests.get(f"{buyer.stack.feedback_url}/healthz", timeout=5).status_code == 200
    assert buyer.send(zero_lead.event_id, "return", "x", fmt="xml") == (
        200,
        EXPECTED["failure"][1],
    )


def test_a_body_nested_thousands_of_levels_deep_is_refused_with_400(
    buyer: Buyer, zero_lead: Routed
) -> None:
    # when a buyer posts JSON nested six thousand levels deep (under the size limit)
    deep = '{"type":' * 6_000 + '"return"' + "}" * 6_000
    response = buyer.post(zero_lead.event_id, deep, "application/json", "application/json")

    # then it is refused with the reason, not an internal error
    assert response.status_code == 400, response.text
    assert "nested more than 32 levels deep" in read_answer(response)["reason"]


# --- acceptance ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(days=7) - timedelta(minutes=1), (201, {"outcome": "success"})),
        (
            timedelta(days=7) + timedelta(minutes=1),
            (200, {"outcome": "failure", "reason": "Must provide return within 7 days"}),
        ),
    ],
    ids=["within-7-days", "after-7-days"],
)
def test_a_return_is_accepted_only_within_max_lead_age_days_of_the_delivery(
    buyer: Buyer, db: SessionFactory, age: timedelta, expected: tuple[int, dict[str, str]]
) -> None:
    # given a lead delivered a little less, or a little more, than 7 days ago
    lead = buyer.route("fb_main")
    delivered_ago(db, lead.event_id, age)

    # when the buyer returns it
    answer = buyer.send(lead.event_id, "return", "Wrong number")

    # then it is accepted only in time
    assert answer == expected
    assert delivery_status(db, lead.event_id) == ("returned" if expected[0] == 201 else "delivered")


@pytest.mark.parametrize(
    ("flow", "kind", "reason"),
    [
        ("fb_closed", "return", "Returns are not accepted"),
        ("fb_closed", "conversion", "Conversions are not accepted"),
        ("fb_zero", "return", "Must provide return within 0 days"),
        ("fb_rejected", "return", "Lead was not delivered"),
        ("fb_rejected", "conversion", "Lead was not delivered"),
    ],
)
def test_feedback_the_step_does_not_take_is_not_accepted(
    stack: Stack, buyer: Buyer, db: SessionFactory, flow: str, kind: str, reason: str
) -> None:
    # given a lead of a step that takes no such feedback, or that the recipient rejected
    stack.recipient.script("/fb-picky", [Reply(200, '{"outcome": "failure"}')])
    lead = buyer.route(flow, path="/fb-picky" if flow == "fb_rejected" else BUYER)
    status_before = delivery_status(db, lead.event_id)

    # when the buyer posts the feedback
    answer = buyer.send(lead.event_id, kind, "Wrong number")

    # then it is not accepted, with the reason, and the delivery is unchanged
    assert answer == (200, {"outcome": "failure", "reason": reason})
    assert delivery_status(db, lead.event_id) == status_before
    assert [e.outcome for e in events(db, lead.lead_id, "feedback-received")] == ["failure"]


@pytest.mark.parametrize("which", ["source", "filter"])
def test_feedback_on_an_event_that_is_not_a_recipient_step_is_not_accepted(
    buyer: Buyer, db: SessionFactory, which: str
) -> None:
    # given the id of a lead's source event, or of its filter step's event
    lead = buyer.route("fb_free")
    other = events(db, lead.lead_id, which)[0]

    # when a return is posted with it
    answer = buyer.send(other.id, "return", "Wrong number")

    # then it is not accepted, and recorded against that event
    assert answer == (200, {"outcome": "failure", "reason": "Event is not a recipient step"})
    (received,) = events(db, lead.lead_id, "feedback-received")
    assert received.parent_event_id == other.id
    assert delivery_status(db, lead.event_id) == "delivered"


@pytest.mark.parametrize(
    ("sequence", "final_status"),
    [
        ([("return", "success"), ("return", "Lead was already returned")], "returned"),
        (
            [("return", "success"), ("conversion", "Lead was returned and cannot be converted")],
            "returned",
        ),
        ([("conversion", "success"), ("conversion", "Lead was already converted")], "converted"),
        ([("conversion", "success"), ("return", "success")], "returned"),
    ],
    ids=["return-twice", "convert-returned", "convert-twice", "return-converted"],
)
def test_a_delivery_is_returned_once_and_a_returned_one_is_never_converted(
    buyer: Buyer, db: SessionFactory, sequence: list[tuple[str, str]], final_status: str
) -> None:
    # given a delivered lead
    lead = buyer.route("fb_free")

    # when the buyer posts feedback after feedback
    for kind, expected in sequence:
        status, answer = buyer.send(lead.event_id, kind, "Wrong number")

        # then each is accepted or refused as the duplicate policy says
        if expected == "success":
            assert (status, answer) == (201, {"outcome": "success"})
        else:
            assert (status, answer) == (200, {"outcome": "failure", "reason": expected})
    assert delivery_status(db, lead.event_id) == final_status


def test_of_concurrent_returns_of_one_delivery_exactly_one_is_accepted(
    buyer: Buyer, db: SessionFactory
) -> None:
    # given a delivered lead
    lead = buyer.route("fb_free")
    start = threading.Barrier(8)

    def post_return(_n: int) -> tuple[int, dict[str, Any]]:
        start.wait()
        return buyer.send(lead.event_id, "return", "Duplicate")

    # when eight returns of it arrive at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post_return, range(8)))

    # then one is accepted and the others are refused as duplicates
    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    refused = [a for s, a in answers if s == 200]
    assert all(a["reason"] == "Lead was already returned" for a in refused)
    # and every request is recorded, one of them accepted
    outcomes = sorted(e.outcome or "" for e in events(db, lead.lead_id, "feedback-received"))
    assert outcomes == ["failure"] * 7 + ["success"]
    assert delivery_status(db, lead.event_id) == "returned"


@pytest.mark.parametrize(
    ("given", "expected", "stored"),
    [
        ("wrong #", (201, {"outcome": "success"}), "Wrong number"),
        ("not INTERESTED", (201, {"outcome": "success"}), "Not interested"),
        (
            "Too expensive",
            (
                200,
                {
                    "outcome": "failure",
                    "reason": "Return reason 'Too expensive' is not one of: "
                    "Wrong number, Duplicate, Not interested",
                },
            ),
            None,
        ),
    ],
)
def test_a_return_reason_is_mapped_then_checked_against_the_allowed_reasons(
    buyer: Buyer,
    db: SessionFactory,
    given: str,
    expected: tuple[int, dict[str, str]],
    stored: str | None,
) -> None:
    # given a lead of a step with allowed reasons and a mapping of the buyer's words
    lead = buyer.route("fb_main", source="quiet")

    # when the buyer returns it in its own words
    answer = buyer.send(lead.event_id, "return", given, fmt="form")

    # then the reason is mapped and checked; the buyer's words are kept beside it
    assert answer == expected
    (received,) = events(db, lead.lead_id, "feedback-received")
    assert (received.appended or {})["reason"] == given
    if stored is not None:
        assert received.reason == stored


def test_a_lead_keeps_the_feedback_settings_of_the_configuration_it_was_routed_with(
    stack: Stack, buyer: Buyer, db: SessionFactory, tmp_path: Any
) -> None:
    # given a lead routed while its step takes returns
    old_lead = buyer.route("fb_versioned")
    original = merged_config()
    changed = yaml.safe_load(original)
    changed["flows"]["fb_versioned"]["steps"][0]["feedback"]["returns"]["enabled"] = False
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(changed, sort_keys=False))

    # when a new configuration stops returns for that step
    applied = stack.leadflow("config", "apply", str(path)).stdout
    version = int(applied.split("version")[1].split()[0])
    try:

        def routed_under_new_version() -> Routed | None:
            lead = buyer.route("fb_versioned")
            with db() as session:
                row = session.get(Lead, lead.lead_id)
                return lead if row is not None and row.config_version >= version else None

        new_lead = wait_for(routed_under_new_version, timeout=10, interval=0.2)
        assert isinstance(new_lead, Routed)

        # then the lead routed before still takes returns, and the new one does not
        assert buyer.send(old_lead.event_id, "return", "x") == (201, {"outcome": "success"})
        assert buyer.send(new_lead.event_id, "return", "x") == (
            200,
            {"outcome": "failure", "reason": "Returns are not accepted"},
        )
    finally:
        path.write_text(original)
        stack.leadflow("config", "apply", str(path))


# --- records and operators -------------------------------------------------------------------


def test_leads_show_lists_the_feedback_and_the_lead_keeps_its_outcome(
    stack: Stack, buyer: Buyer
) -> None:
    # given a delivered lead
    lead = buyer.route("fb_free")

    # when the buyer converts it, then returns it twice
    buyer.send(lead.event_id, "conversion", "Bought")
    buyer.send(lead.event_id, "return", "Wrong number", fmt="xml")
    buyer.send(lead.event_id, "return", "Wrong number", fmt="form")

    # then `leads show --json` lists the three, linked to the step, with their outcomes
    report = stack.show(lead.lead_id)
    assert [(f["event_id"], f["type"], f["outcome"], f["reason"]) for f in report["feedback"]] == [
        (lead.event_id, "conversion", "success", "Bought"),
        (lead.event_id, "return", "success", "Wrong number"),
        (lead.event_id, "return", "failure", "Lead was already returned"),
    ]
    assert all(f["received_at"] for f in report["feedback"])
    received = [e for e in report["events"] if e["type"] == "feedback-received"]
    assert {e["recipient"] for e in received} == {"fb_buyer"}
    # and the delivery is returned while the lead's own outcome is unchanged
    assert report["lead"]["outcome"] == "success"
    assert report["deliveries"][0]["status"] == "returned"
    # and the text report shows them too
    text = stack.leadflow("leads", "show", lead.lead_id).stdout
    assert "feedback:" in text
    assert "return failure: Lead was already returned" in text


def test_feedback_list_shows_received_feedback_for_reconciliation(
    stack: Stack, buyer: Buyer
) -> None:
    # given an accepted and a refused return of one lead
    lead = buyer.route("fb_free")
    buyer.send(lead.event_id, "return", "Wrong number")
    buyer.send(lead.event_id, "return", "Duplicate")

    # when an operator lists the feedback of the buyer
    everything = stack.leadflow("feedback", "list", "--recipient", "fb_buyer")
    accepted = stack.leadflow("feedback", "list", "--recipient", "fb_buyer", "--accepted")
    refused = stack.leadflow("feedback", "list", "--refused", "--since", "2000-01-01")
    later = stack.leadflow("feedback", "list", "--since", "2999-01-01")

    # then each line names the time, lead, event, recipient, type, outcome and reason
    mine = [line for line in everything.stdout.splitlines() if lead.lead_id in line]
    assert len(mine) == 2
    first = mine[0].split()
    assert first[1:7] == [lead.lead_id, lead.event_id, "fb_buyer", "return", "success", "Wrong"]
    assert mine[1].endswith("failure  Lead was already returned")
    # and the filters keep what they say
    assert [line for line in accepted.stdout.splitlines() if lead.lead_id in line] == [mine[0]]
    assert [line for line in refused.stdout.splitlines() if lead.lead_id in line] == [mine[1]]
    assert len(later.stdout.splitlines()) == 1  # the header alone
    # and the count goes to stderr
    assert "0 feedback request(s)" in later.stderr
    count = int(everything.stderr.split()[0])
    assert count == len(everything.stdout.splitlines()) - 1


# --- forwarding ------------------------------------------------------------------------------


def parse_forwarded(request: Received) -> dict[str, Any]:
    content_type = request.headers["Content-Type"]
    if content_type == "application/json":
        return dict(request.json())
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(request.body.decode()))
    assert content_type == "application/xml"
    root = etree.fromstring(request.body)
    assert root.tag == "feedback"
    return {
        **{c.tag: c.text for c in root if c.tag != "lead"},
        **{f"lead.{c.tag}": c.text for c in root.find("lead")},
    }


@pytest.mark.parametrize(
    ("source", "path"),
    [("web", "/fb-source-json"), ("form_src", "/fb-source-form"), ("xml_src", "/fb-source-xml")],
)
def test_an_accepted_return_is_forwarded_to_the_source_in_its_format(
    stack: Stack, buyer: Buyer, db: SessionFactory, source: str, path: str
) -> None:
    # given a lead from a source that takes feedback at its own URL
    lead = buyer.route("fb_main", source=source, email="ann@example.com")

    # when the buyer returns it in its own words
    assert buyer.send(lead.event_id, "return", "bad phone")[0] == 201

    # then the source receives the return with the operator's reason and the lead
    (request,) = wait_for(lambda: forwarded(stack, path, lead.lead_id), timeout=15)
    body = parse_forwarded(request)
    if source == "web":
        lead_fields = body.pop("lead")
    else:
        keys = [k for k in body if k.startswith("lead.")]
        lead_fields = {k.removeprefix("lead."): body.pop(k) for k in keys}
    (source_event,) = events(db, lead.lead_id, "source")
    (received,) = events(db, lead.lead_id, "feedback-received")
    assert body == {
        "type": "return",
        "reason": "Wrong number",
        "lead_id": lead.lead_id,
        "event_id": source_event.id,
    }
    assert lead_fields == {"first_name": "Ann", "phone_1": "5125551212", "email": "ann@example.com"}
    assert request.headers["Idempotency-Key"] == received.id
    if source == "xml_src":
        assert request.headers["X-Source-Token"] == "fb-token"
    # and a feedback-sent event records the source's answer
    sent = wait_for(lambda: answered(db, lead.lead_id), timeout=10)
    (sent_event,) = sent
    assert sent_event.outcome == "success"
    assert sent_event.parent_event_id == received.id
    assert (sent_event.appended or {})["status"] == 200


def test_a_source_down_for_a_moment_gets_the_feedback_after_a_retry(
    stack: Stack, buyer: Buyer, db: SessionFactory
) -> None:
    # given a source that answers 503 once, then 200
    stack.recipient.script("/fb-source-flaky", [Reply(503, "busy"), Reply(200, "ok")])
    lead = buyer.route("fb_main", source="flaky_src")

    # when the buyer converts the lead
    assert buyer.send(lead.event_id, "conversion")[0] == 201

    # then the source gets it twice with one idempotency key, and one feedback-sent is written
    sent = wait_for(lambda: answered(db, lead.lead_id), timeout=15)
    (sent_event,) = sent
    assert sent_event.outcome == "success"
    requests_seen = forwarded(stack, "/fb-source-flaky", lead.lead_id)
    assert len(requests_seen) == 2
    assert {r.headers["Idempotency-Key"] for r in requests_seen} == {sent_event.parent_event_id}
    assert requests_seen[-1].json()["reason"] == ""  # a conversion without one


def test_a_source_that_never_answers_ends_in_a_feedback_sent_error_and_a_dead_letter(
    stack: Stack, buyer: Buyer, db: SessionFactory
) -> None:
    # given a lead from a source nobody listens for, with one retry
    lead = buyer.route("fb_main", source="gone_src")

    # when the buyer returns it
    assert buyer.send(lead.event_id, "return", "Duplicate")[0] == 201

    # then the forwarding gives up with an error event, and the message is parked
    def gave_up() -> list[Event]:
        return [e for e in events(db, lead.lead_id, "feedback-sent") if e.outcome == "error"]

    (sent_event,) = wait_for(gave_up, timeout=15)
    assert "Connection" in (sent_event.reason or "")
    wait_for(
        lambda: lead.lead_id in stack.leadflow("dead", "list", "--queue", "feedback").stdout,
        timeout=10,
        message="the parked feedback listed",
    )


def test_feedback_a_source_does_not_take_is_not_forwarded(
    stack: Stack, buyer: Buyer, db: SessionFactory
) -> None:
    # given a source without a feedback URL, and one that takes returns only
    quiet = buyer.route("fb_main", source="quiet")
    returns_only = buyer.route("fb_main", source="returns_only")

    # when both leads are converted, then the second is returned
    assert buyer.send(quiet.event_id, "conversion")[0] == 201
    assert buyer.send(returns_only.event_id, "conversion")[0] == 201
    assert buyer.send(returns_only.event_id, "return", "Duplicate")[0] == 201

    # then only the return is forwarded, once every message has been handled
    (request,) = wait_for(
        lambda: forwarded(stack, "/fb-source-returns", returns_only.lead_id), timeout=15
    )
    wait_for(lambda: feedback_queue_idle(stack), timeout=15, message="the feedback queue idle")
    assert request.json()["type"] == "return"
    assert len(forwarded(stack, "/fb-source-returns", returns_only.lead_id)) == 1
    assert [e.appended["type"] for e in events(db, returns_only.lead_id, "feedback-sent")] == [  # type: ignore[index]
        "return"
    ]
    assert events(db, quiet.lead_id, "feedback-sent") == []


def test_a_redelivered_feedback_message_is_neither_sent_nor_recorded_twice(
    stack: Stack, buyer: Buyer, db: SessionFactory
) -> None:
    # given a conversion already forwarded to the source
    lead = buyer.route("fb_main")
    assert buyer.send(lead.event_id, "conversion")[0] == 201
    wait_for(lambda: answered(db, lead.lead_id), timeout=15)
    (received,) = events(db, lead.lead_id, "feedback-received")

    # when the same message is delivered again
    message = FeedbackAccepted(
        lead_id=lead.lead_id, event_id=lead.event_id, feedback_event_id=received.id
    )
    publish_messages(stack.env["LEADFLOW_BROKER_URL"], message)
    wait_for(lambda: feedback_queue_idle(stack), timeout=15, message="the feedback queue idle")

    # then the source got it once and one feedback-sent event exists
    assert len(forwarded(stack, "/fb-source-json", lead.lead_id)) == 1
    assert len(events(db, lead.lead_id, "feedback-sent")) == 1


def test_copies_of_a_feedback_message_handled_at_once_forward_it_to_the_source_once(
    stack: Stack, buyer: Buyer, db: SessionFactory
) -> None:
    # given a source that takes a second to answer, and a conversion being forwarded
    lead = buyer.route("fb_main")
    stack.recipient.script("/fb-source-json", [Reply(delay=1.0)])
    assert buyer.send(lead.event_id, "conversion")[0] == 201
    wait_for(lambda: events(db, lead.lead_id, "feedback-received"), timeout=15)
    (received,) = events(db, lead.lead_id, "feedback-received")

    # when four copies of its message arrive while the first forward is under way (an
    # outbox row published by two sweepers, a redelivery)
    message = FeedbackAccepted(
        lead_id=lead.lead_id, event_id=lead.event_id, feedback_event_id=received.id
    )
    publish_messages(stack.env["LEADFLOW_BROKER_URL"], *[message] * 4)

    # then, once every copy is handled, the source got it once, recorded once
    wait_for(lambda: answered(db, lead.lead_id), timeout=15)
    wait_for(lambda: feedback_queues_idle(stack), timeout=30, message="the feedback queues idle")
    assert len(forwarded(stack, "/fb-source-json", lead.lead_id)) == 1
    assert len(events(db, lead.lead_id, "feedback-sent")) == 1


@pytest.fixture
def feedback_behind_proxy(stack: Stack, tmp_path: Any) -> Iterator[tuple[str, Proxy]]:
    """A second feedback service whose RabbitMQ connection a test can cut."""
    with behind_proxy(stack, tmp_path, "feedback") as running:
        yield running


def test_with_rabbitmq_unreachable_a_return_is_accepted_and_forwarded_once_it_is_back(
    stack: Stack, buyer: Buyer, feedback_behind_proxy: tuple[str, Proxy]
) -> None:
    service, proxy = feedback_behind_proxy
    # given a delivered lead and a feedback service cut off from RabbitMQ
    lead = buyer.route("fb_main")
    proxy.cut()

    # when the buyer returns the lead
    answer = buyer.send(lead.event_id, "return", "Duplicate", service=service)

    # then the return is accepted at once
    assert answer == (201, {"outcome": "success"})

    # and once RabbitMQ is reachable again it is forwarded to the source
    proxy.restore()
    (request,) = wait_for(lambda: forwarded(stack, "/fb-source-json", lead.lead_id), timeout=30)
    assert request.json()["reason"] == "Duplicate"
