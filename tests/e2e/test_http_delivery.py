"""HTTP delivery through the real workers: the request on the wire, retries on listed
statuses, answers read as rejections, and the concurrency setting."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from tests.e2e.conftest import Stack, start_process, stop_process
from tests.support.infra import wait_for
from tests.support.recipient import Received, Reply


def lead_requests(stack: Stack, path: str, lead_id: str) -> list[Received]:
    return [
        r
        for r in stack.recipient.requests(path)
        if lead_id in r.body.decode() or lead_id in str(r.query)
    ]


def test_put_sends_xml_and_get_sends_a_query_string(stack: Stack) -> None:
    # given recipients answering the way their settings read as success
    stack.recipient.script(
        "/put-xml", [Reply(200, "<result><status>ok</status></result>", "text/xml")]
    )
    stack.recipient.script("/get-query", [Reply(200, "OK", "text/plain")])

    # when a lead goes through both
    lead_id = stack.submit("http_methods", data={"phone_1": "512 555 0199"}).json()["lead"]["id"]
    report = stack.wait_done(lead_id)

    # then the first got a PUT with the mapped XML, the second a GET with the query
    put = lead_requests(stack, "/put-xml", lead_id)[0]
    assert put.method == "PUT"
    root = etree.fromstring(put.body)
    assert root.find("contact").get("type") == "mobile"
    assert root.findtext("contact/phone") == "5125550199"
    get = lead_requests(stack, "/get-query", lead_id)[0]
    assert get.method == "GET"
    assert get.query == {"key": "abc", "phone": "5125550199", "lead_id": lead_id}
    assert [d["status"] for d in report["deliveries"]] == ["delivered", "delivered"]
    # and the XML answer was appended to the lead under the recipient id
    assert report["events"][0]["appended"] == {"result": {"status": "ok"}}


def test_a_reference_read_from_the_answer_is_kept_and_seen_by_later_steps(stack: Stack) -> None:
    # given a recipient whose answer carries a quote id read by its reference_path
    stack.recipient.script("/referencing", [Reply(200, '{"quote": {"id": "Q-314"}}')])

    # when a lead goes through it and then through a step that reads the reference
    lead_id = stack.submit("http_reference", data={}).json()["lead"]["id"]
    report = stack.wait_done(lead_id)

    # then the reference is on the step's event, and the next step saw it
    first, second = report["events"][0], report["events"][1]
    assert first["appended"]["reference"] == "Q-314"
    assert second["outcome"] == "success"
    reader = lead_requests(stack, "/reference-reader", "Q-314")
    assert [r.json() for r in reader] == [{"quote": "Q-314"}]
    # and `leadflow leads show` prints it
    assert "Q-314" in stack.leadflow("leads", "show", lead_id).stdout


def test_a_status_listed_in_on_status_is_retried(stack: Stack) -> None:
    stack.recipient.script("/rate-limited", [Reply(429, "slow down"), Reply(200, "{}")])
    lead_id = stack.submit("http_on_status", data={"phone_1": "5125550198"}).json()["lead"]["id"]
    delivery = stack.wait_done(lead_id)["deliveries"][0]
    assert [a["status"] for a in delivery["attempts"]] == [429, 200]
    assert delivery["attempts"][0]["error"] == "HTTP 429"
    assert delivery["status"] == "delivered"


def test_a_request_that_can_never_be_answered_is_an_error_at_once_without_retries(
    stack: Stack,
) -> None:
    # given a recipient that redirects every request to itself
    stack.recipient.script(
        "/looping", [Reply(302, "", "text/plain", headers={"Location": "/looping"})]
    )

    # when a lead is sent to it
    answer = stack.submit("http_redirect_loop", data={"phone_1": "5125550197"})

    # then the step is an error at once: one attempt, no retry (only connection errors,
    # timeouts and 5xx are retried)
    delivery = stack.wait_done(answer.json()["lead"]["id"])["deliveries"][0]
    assert delivery["status"] == "error"
    assert len(delivery["attempts"]) == 1
    assert "TooManyRedirects" in (delivery["attempts"][0]["error"] or "")


@pytest.mark.parametrize("host", ["[", "bad host name"])
def test_a_url_a_template_made_invalid_is_an_error_at_once_without_a_request(
    stack: Stack, host: str
) -> None:
    # given a recipient whose URL's host comes from the lead
    # when a lead whose value makes it invalid is sent to it
    answer = stack.submit("http_bad_url", data={"host": host})

    # then the step is an error at once: one attempt saying why, no retry
    report = stack.wait_done(answer.json()["lead"]["id"])
    (delivery,) = report["deliveries"]
    assert delivery["status"] == "error"
    assert len(delivery["attempts"]) == 1
    assert (delivery["attempts"][0]["error"] or "").startswith("Invalid URL")
    assert report["events"][0]["outcome"] == "error"


def test_an_answer_read_as_a_rejection_is_a_failure_with_the_recipients_reasons(
    stack: Stack,
) -> None:
    body = '{"status": "rejected", "errors": [{"message": " phone invalid "}, {"message": "dup"}]}'
    stack.recipient.script("/rejecting", [Reply(200, body)])
    answer = stack.submit("http_rejection", data={"phone_1": "5125550197"}).json()
    report = stack.show(answer["lead"]["id"])
    step = report["events"][0]
    assert (step["outcome"], step["reason"]) == ("failure", "dup, phone invalid")
    assert report["deliveries"][0]["status"] == "rejected"
    assert answer["outcome"] == "success"  # a recipient's rejection does not fail the lead


def test_one_process_keeps_more_than_200_deliveries_in_flight_to_a_slow_recipient(
    stack: Stack, tmp_path: Path
) -> None:
    # given a second http-delivery process at the default concurrency (256) beside the
    # stack's own (16), and a recipient holding every request until the test lets go (the
    # recipient's timeout is 30 s)
    held = threading.Event()
    stack.recipient.script("/crowded", [Reply(200, "{}", hold=held)])
    log = tmp_path / "http-delivery.log"
    env = {**stack.env, "LEADFLOW_HTTP_CONCURRENCY": "256", "LEADFLOW_METRICS_PORT": "0"}
    process = start_process([sys.executable, "-m", "services.cli", "http-delivery"], env, log)
    try:
        wait_for(lambda: "ready for action" in log.read_text(), timeout=30, message="ready")

        # when 300 leads arrive at once
        with ThreadPoolExecutor(16) as pool:
            ids = list(
                pool.map(
                    lambda _: stack.submit("http_crowded_flow").json()["lead"]["id"], range(300)
                )
            )
        # then more than 216 are in flight at once: over 200 held by the new process alone
        wait_for(
            lambda: stack.recipient.in_flight.get("/crowded", 0) > 216,
            timeout=25,
            message="over 216 requests in flight",
        )
        held.set()
        wait_for(
            lambda: len(stack.recipient.requests("/crowded")) >= 300,
            timeout=120,
            message="300 deliveries",
        )
    finally:
        held.set()
        assert stop_process(process, timeout=60) == 0, log.read_text()[-2000:]

    # and every lead is delivered
    assert stack.wait_done(ids[-1])["deliveries"][0]["status"] == "delivered"


def test_the_concurrency_setting_caps_and_fills_the_deliveries_in_flight(stack: Stack) -> None:
    # given a recipient holding every request until the test lets go, and a pool of 16
    # (LEADFLOW_HTTP_CONCURRENCY)
    held = threading.Event()
    stack.recipient.script("/slow", [Reply(200, "{}", hold=held)])

    # when 40 leads arrive at once
    with ThreadPoolExecutor(8) as pool:
        ids = list(
            pool.map(lambda _: stack.submit("http_slow_flow").json()["lead"]["id"], range(40))
        )
    # then one process holds 16 requests in flight, and no more come while they are held
    wait_for(
        lambda: stack.recipient.in_flight.get("/slow", 0) == 16, timeout=20, message="16 in flight"
    )
    time.sleep(0.5)
    assert stack.recipient.in_flight["/slow"] == 16
    # and once they are answered, the rest go 16 at a time at most
    held.set()
    wait_for(
        lambda: len(stack.recipient.requests("/slow")) >= 40, timeout=60, message="40 deliveries"
    )
    assert stack.recipient.peak_in_flight["/slow"] == 16
    assert stack.wait_done(ids[-1])["deliveries"][0]["status"] == "delivered"
