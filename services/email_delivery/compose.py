"""The message a recipient receives: subject, body and the leads as a file attachment.

The subject and the file name say the recipient, the flow and the time (in the
recipient's time zone): ``acme_auto_20261124-080000.csv``. An attachment over 10 MiB is
sent zipped. The Message-ID is derived from the lead's event id or the batch id, so a
retransmitted copy carries the same id and a mail system can drop it.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

from shared.flowconfig import EmailTarget, FileFormat
from shared.formats.files import Row, extension, media_type, write_rows
from shared.templates import render

ZIP_OVER_BYTES = 10 * 1024 * 1024
SPOOL_BYTES = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who the leads are for, where they come from and when: what names the message."""

    recipient_id: str
    recipient_name: str | None
    flows: Sequence[tuple[str, str | None]]  # (flow id, flow name)
    at: datetime  # aware: the lead's arrival, or the batch's due time
    count: int
    lead_id: str | None = None
    event_id: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    maintype: str
    subtype: str
    data: bytes


def local_time(envelope: Envelope, target: EmailTarget) -> datetime:
    return envelope.at.astimezone(ZoneInfo(target.timezone))


def file_stem(envelope: Envelope, target: EmailTarget) -> str:
    flows = "-".join(flow_id for flow_id, _ in envelope.flows) or "leads"
    stamp = local_time(envelope, target).strftime("%Y%m%d-%H%M%S")
    return _UNSAFE.sub("_", f"{envelope.recipient_id}_{flows}")[:150] + f"_{stamp}"


def subject(envelope: Envelope, target: EmailTarget, lead: dict[str, Any] | None = None) -> str:
    when = local_time(envelope, target).strftime("%Y-%m-%d %H:%M %Z")
    recipient = envelope.recipient_name or envelope.recipient_id
    flows = ", ".join(name or flow_id for flow_id, name in envelope.flows)
    if target.subject:
        variables = {
            "recipient": {"id": envelope.recipient_id, "name": recipient},
            "flow": {
                "id": ", ".join(f for f, _ in envelope.flows),
                "name": flows,
            },
            "time": when,
            "count": envelope.count,
            "lead": lead or {},
            "batch": {"id": envelope.batch_id or ""},
        }
        return " ".join(render(target.subject, variables).split())
    what = "1 lead" if envelope.count == 1 else f"{envelope.count} leads"
    return f"{what} for {recipient} from {flows} ({when})"


def build_attachment(
    stem: str,
    file: FileFormat,
    columns: Sequence[str],
    rows: Iterable[Row],
    *,
    zip_over: int = ZIP_OVER_BYTES,
) -> tuple[Attachment, int]:
    """Write the rows into a spooled file (memory, then disk) and zip it when it is large."""
    name = f"{stem}.{extension(file)}"
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        count = write_rows(text, columns, rows, file)
        text.flush()
        text.detach()
        size = spool.tell()
        spool.seek(0)
        if size <= zip_over:
            maintype, subtype = media_type(file).split("/")
            return Attachment(name, maintype, subtype, spool.read()), count
        return Attachment(f"{name}.zip", "application", "zip", _zip(name, spool)), count


def _zip(name: str, source: IO[bytes]) -> bytes:
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as out:
        with (
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive,
            archive.open(name, "w", force_zip64=True) as member,
        ):
            shutil.copyfileobj(source, member)
        out.seek(0)
        return out.read()


def compose(
    target: EmailTarget,
    envelope: Envelope,
    attachment: Attachment,
    lead: dict[str, Any] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = ", ".join(target.to)
    if target.cc:
        message["Cc"] = ", ".join(target.cc)
    message["Subject"] = subject(envelope, target, lead)
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = target.sender.rpartition("@")[2] or "leadflow"
    key = f"lead.{envelope.event_id}" if envelope.event_id else f"batch.{envelope.batch_id}"
    message["Message-ID"] = f"<{key}@{domain}>"
    message["X-Leadflow-Recipient"] = envelope.recipient_id
    for header, value in (
        ("X-Leadflow-Lead-Id", envelope.lead_id),
        ("X-Leadflow-Event-Id", envelope.event_id),
        ("X-Leadflow-Batch-Id", envelope.batch_id),
    ):
        if value:
            message[header] = value
    message.set_content(_body(envelope, attachment))
    message.add_attachment(
        attachment.data,
        maintype=attachment.maintype,
        subtype=attachment.subtype,
        filename=attachment.filename,
    )
    return message


def _body(envelope: Envelope, attachment: Attachment) -> str:
    recipient = envelope.recipient_name or envelope.recipient_id
    flows = ", ".join(name or flow_id for flow_id, name in envelope.flows)
    what = "1 lead" if envelope.count == 1 else f"{envelope.count} leads"
    lines = [f"{what} for {recipient} from {flows}, attached as {attachment.filename}.", ""]
    if envelope.event_id:
        lines += [
            f"lead id: {envelope.lead_id}",
            f"event id: {envelope.event_id} (quote it to return or convert this lead)",
        ]
    if envelope.batch_id:
        lines.append(f"batch id: {envelope.batch_id}")
    return "\n".join(lines) + "\n"


def letter(
    target: EmailTarget,
    envelope: Envelope,
    columns: Sequence[str],
    rows: Iterable[Row],
    lead: dict[str, Any] | None = None,
) -> EmailMessage:
    """The whole message: the rows written as the recipient's file, attached."""
    stem = file_stem(envelope, target)
    attachment, _ = build_attachment(stem, target.file, columns, rows)
    return compose(target, envelope, attachment, lead)
