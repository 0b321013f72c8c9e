"""The inbound API against the real intake service: bodies, errors, answers, acceptance,
response modes. Leads are checked in the database through `leadflow leads show`."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import select

from shared.db.engine import make_engine, make_session_factory
from shared.db.models import Lead
from shared.leaddata import display_fields
from tests.e2e.conftest import Stack, start_intake
from tests.support.processes import stop_process, wait_healthy
from tests.support.recipient import Reply

GOOD = {"first_name": "ann", "phone_1": "512-555-1212", "state": "Texas", "email": "ann@acme.com"}


def url(stack: Stack, flow: str = "intake_json", source: str = "open") -> str:
    return f"{stack.intake_url}/flows/{flow}/sources/{source}/submit"


def count_leads(stack: Stack, flow: str) -> int:
    return int(stack.scalar("SELECT count(*) FROM leads WHERE flow_id = :flow", flow=flow))


# --- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            "application/x-www-form-urlencoded",
            "first_name=ann&phone_1=512-555-1212&state=Texas&email=ann@acme.com",
        ),
        ("application/json", json.dumps(GOOD)),
        (
            "application/xml",
            "<lead><first_name>ann</first_name><phone_1>512-555-1212</phone_1>"
            "<state>Texas</state><email>ann@acme.com</email></lead>",
        ),
        (
            "text/xml; charset=utf-8",
            '<?xml version="1.0"?><lead state="Texas"><first_name>ann</first_name>'
            "<phone_1>512-555-1212</phone_1><email>ann@acme.com</email></lead>",
        ),
    ],
)
def test_form_json_and_xml_bodies_become_the_same_typed_lead(
    stack: Stack, content_type: str, body: str
) -> None:
    # when a lead is posted in each body format
    response = requests.post(
        url(stack), data=body.encode(), headers={"Content-Type": content_type}, timeout=10
    )

    # then it is accepted and stored with its fields typed and normalized
    assert response.status_code == 201, response.text
    assert response.json()["outcome"] == "queued"
    fields = stack.show(response.json()["lead"]["id"])["lead"]["fields"]
    assert fields["first_name"] == "ann"
    assert fields["phone_1"] == "5125551212"
    assert fields["state"] == "TX"
    assert fields["email"] == "ann@acme.com"


def test_query_string_fields_are_merged_over_the_body_and_dot_keys_nest(stack: Stack) -> None:
    # given a form body, a query string overriding one field, dot-notation keys and a repeat
    response = requests.post(
        url(stack) + "?first_name=Bea&tag=a&tag=b",
        data={
            "first_name": "ann",
            "phone_1": "5125551212",
            "state": "TX",
            "mortgage.loan.amount": "$250,000.00",
            "extra.note": "hi",
        },
        timeout=10,
    )

    # then the query wins, a dotted field id is typed, undeclared fields are kept as given
    assert response.status_code == 201
    fields = stack.show(response.json()["lead"]["id"])["lead"]["fields"]
    assert fields["first_name"] == "Bea"
    assert fields["mortgage.loan.amount"] == 250000
    assert fields["extra"] == {"note": "hi"}
    assert fields["tag"] == ["a", "b"]


def test_json_with_raw_tabs_and_newlines_inside_strings_is_accepted(stack: Stack) -> None:
    body = '{"first_name": "ann\tmarie", "phone_1": "5125551212", "state": "TX", "note": "a\nb"}'
    response = requests.post(
        url(stack), data=body.encode(), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 201, response.text


def test_a_get_submission_takes_its_fields_from_the_query_string(stack: Stack) -> None:
    response = requests.get(url(stack), params={"phone_1": "5125551212", "state": "OK"}, timeout=10)
    assert response.status_code == 201
    assert stack.show(response.json()["lead"]["id"])["lead"]["fields"]["state"] == "OK"


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_refused_with_405_and_the_allowed_ones(stack: Stack, method: str) -> None:
    response = requests.request(method, url(stack), timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert response.json()["outcome"] == "error"


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({}, b"phone_1=5125551212", 415, "Content-Type header is required"),
        ({"Content-Type": "application/pdf"}, b"%PDF", 415, "unsupported Content-Type"),
        ({"Content-Type": "application/json"}, b"{not json", 400, "invalid JSON"),
        ({"Content-Type": "application/json"}, b"[1, 2]", 400, "must be an object"),
        ({"Content-Type": "application/xml"}, b"<lead><a></lead>", 400, "invalid XML"),
        (
            {"Content-Type": "application/xml"},
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]><lead><a>&lol2;</a></lead>',
            400,
            "XML refused",
        ),
        (
            {"Content-Type": "text/xml"},
            b'<?xml version="1.0"?><!DOCTYPE lead [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<lead><a>&xxe;</a></lead>",
            400,
            "XML refused",
        ),
    ],
)
def test_unreadable_bodies_are_refused_with_a_clear_reason_and_nothing_is_stored(
    stack: Stack, headers: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    before = count_leads(stack, "intake_json")
    response = requests.post(url(stack), data=body, headers=headers, timeout=10)
    assert response.status_code == status
    assert response.json()["outcome"] == "error"
    assert reason in response.json()["reason"]
    assert count_leads(stack, "intake_json") == before


def test_a_body_over_the_size_limit_is_refused_with_413(stack: Stack) -> None:
    body = b"phone_1=5125551212&pad=" + b"x" * (1024 * 1024 + 10)
    response = requests.post(
        url(stack),
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["outcome"] == "error"


@pytest.mark.parametrize(
    ("flow", "source", "reason"),
    [
        ("nope", "open", "Unknown flow 'nope'"),
        ("intake_json", "nope", "Unknown source 'nope'"),
    ],
)
def test_an_unknown_flow_or_source_is_404(
    stack: Stack, flow: str, source: str, reason: str
) -> None:
    response = requests.post(url(stack, flow, source), data=GOOD, timeout=10)
    assert response.status_code == 404
    assert response.json() == {"outcome": "error", "reason": reason}


def test_a_disabled_flow_answers_201_with_outcome_error(stack: Stack) -> None:
    response = requests.post(
        url(stack, "intake_disabled"), data={"phone_1": "5125551212"}, timeout=10
    )
    assert response.status_code == 201
    assert response.json()["outcome"] == "error"
    assert response.json()["reason"] == "The flow is disabled"


@pytest.mark.parametrize(
    "auth", [None, ("API", "wrong"), ("API", "S3CRET-KEY"), ("someone", "s3cret-key")]
)
def test_a_source_with_an_api_key_refuses_missing_or_wrong_credentials_and_stores_nothing(
    stack: Stack, auth: tuple[str, str] | None
) -> None:
    before = count_leads(stack, "intake_json")
    response = requests.post(url(stack, source="secured"), data=GOOD, auth=auth, timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.json()["outcome"] == "error"
    assert count_leads(stack, "intake_json") == before


def test_a_source_with_an_api_key_accepts_basic_auth_with_the_key(stack: Stack) -> None:
    response = requests.post(
        url(stack, source="secured"), data=GOOD, auth=("API", "s3cret-key"), timeout=10
    )
    assert response.status_code == 201
    # and the lead can be read back with the same credentials only
    lead_url = f"{stack.intake_url}/leads/{response.json()['lead']['id']}"
    assert requests.get(lead_url, timeout=10).status_code == 401
    assert requests.get(lead_url, auth=("API", "s3cret-key"), timeout=10).status_code == 200


# --- answers ----------------------------------------------------------------------------------


def test_the_default_answer_is_json_shaped_as_leadconduit_answers(stack: Stack) -> None:
    response = requests.post(url(stack), data=GOOD, headers={"Accept": "*/*"}, timeout=10)
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"outcome", "lead", "price"}  # no reason when there is none
    assert body["price"] == 0


@pytest.mark.parametrize("accept", ["text/xml", "application/xml"])
def test_an_xml_answer_has_a_result_root(stack: Stack, accept: str) -> None:
    response = requests.post(
        url(stack), data={**GOOD, "state": "CA"}, headers={"Accept": accept}, timeout=10
    )
    assert response.status_code == 201
    root = etree.fromstring(response.content)
    assert root.tag == "result"
    assert root.findtext("outcome") == "failure"
    assert root.findtext("reason") == "Lead must live in TX or OK, not CA"
    assert len(root.findtext("lead/id") or "") == 24
    assert root.findtext("price") == "0"


def test_a_plain_text_answer_has_key_value_lines(stack: Stack) -> None:
    response = requests.post(
        url(stack), data={**GOOD, "state": "CA"}, headers={"Accept": "text/plain"}, timeout=10
    )
    lines = response.text.strip().splitlines()
    assert lines[0] == "outcome: failure"
    assert lines[1] == "reason: Lead must live in TX or OK, not CA"
    assert lines[2].startswith("lead.id: ")
    assert lines[3] == "price: 0"


def test_an_accept_header_naming_nothing_we_produce_is_406(stack: Stack) -> None:
    response = requests.post(url(stack), data=GOOD, headers={"Accept": "image/png"}, timeout=10)
    assert response.status_code == 406


# --- acceptance -------------------------------------------------------------------------------


def refused(stack: Stack, source: str, data: dict[str, str], reason: str) -> dict[str, Any]:
    """Post a lead the acceptance rules refuse: 201, outcome failure for ``reason``; the
    stored lead's report."""
    response = requests.post(url(stack, source=source), data=data, timeout=10)
    assert response.status_code == 201
    assert response.json()["outcome"] == "failure"
    assert response.json()["reason"] == reason
    return stack.show(response.json()["lead"]["id"])


@pytest.mark.parametrize(
    ("source", "data", "reason"),
    [
        ("open", {"first_name": "ann", "state": "TX"}, "phone_1 is required"),
        ("open", {**GOOD, "phone_1": "  "}, "phone_1 is required"),
        ("open", {**GOOD, "state": "Ohio"}, "Lead must live in TX or OK, not OH"),
        ("picky", {**GOOD, "email": "ann@gmail.com"}, "No free email addresses"),
    ],
)
def test_the_first_failing_acceptance_rule_gives_outcome_failure_and_the_lead_goes_no_further(
    stack: Stack, source: str, data: dict[str, str], reason: str
) -> None:
    report = refused(stack, source, data, reason)
    assert report["lead"]["outcome"] == "failure"
    assert [e["type"] for e in report["events"]] == ["source"]
    assert report["events"][0]["outcome"] == "failure"


@pytest.mark.parametrize(
    ("source", "data", "reason"),
    [
        ("open", {"first_name": "ann", "state": "Ohio"}, "phone_1 is required"),
        (
            "picky",
            {"email": "ann@gmail.com", "state": "Ohio", "phone_1": ""},
            "phone_1 is required",
        ),
        (
            "picky",
            {**GOOD, "email": "ann@gmail.com", "state": "Ohio"},
            "Lead must live in TX or OK, not OH",
        ),
    ],
    ids=["required-before-flow", "required-before-flow-and-source", "flow-before-source"],
)
def test_a_required_field_is_checked_before_the_flows_criteria_and_those_before_the_sources(
    stack: Stack, source: str, data: dict[str, str], reason: str
) -> None:
    # given a lead that fails more than one acceptance check at once
    # when it is posted, then the reason is the first check's in the order required, flow,
    # source
    report = refused(stack, source, data, reason)
    assert (report["lead"]["outcome"], report["lead"]["reason"]) == ("failure", reason)
    assert [(e["type"], e["reason"]) for e in report["events"]] == [("source", reason)]


def test_an_invalid_value_never_blocks_a_lead(stack: Stack) -> None:
    response = requests.post(url(stack), data={**GOOD, "email": "not-an-email"}, timeout=10)
    assert response.json()["outcome"] == "queued"
    assert stack.show(response.json()["lead"]["id"])["lead"]["fields"]["email"] == "not-an-email"


# --- response modes ---------------------------------------------------------------------------


def test_after_flow_answers_the_flows_outcome_and_price(stack: Stack) -> None:
    stack.recipient.script("/intake-buyer", [Reply(200, '{"outcome": "success", "price": 7}')])
    response = requests.post(
        url(stack, "intake_after_flow_patient"), data={"phone_1": "5125551212"}, timeout=60
    )
    assert response.json()["outcome"] == "success"
    assert response.json()["price"] == 7


def test_after_flow_answers_queued_when_the_flow_outlasts_the_timeout_and_the_lead_goes_on(
    stack: Stack,
) -> None:
    # given a recipient failing, so the flow waits at a retried step past the 1 s timeout
    stack.recipient.script(
        "/intake-buyer", [Reply(503, "busy"), Reply(200, '{"outcome": "success"}')]
    )
    response = requests.post(
        url(stack, "intake_after_flow"), data={"phone_1": "5125551213"}, timeout=10
    )
    assert response.json()["outcome"] == "queued"
    lead_id = response.json()["lead"]["id"]

    # then GET /leads/{id} answers queued now, and the flow's outcome once it is done
    lead_url = f"{stack.intake_url}/leads/{lead_id}"
    assert requests.get(lead_url, timeout=10).json()["outcome"] == "queued"
    stack.wait_done(lead_id)
    assert requests.get(lead_url, timeout=10).json() == {
        "outcome": "success",
        "lead": {"id": lead_id},
        "price": 0,
    }


def stored_leads(stack: Stack, ids: list[str]) -> dict[str, Lead]:
    engine = make_engine(stack.env["LEADFLOW_DATABASE_URL"], pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            return {lead.id: lead for lead in session.scalars(select(Lead).where(Lead.id.in_(ids)))}
    finally:
        engine.dispose()


@pytest.fixture
def second_intake(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """Another `leadflow intake` beside the stack's, on its own port."""
    log = tmp_path / "intake.log"
    process, url = start_intake(stack, log)
    try:
        wait_healthy(f"{url}/healthz", process, log)
        yield url
    finally:
        assert stop_process(process) == 0, log.read_text()[-2000:]


def test_two_intake_processes_each_answer_after_flow_with_their_own_leads_outcome(
    stack: Stack, second_intake: str
) -> None:
    # given two intake processes, a buyer that accepts at a price, and leads that each
    # have an answer of their own: sold, or stopped with a reason naming the lead
    stack.recipient.script("/intake-buyer", [Reply(200, '{"outcome": "success", "price": 3}')])
    run = secrets.token_hex(3)
    submissions = [
        (intake, f"{run}-{n}", n % 3 == 0)
        for n, intake in enumerate([stack.intake_url, second_intake] * 20)
    ]

    def post(submission: tuple[str, str, bool]) -> dict[str, Any]:
        intake, ref, sell = submission
        response = requests.post(
            url(stack, "intake_replies").replace(stack.intake_url, intake),
            data={"phone_1": "5125551212", "ref": ref, "sell": "yes" if sell else "no"},
            timeout=30,  # well under the flow's 60 s: a lost reply fails here, not "queued"
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    # when both get after_flow submissions at once
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(post, submissions))

    # then each answer is its own lead's flow outcome
    leads = stored_leads(stack, [a["lead"]["id"] for a in answers])
    for (_intake, ref, sell), answer in zip(submissions, answers, strict=True):
        if sell:
            assert {k: answer.get(k) for k in ("outcome", "reason", "price")} == {
                "outcome": "success",
                "reason": None,
                "price": 3,
            }
        else:
            assert {k: answer.get(k) for k in ("outcome", "reason", "price")} == {
                "outcome": "failure",
                "reason": f"Not for sale: {ref}",
                "price": 0,
            }
        lead = leads[answer["lead"]["id"]]
        assert display_fields(lead.fields)["ref"] == ref
        assert (lead.state, lead.outcome) == ("done", answer["outcome"])
        assert lead.price == answer["price"]


def test_get_lead_answers_404_for_an_unknown_lead(stack: Stack) -> None:
    assert requests.get(f"{stack.intake_url}/leads/{'0' * 24}", timeout=10).status_code == 404


# --- no loss ----------------------------------------------------------------------------------


def test_concurrent_submissions_are_each_stored_once(stack: Stack) -> None:
    # given many clients posting at once
    before = count_leads(stack, "intake_json")

    def post(n: int) -> str:
        data = {**GOOD, "first_name": f"n{n}"}
        response = requests.post(url(stack), data=data, timeout=30)
        assert response.status_code == 201
        return str(response.json()["lead"]["id"])

    with ThreadPoolExecutor(max_workers=32) as pool:
        ids = list(pool.map(post, range(300)))

    # then every lead has its own id and every one is stored exactly once
    assert len(set(ids)) == 300
    assert count_leads(stack, "intake_json") == before + 300


def test_leads_show_fails_clearly_for_an_unknown_lead(stack: Stack) -> None:
    with pytest.raises(subprocess.CalledProcessError) as caught:
        stack.leadflow("leads", "show", "f" * 24)
    assert "no lead" in caught.value.stderr
