"""Email delivery's pure parts: the transport URL, SMTP failure sorting, message and file
names, zipping, batch due times, and the command line's dates and file options."""

from __future__ import annotations

import io
import smtplib
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from services.email_delivery.compose import Envelope, build_attachment, compose, file_stem
from services.email_delivery.mailer import MaildirMailer, SmtpMailer, classify, mailer_from_url
from services.email_delivery.schedule import latest_slot, next_slot
from services.manual.files import FileChoice, parse_when
from shared.errors import SettingsError, UsageError
from shared.flowconfig import EmailTarget, FileFormat


def target(**settings: object) -> EmailTarget:
    return EmailTarget.model_validate({"to": ["leads@buyer.example"], **settings})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- the transport ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("maildir://var/mail", "var/mail"),
        ("maildir://rel/path/box", "rel/path/box"),
        ("maildir:///srv/leadflow/mail", "/srv/leadflow/mail"),
    ],
)
def test_a_maildir_url_names_a_relative_or_absolute_path(url: str, path: str) -> None:
    assert mailer_from_url(url) == MaildirMailer(path)


def test_an_smtp_url_gives_host_port_credentials_and_starttls() -> None:
    mailer = mailer_from_url("smtp://me%40corp:p%3Ass@mail.example:2525?starttls=true&timeout=5")

    assert mailer == SmtpMailer(
        host="mail.example",
        port=2525,
        username="me@corp",
        password="p:ss",
        starttls=True,
        tls=False,
        timeout=5.0,
    )


def test_smtps_defaults_to_port_465_with_tls_from_the_start() -> None:
    assert mailer_from_url("smtps://mail.example") == SmtpMailer("mail.example", 465, tls=True)


@pytest.mark.parametrize("url", ["maildir://", "smtp://", "http://mail.example"])
def test_an_unusable_email_url_is_refused(url: str) -> None:
    with pytest.raises(SettingsError):
        mailer_from_url(url)


@pytest.mark.parametrize(
    ("failure", "transient", "code"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True, None),
        (TimeoutError("timed out"), True, None),
        (smtplib.SMTPServerDisconnected("gone"), True, None),
        (smtplib.SMTPDataError(451, b"try again later"), True, 451),
        (smtplib.SMTPConnectError(421, b"busy"), True, 421),
        (smtplib.SMTPDataError(554, b"rejected"), False, 554),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), False, 535),
        (smtplib.SMTPSenderRefused(550, b"no", "from@x"), False, 550),
        (smtplib.SMTPRecipientsRefused({"a@x": (450, b"greylisted")}), True, 450),
        (smtplib.SMTPRecipientsRefused({"a@x": (450, b"later"), "b@x": (550, b"no")}), False, 550),
        (smtplib.SMTPNotSupportedError("STARTTLS"), False, None),
    ],
)
def test_smtp_failures_are_sorted_into_retry_later_or_give_up(
    failure: Exception, transient: bool, code: int | None
) -> None:
    sorted_failure = classify(failure)

    assert sorted_failure.transient is transient
    assert sorted_failure.code == code


# --- the message -----------------------------------------------------------------------------


def envelope(**changes: object) -> Envelope:
    values: dict[str, object] = {
        "recipient_id": "buyer_b",
        "recipient_name": "Buyer B",
        "flows": [("auto", "Auto insurance")],
        "at": utc("2026-11-24T14:00:00"),
        "count": 1,
        "lead_id": "l1",
        "event_id": "e1",
    }
    values.update(changes)
    return Envelope(**values)  # type: ignore[arg-type]


def test_the_file_and_subject_name_the_recipient_the_flow_and_the_local_time() -> None:
    chicago = target(timezone="America/Chicago")

    assert file_stem(envelope(), chicago) == "buyer_b_auto_20261124-080000"
    attachment, _ = build_attachment(
        file_stem(envelope(), chicago), FileFormat(), ["a"], [{"a": "1"}]
    )
    message = compose(chicago, envelope(), attachment)
    assert message["Subject"] == "1 lead for Buyer B from Auto insurance (2026-11-24 08:00 CST)"
    assert message["Message-ID"] == "<lead.e1@localhost>"
    assert "event id: e1" in message.get_body().get_content()  # type: ignore[union-attr]


def test_a_configured_subject_is_a_template() -> None:
    custom = target(subject="{{count}} from {{flow.name}} for {{recipient.id}} at {{time}}")

    message = compose(
        custom,
        envelope(count=12, event_id=None, batch_id="b1"),
        build_attachment("x", FileFormat(), ["a"], [])[0],
    )

    assert message["Subject"] == "12 from Auto insurance for buyer_b at 2026-11-24 14:00 UTC"
    assert message["X-Leadflow-Batch-Id"] == "b1"


def test_an_attachment_over_the_limit_is_zipped_and_unzips_to_the_file() -> None:
    rows = [{"a": "x" * 100} for _ in range(50)]

    small, _ = build_attachment("leads", FileFormat(), ["a"], rows[:1], zip_over=1000)
    large, count = build_attachment("leads", FileFormat(), ["a"], rows, zip_over=1000)

    assert (small.filename, small.subtype) == ("leads.csv", "csv")
    assert (large.filename, large.maintype, large.subtype) == (
        "leads.csv.zip",
        "application",
        "zip",
    )
    assert count == 50
    with zipfile.ZipFile(io.BytesIO(large.data)) as archive:
        assert archive.namelist() == ["leads.csv"]
        assert archive.read("leads.csv").decode().count("\r\n") == 51


# --- due times -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "latest", "following"),
    [
        # 08:00 and 15:00 in Chicago (CST, UTC-6) are 14:00 and 21:00 UTC
        ("2026-11-24T13:59:59", "2026-11-23T21:00:00", "2026-11-24T14:00:00"),
        ("2026-11-24T14:00:00", "2026-11-24T14:00:00", "2026-11-24T21:00:00"),
        ("2026-11-24T14:00:00.500000", "2026-11-24T14:00:00", "2026-11-24T21:00:00"),
        # in summer (CDT, UTC-5) the same local times are an hour earlier in UTC
        ("2026-07-01T13:30:00", "2026-07-01T13:00:00", "2026-07-01T20:00:00"),
    ],
)
def test_cron_due_times_are_in_the_recipients_time_zone(
    now: str, latest: str, following: str
) -> None:
    timing = target(mode="batch", schedule="0 8,15 * * *", timezone="America/Chicago")

    assert latest_slot(timing, utc(now)) == utc(latest)
    assert next_slot(timing, utc(latest)) == utc(following)


@pytest.mark.parametrize(
    ("every", "zone", "now", "latest", "following"),
    [
        ("1h", "UTC", "2026-11-24T10:59:59", "2026-11-24T10:00:00", "2026-11-24T11:00:00"),
        ("1s", "UTC", "2026-11-24T10:00:07.250", "2026-11-24T10:00:07", "2026-11-24T10:00:08"),
        ("500ms", "UTC", "2026-11-24T10:00:07.750", "2026-11-24T10:00:07.5", "2026-11-24T10:00:08"),
        ("90m", "UTC", "2026-11-24T02:00:00", "2026-11-24T01:30:00", "2026-11-24T03:00:00"),
        # every day: local midnight in Chicago is 06:00 UTC in winter
        (
            "1d",
            "America/Chicago",
            "2026-11-24T05:00:00",
            "2026-11-23T06:00:00",
            "2026-11-24T06:00:00",
        ),
    ],
)
def test_interval_due_times_are_multiples_of_the_interval_on_the_local_clock(
    every: str, zone: str, now: str, latest: str, following: str
) -> None:
    timing = target(mode="batch", every=every, timezone=zone)

    assert latest_slot(timing, utc(now)) == utc(latest)
    assert next_slot(timing, utc(latest)) == utc(following)
    assert next_slot(timing, utc(now)) == utc(following)


def test_every_process_computes_the_same_due_time_whenever_it_looks() -> None:
    timing = target(mode="batch", every="1m")
    start = utc("2026-11-24T10:00:00")

    seen = {latest_slot(timing, start + timedelta(milliseconds=ms)) for ms in range(0, 60_000, 7)}

    assert seen == {start}


# --- the command line ------------------------------------------------------------------------


def test_dates_are_iso_8601_and_a_bare_until_date_takes_the_whole_day() -> None:
    assert parse_when("2026-11-24") == utc("2026-11-24T00:00:00")
    assert parse_when("2026-11-24", end=True) == utc("2026-11-25T00:00:00")
    assert parse_when("2026-11-24T08:00:00-06:00") == utc("2026-11-24T14:00:00")
    assert parse_when("2026-11-24T14:00:00Z") == utc("2026-11-24T14:00:00")
    with pytest.raises(UsageError):
        parse_when("yesterday")


def test_command_line_file_options_override_the_recipients_settings() -> None:
    recipient = FileFormat(format="tsv", quote=False, header=True)

    assert FileChoice().resolve(recipient) == recipient
    assert FileChoice(format="csv", header=False).resolve(recipient) == FileFormat(
        format="csv", quote=False, header=False
    )
    assert FileChoice(quote=True).resolve(recipient).quote is True
