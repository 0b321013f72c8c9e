"""Flow duplicates (SPEC section 14), through the real intake, router and delivery
processes: a lead matching one the flow accepted within its lookback fails at intake with
reason ``Duplicate`` and names the earlier lead; of two matching leads sent at once to two
intake processes exactly one is accepted."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.e2e.conftest import Stack, start_intake, stop_process, wait_healthy
from tests.support.recipient import Reply


def unique_email() -> str:
    return f"dup-{secrets.token_hex(6)}@example.com"


def sent(stack: Stack, path: str, lead_id: str) -> int:
    return len([r for r in stack.recipient.requests(path) if lead_id in r.body.decode()])


def test_a_lead_matching_an_accepted_one_fails_as_its_duplicate(stack: Stack) -> None:
    # given a lead the flow accepted
    email = unique_email()
    first = stack.submit("dups", data={"email": email, "first_name": "Ann"})
    assert first.json()["outcome"] == "success"
    first_id = first.json()["lead"]["id"]

    # when another lead comes with the same e-mail written differently
    second = stack.submit("dups", data={"email": f"  {email.upper()} ", "first_name": "Bo"})

    # then it fails at intake as a duplicate, naming the first, and is sent nowhere
    assert second.status_code == 201
    assert (second.json()["outcome"], second.json()["reason"]) == ("failure", "Duplicate")
    second_id = second.json()["lead"]["id"]
    assert second_id != first_id
    report = stack.show(second_id)
    assert report["lead"]["duplicate_of"] == first_id
    text = stack.leadflow("leads", "show", second_id).stdout
    assert f"duplicate of {first_id}" in text
    assert sent(stack, "/dup-buyer", second_id) == 0


def test_any_key_matches_and_a_key_with_a_blank_field_is_not_used(stack: Stack) -> None:
    # given an accepted lead with a phone, and one with a name but no postal code
    phone = f"512555{secrets.randbelow(10_000):04d}"
    name = secrets.token_hex(4)
    stack.submit("dups", data={"email": unique_email(), "phone_1": phone})
    stack.submit("dups", data={"first_name": name, "last_name": "Smith"})

    # when a lead matches the first by phone only (another format, another e-mail), and
    # another has the second one's name, again without a postal code
    by_phone = stack.submit(
        "dups", data={"email": unique_email(), "phone_1": f"(512) 555-{phone[-4:]}"}
    )
    by_name = stack.submit(
        "dups", data={"first_name": name, "last_name": "Smith", "email": unique_email()}
    )

    # then the phone key matches, and the key with a blank postal code is not used
    assert by_phone.json()["reason"] == "Duplicate"
    assert by_name.json()["outcome"] == "success"


def test_a_lead_refused_at_intake_does_not_count(stack: Stack) -> None:
    # given a lead refused by the flow's acceptance criteria
    email = unique_email()
    refused = stack.submit("dups", data={"email": email, "last_name": "Refused"})
    assert refused.json()["reason"] == "Refused by name"

    # when a lead with the same e-mail comes
    later = stack.submit("dups", data={"email": email, "last_name": "Jones"})

    # then it is accepted
    assert later.json()["outcome"] == "success"


def test_with_scope_source_each_source_keeps_its_own_keys(stack: Stack) -> None:
    # given a lead accepted from one source
    email = unique_email()
    stack.submit("dups_by_source", data={"email": email})

    # when the same e-mail comes from the other source, and again from the first
    other = stack.submit("dups_by_source", source="partner", data={"email": email})
    again = stack.submit("dups_by_source", data={"email": email.upper()})

    # then the other source's lead is accepted and the first source's copy is refused
    assert other.json()["outcome"] == "queued"
    assert again.json()["reason"] == "Duplicate"


def pairs_at_two_intakes(stack: Stack, tmp_path: Path, flow: str) -> list[requests.Response]:
    """Ten pairs of matching leads (bodies that differ: the e-mail's case), each pair
    arriving at once, one lead of it at the stack's intake and one at a second intake
    process; the answers, a pair after another."""
    log = tmp_path / "intake-2.log"
    process, url = start_intake(stack, log)
    emails = [unique_email() for _ in range(10)]
    try:
        wait_healthy(f"{url}/healthz", process, log)

        def post(job: tuple[str, str]) -> requests.Response:
            base, email = job
            return requests.post(
                f"{base}/flows/{flow}/sources/web/submit",
                data={"email": email if base == url else email.upper()},
                timeout=30,
            )

        jobs = [(base, email) for email in emails for base in (stack.intake_url, url)]
        with ThreadPoolExecutor(len(jobs)) as pool:
            return list(pool.map(post, jobs))
    finally:
        stop_process(process)


def test_matching_leads_sent_at_once_to_two_intake_processes_accept_exactly_one(
    stack: Stack, tmp_path: Path
) -> None:
    # given a second intake process beside the stack's
    # when each of ten pairs of matching leads arrives at once, one lead at each intake
    answers = pairs_at_two_intakes(stack, tmp_path, "dups")

    # then exactly one lead of each pair is accepted and the other names it
    assert {a.status_code for a in answers} == {201}
    for first, second in zip(answers[::2], answers[1::2], strict=True):
        outcomes = sorted([first.json()["outcome"], second.json()["outcome"]])
        assert outcomes == ["failure", "success"], (first.json(), second.json())
        refused = first if first.json()["outcome"] == "failure" else second
        accepted = second if refused is first else first
        assert refused.json()["reason"] == "Duplicate"
        report = stack.show(refused.json()["lead"]["id"])
        assert report["lead"]["duplicate_of"] == accepted.json()["lead"]["id"]


def test_a_recipient_is_not_sent_a_lead_matching_one_it_took_and_the_flow_goes_on(
    stack: Stack,
) -> None:
    # given a lead a recipient with duplicate keys took
    email = unique_email()
    first = stack.submit("to_dup_buyers", data={"email": email, "first_name": "Ann"})
    first_id = first.json()["lead"]["id"]
    assert sent(stack, "/once-buyer", first_id) == 1

    # when another lead with that e-mail goes through the same flow
    second = stack.submit("to_dup_buyers", data={"email": email.upper(), "first_name": "Bo"})
    second_id = second.json()["lead"]["id"]

    # then its step for that recipient is skipped as a duplicate, and the next one runs
    assert second.json()["outcome"] == "success"
    steps = [
        (e["recipient"], e["outcome"], e["reason"])
        for e in stack.show(second_id)["events"]
        if e["type"] == "recipient"
    ]
    assert steps == [("once_buyer", "skip", "Duplicate"), ("next_buyer", "success", None)]
    assert sent(stack, "/once-buyer", second_id) == 0
    assert sent(stack, "/next-buyer", second_id) == 1


def test_a_lead_the_recipient_refused_does_not_hold_its_keys(stack: Stack) -> None:
    # given a recipient with duplicate keys that refuses a lead
    email = unique_email()
    stack.recipient.script(
        "/picky-buyer", [Reply(200, '{"status": "refused"}'), Reply(200, '{"status": "accepted"}')]
    )
    refused = stack.submit("to_picky_buyer", data={"email": email})
    assert recipient_outcomes(stack, refused.json()["lead"]["id"]) == ["failure"]

    # when a lead with the same e-mail comes later
    later = stack.submit("to_picky_buyer", data={"email": email})

    # then it is sent to the recipient
    assert recipient_outcomes(stack, later.json()["lead"]["id"]) == ["success"]
    assert sent(stack, "/picky-buyer", later.json()["lead"]["id"]) == 1


def recipient_outcomes(stack: Stack, lead_id: str) -> list[str]:
    return [e["outcome"] for e in stack.show(lead_id)["events"] if e["type"] == "recipient"]


def test_matching_leads_routed_at_once_by_two_intake_processes_reach_the_recipient_once(
    stack: Stack, tmp_path: Path
) -> None:
    # given a second intake process (each routes the first steps of its own leads)
    # when each of ten pairs of matching leads arrives at once, one at each intake
    answers = pairs_at_two_intakes(stack, tmp_path, "to_dup_buyers")

    # then the recipient got exactly one lead of each pair, and the other skipped it
    for first, second in zip(answers[::2], answers[1::2], strict=True):
        ids = [first.json()["lead"]["id"], second.json()["lead"]["id"]]
        assert sorted(sent(stack, "/once-buyer", i) for i in ids) == [0, 1]
        assert all(sent(stack, "/next-buyer", i) == 1 for i in ids)
