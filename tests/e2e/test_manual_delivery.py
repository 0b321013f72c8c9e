"""Manual delivery and export through the `leadflow` command against the running stack:
deliver moves pending leads to delivered (once, even with two operators at once);
export writes leads and changes nothing."""

from __future__ import annotations

import csv
import io
import secrets
import subprocess
from pathlib import Path

from tests.e2e.conftest import LEADFLOW, Stack
from tests.support.infra import wait_for


def post(stack: Stack, flow: str, **fields: str) -> str:
    response = stack.submit(flow, data=fields)
    assert response.status_code == 201, response.text
    return str(response.json()["lead"]["id"])


def pending_count(stack: Stack, recipient: str) -> int:
    return int(
        stack.scalar(
            "SELECT count(*) FROM deliveries WHERE recipient_id = :r AND status = 'pending'",
            r=recipient,
        )
    )


def statuses(stack: Stack, lead_ids: list[str]) -> set[str]:
    return {
        str(stack.scalar("SELECT status FROM deliveries WHERE lead_id = :id", id=lead_id))
        for lead_id in lead_ids
    }


def table(text: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def sold(stack: Stack, lead_id: str) -> bool:
    return bool(stack.scalar("SELECT sold FROM leads WHERE id = :id", id=lead_id))


def test_export_changes_nothing_and_deliver_moves_pending_leads_to_delivered_once(
    stack: Stack, tmp_path: Path
) -> None:
    # given three leads pending for a manual recipient, one with a formula-like comment
    tag = secrets.token_hex(4)
    lead_ids = [
        post(stack, "manual_desk", ref=f"{tag}-1", first_name="Ann", phone_1="5125551212"),
        post(stack, "manual_desk", ref=f"{tag}-2", phone_1="5125551213", comments="=1+2"),
        post(stack, "manual_desk", ref=f"{tag}-3", phone_1="5125551214", email="B@X.COM"),
    ]
    wait_for(lambda: pending_count(stack, "manual_desk") >= 3, timeout=20, message="pending")

    # when they are exported (twice)
    exported = stack.leadflow("leads", "export", "--recipient", "manual_desk")
    again = stack.leadflow("leads", "export", "--recipient", "manual_desk", "--status", "pending")

    # then every pending lead is written under every flow field, and nothing changed
    assert exported.stderr.strip().endswith("3 leads")
    assert exported.stdout == again.stdout
    rows = table(exported.stdout)
    assert rows[0] == ["ref", "first_name", "phone_1", "email", "comments"]
    assert rows[1:] == [
        [f"{tag}-1", "Ann", "5125551212", "", ""],
        [f"{tag}-2", "", "5125551213", "", "'=1+2"],
        [f"{tag}-3", "", "5125551214", "b@x.com", ""],
    ]
    assert exported.stdout.startswith('"ref","first_name"')  # the recipient quotes fields
    assert statuses(stack, lead_ids) == {"pending"}
    assert not any(sold(stack, lead_id) for lead_id in lead_ids)

    # when an operator delivers them to a file
    out = tmp_path / "desk.csv"
    delivered = stack.leadflow("leads", "deliver", "--recipient", "manual_desk", "-o", str(out))

    # then the file holds the same leads, and they are now delivered
    assert delivered.stderr.strip().endswith("3 leads")
    assert out.read_text() == exported.stdout
    assert statuses(stack, lead_ids) == {"delivered"}
    assert all(sold(stack, lead_id) for lead_id in lead_ids)  # what the reports count

    # when delivery runs again, then it writes only the header and says 0 leads
    second = stack.leadflow("leads", "deliver", "--recipient", "manual_desk")
    assert second.stdout == '"ref","first_name","phone_1","email","comments"\n'
    assert second.stderr.strip().endswith("0 leads")
    # and an export by delivery status still finds them, unchanged
    by_status = stack.leadflow(
        "leads", "export", "--recipient", "manual_desk", "--status", "delivered", "--no-quote"
    )
    assert [r[0] for r in table(by_status.stdout)[1:]][-3:] == [f"{tag}-1", f"{tag}-2", f"{tag}-3"]


def test_deliver_uses_the_recipients_file_settings_and_the_command_line_overrides_them(
    stack: Stack,
) -> None:
    # given leads for a recipient set to TSV without quotes or header
    tag = secrets.token_hex(4)
    post(stack, "manual_tsv", ref=f"{tag}-1", state="Texas")
    post(stack, "manual_tsv", ref=f"{tag}-2")
    wait_for(lambda: pending_count(stack, "manual_tsv") >= 2, timeout=20, message="pending")

    # when both are exported with the recipient's settings, and with overrides
    plain = stack.leadflow("leads", "export", "--recipient", "manual_tsv")
    csv_with_header = stack.leadflow(
        "leads", "export", "--recipient", "manual_tsv", "--format", "csv", "--header", "--quote"
    )

    # then the first is TSV without header, the second quoted CSV with one
    # (text mode reads CRLF line ends as "\n")
    assert f"{tag}-1\tTX\n{tag}-2\t\n" in plain.stdout
    assert csv_with_header.stdout.startswith('"ref","state"\n')
    assert f'"{tag}-1","TX"\n' in csv_with_header.stdout

    # when they are delivered to a file with the same overrides
    path = stack.log_path.parent / f"delivered-{tag}.csv"
    delivered = stack.leadflow(
        "leads",
        "deliver",
        "--recipient",
        "manual_tsv",
        "--format",
        "csv",
        "--quote",
        "--header",
        "-o",
        str(path),
    )

    # then the file has the overrides' shape, and the leads are no longer pending
    assert delivered.returncode == 0, delivered.stderr
    written = path.read_text()
    assert written.startswith('"ref","state"\n')
    assert f'"{tag}-1","TX"\n' in written and f'"{tag}-2",""\n' in written
    assert pending_count(stack, "manual_tsv") == 0


def test_export_by_flow_filters_by_outcome_and_received_time(stack: Stack) -> None:
    # given a lead accepted in the desk flow, and one refused (its required phone missing)
    tag = secrets.token_hex(4)
    post(stack, "manual_desk", ref=f"{tag}-ok", phone_1="5125551215")
    post(stack, "manual_desk", ref=f"{tag}-refused")

    # when exporting the flow's successes and failures since this test began
    wait_for(
        lambda: (
            f"{tag}-ok"
            in stack.leadflow(
                "leads", "export", "--flow", "manual_desk", "--status", "success"
            ).stdout
        ),
        timeout=20,
        message="the accepted lead",
    )
    failures = stack.leadflow(
        "leads", "export", "--flow", "manual_desk", "--status", "failure", "--since", "2000-01-01"
    )
    future = stack.leadflow(
        "leads", "export", "--flow", "manual_desk", "--since", "2999-01-01T00:00:00Z"
    )
    past = stack.leadflow("leads", "export", "--flow", "manual_desk", "--until", "2000-01-01")

    # then each holds what it asked for
    assert f"{tag}-refused" in failures.stdout
    assert f"{tag}-ok" not in failures.stdout
    assert future.stderr.strip().endswith("0 leads")
    assert past.stderr.strip().endswith("0 leads")
    assert table(future.stdout) == [["ref", "first_name", "phone_1", "email", "comments"]]


def test_export_refuses_a_status_that_is_not_a_delivery_status(stack: Stack) -> None:
    result = stack.leadflow(
        "leads", "export", "--recipient", "manual_desk", "--status", "success", check=False
    )

    assert result.returncode != 0
    assert "pending, delivered, rejected, error, returned, converted" in result.stderr


def test_two_operators_delivering_at_once_never_get_the_same_lead(
    stack: Stack, tmp_path: Path
) -> None:
    # given forty leads pending for one manual recipient
    tag = secrets.token_hex(4)
    refs = {f"{tag}-{n}" for n in range(40)}
    for ref in sorted(refs):
        post(stack, "manual_race", ref=ref)
    wait_for(lambda: pending_count(stack, "manual_race") >= 40, timeout=30, message="pending")

    # when two `leadflow leads deliver` run at the same moment
    outputs = [tmp_path / "first.csv", tmp_path / "second.csv"]
    runs = [
        subprocess.Popen(
            [*LEADFLOW, "leads", "deliver", "--recipient", "manual_race", "-o", str(out)],
            env=stack.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outputs
    ]
    errors = [run.communicate(timeout=60)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors

    # then every lead is in exactly one of the two files, and the counts add up
    taken = [[row[0] for row in table(out.read_text())[1:]] for out in outputs]
    mine = [[ref for ref in refs_ if ref.startswith(tag)] for refs_ in taken]
    assert sorted(mine[0] + mine[1]) == sorted(refs)
    assert not set(mine[0]) & set(mine[1])
    counts = [int(e.strip().split()[-2]) for e in errors]
    assert sum(counts) == sum(len(t) for t in taken)
    assert pending_count(stack, "manual_race") == 0


def test_export_without_a_flow_or_a_recipient_writes_every_lead(stack: Stack) -> None:
    # given a lead of a manual recipient's flow
    tag = secrets.token_hex(4)
    post(stack, "manual_desk", ref=f"{tag}-all", phone_1="5125551215")

    # when every lead is exported, and every lead that failed
    everything = stack.leadflow("leads", "export").stdout
    failed = stack.leadflow("leads", "export", "--status", "failure").stdout

    # then the lead is among all of them, with its flow's fields, and not among the failed
    rows = table(everything)
    assert "ref" in rows[0] and "phone_1" in rows[0]
    assert any(f"{tag}-all" in row for row in rows[1:])
    assert f"{tag}-all" not in failed


def test_deliver_refuses_a_recipient_whose_leads_are_never_left_pending(stack: Stack) -> None:
    refused = stack.leadflow("leads", "deliver", "--recipient", "http_get", check=False)
    assert refused.returncode != 0
    assert "'http_get' gets its leads by http, never left pending" in refused.stderr
