"""Manual delivery and export: a recipient's leads written as a file by the CLI.

``deliver`` writes the recipient's pending leads and moves them to ``delivered`` in the
same transaction that takes them (as LeadConduit's manual delivery does), under a
``download`` batch; two operators running it at once never get the same lead. ``export``
writes leads and changes nothing. Both stream: rows are read ``yield_per`` at a time.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import Select, delete, insert, select, update
from sqlalchemy.orm import Session

from shared import dates, leadfiles
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, transaction, utcnow
from shared.db.models import Batch, Delivery, Lead
from shared.errors import UsageError
from shared.flowconfig import FileFormat, LeadflowConfig
from shared.formats.files import TextSink, write_rows
from shared.ids import new_id
from shared.metrics import DELIVERIES
from shared.pending import assign_pending, leads_of

DELIVERY_STATUSES = ("pending", "delivered", "rejected", "error", "returned", "converted")
LEAD_OUTCOMES = ("success", "failure", "error", "queued")
PROGRESS_EVERY = 1000

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class FileChoice:
    """Format options given on the command line; None keeps the recipient's setting."""

    format: str | None = None
    quote: bool | None = None
    header: bool | None = None

    def resolve(self, default: FileFormat) -> FileFormat:
        return FileFormat(
            format=self.format or default.format,  # type: ignore[arg-type]
            quote=default.quote if self.quote is None else self.quote,
            header=default.header if self.header is None else self.header,
        )


def recipient_file(config: LeadflowConfig, recipient_id: str) -> FileFormat:
    recipient = config.recipients.get(recipient_id)
    if recipient is None:
        raise UsageError(f"unknown recipient {recipient_id!r}")
    if recipient.manual is not None:
        return recipient.manual.file
    if recipient.email is not None:
        return recipient.email.file
    return FileFormat()


def deliver(
    sessions: SessionFactory,
    configs: ConfigStore,
    recipient_id: str,
    sink: TextSink,
    choice: FileChoice = FileChoice(),
    progress: Progress | None = None,
) -> int:
    """Write the pending leads and mark them delivered, in one transaction. Only a manual
    or batch email recipient has leads pending (``UsageError`` for any other)."""
    _, config = configs.latest()
    file = choice.resolve(recipient_file(config, recipient_id))
    recipient = config.recipients[recipient_id]
    if not recipient.leaves_pending:
        raise UsageError(
            f"{recipient_id!r} gets its leads by {recipient.kind}, never left pending "
            "(deliver takes a manual or batch email recipient)"
        )
    flows = leadfiles.recipient_flows(config, recipient_id)
    with transaction(sessions) as session:
        batch_id, count = take_for_download(session, recipient_id, recipient.price)
        present = _flow_versions(session, leads_of(batch_id)) if batch_id is not None else []
        columns = leadfiles.columns(config, flows, configs, present)
        rows = leadfiles.rows(session, leads_of(batch_id)) if batch_id else iter(())
        written = write_rows(sink, columns, _counting(rows, progress), file)
        _flush(sink)
    assert written == count
    DELIVERIES.labels(recipient_id, "success").inc(written)  # the console's /metrics
    return written


def take_for_download(
    session: Session, recipient_id: str, price: Decimal | None = None
) -> tuple[str | None, int]:
    """Inside the caller's transaction: move the pending leads to delivered under a new
    ``download`` batch. Returns (batch id, count); (None, 0) when nothing was pending."""
    now = utcnow()
    batch_id = new_id()
    session.execute(
        insert(Batch).values(
            id=batch_id,
            recipient_id=recipient_id,
            trigger="download",
            due_at=now,
            created_at=now,
            state="sent",
            leads=0,
            attempts=1,
            published_at=None,
            sent_at=now,
        )
    )
    count = assign_pending(session, recipient_id, batch_id, delivered_at=now, price=price)
    if count == 0:
        session.execute(delete(Batch).where(Batch.id == batch_id))
        return None, 0
    session.execute(update(Batch).where(Batch.id == batch_id).values(leads=count))
    return batch_id, count


def export(
    sessions: SessionFactory,
    configs: ConfigStore,
    sink: TextSink,
    *,
    flow_id: str | None = None,
    recipient_id: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    choice: FileChoice = FileChoice(),
    progress: Progress | None = None,
) -> int:
    """Write the leads that match (neither a flow nor a recipient: every lead); nothing
    changes."""
    _, config = configs.latest()
    if flow_id is not None and flow_id not in config.flows:
        raise UsageError(f"unknown flow {flow_id!r}")
    file = choice.resolve(recipient_file(config, recipient_id) if recipient_id else FileFormat())
    statement = _export_query(flow_id, recipient_id, status, since, until)
    if flow_id is not None:
        flows = [flow_id]
    elif recipient_id is not None:
        flows = leadfiles.recipient_flows(config, recipient_id)
    else:
        flows = list(config.flows)
    with sessions() as session:
        present = _flow_versions(session, statement)
        columns = leadfiles.columns(config, flows, configs, present)
        rows = leadfiles.rows(session, statement.order_by(Lead.received_at, Lead.id))
        written = write_rows(sink, columns, _counting(rows, progress), file)
        _flush(sink)
    return written


def _export_query(
    flow_id: str | None,
    recipient_id: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Select[Any]:
    statement = select(Lead.fields)
    if recipient_id is not None:
        statement = statement.join(Delivery, Delivery.lead_id == Lead.id).where(
            Delivery.recipient_id == recipient_id
        )
        if status is not None:
            if status not in DELIVERY_STATUSES:
                raise UsageError(
                    f"--status with --recipient is one of {', '.join(DELIVERY_STATUSES)}"
                )
            statement = statement.where(Delivery.status == status)
    elif status is not None:
        if status not in LEAD_OUTCOMES:
            raise UsageError(f"--status without --recipient is one of {', '.join(LEAD_OUTCOMES)}")
        statement = statement.where(
            Lead.state != "done" if status == "queued" else Lead.outcome == status
        )
    if flow_id is not None:
        statement = statement.where(Lead.flow_id == flow_id)
    if since is not None:
        statement = statement.where(Lead.received_at >= since)
    if until is not None:
        statement = statement.where(Lead.received_at < until)
    return statement


def _flow_versions(session: Session, statement: Select[Any]) -> Sequence[tuple[str, int]]:
    """The (flow, configuration version) pairs of the leads ``statement`` selects."""
    leads = statement.with_only_columns(Lead.flow_id, Lead.config_version).order_by(None)
    return session.execute(leads.distinct()).all()


def _counting(rows: Iterable[Any], progress: Progress | None) -> Iterator[Any]:
    for count, row in enumerate(rows, start=1):
        yield row
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)


def _flush(sink: TextSink) -> None:
    flush = getattr(sink, "flush", None)
    if callable(flush):
        flush()


def parse_when(text: str, *, end: bool = False) -> datetime:
    """``shared.dates.parse_when``, its error as a UsageError."""
    try:
        return dates.parse_when(text, end=end)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@contextlib.contextmanager
def output(path: str | None) -> Iterator[IO[str]]:
    """Standard output, or ``path`` written in full beside it and renamed into place only
    when everything went well (after the commit, for ``deliver``)."""
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    if os.path.exists(path) and not os.path.isfile(path):
        # A device or a pipe (``-o /dev/null``, ``-o /dev/stdout``): written in place, never
        # replaced by a file.
        with open(path, "w", encoding="utf-8", newline="") as handle:
            yield handle
        return
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
