"""What the CLI's ``batches send|list`` do, kept out of click.

Each function takes the settings, does the work and returns what to tell the operator;
``UsageError`` (and ``NotFound``) mean the request cannot be done as asked.
"""

from __future__ import annotations

from datetime import datetime

from services.email_delivery import batches
from shared.config import Settings
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, make_engine, make_session_factory, utcnow
from shared.errors import UsageError
from shared.messaging.admin import BlockingPublisher


def _sessions(settings: Settings) -> SessionFactory:
    return make_session_factory(make_engine(settings.database_url, pool_size=2))


def send_now(settings: Settings, recipient_id: str) -> str:
    """LeadConduit's "Deliver Pending Leads": claim the pending leads now and publish."""
    sessions = _sessions(settings)
    _, config = ConfigStore(sessions).latest()
    recipient = config.recipients.get(recipient_id)
    if recipient is None:
        raise UsageError(f"unknown recipient {recipient_id!r}")
    if recipient.email is None:
        raise UsageError(f"{recipient_id} is not an email recipient (use `leadflow leads deliver`)")
    claimed = batches.claim(sessions, recipient_id, utcnow(), trigger="send")
    if claimed is None:
        return f"0 leads pending for {recipient_id}: nothing to send"
    publisher = BlockingPublisher(settings.broker_url, settings.queue_type)
    try:
        batches.publish(sessions, publisher, claimed)
    except Exception as exc:
        return (
            f"batch {claimed.batch_id}: {claimed.leads} leads claimed, but the broker is not "
            f"reachable ({exc}); a running email-delivery publishes it within a minute"
        )
    finally:
        publisher.close()
    return f"batch {claimed.batch_id}: {claimed.leads} leads queued for {recipient_id}"


def _at(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def batch_lines(
    settings: Settings, recipient_id: str | None, state: str | None, limit: int
) -> list[str]:
    if state is not None and state not in batches.STATES:
        raise UsageError(f"--state is one of {', '.join(batches.STATES)}")
    found = batches.listing(
        _sessions(settings), recipient_id=recipient_id, state=state, limit=limit
    )
    header = (
        f"{'batch':<24} {'recipient':<16} {'trigger':<8} {'due':<25} {'created':<25} "
        f"{'leads':>6} {'state':<7} {'sent at':<25} reason"
    )
    return [header] + [
        f"{b.id:<24} {b.recipient_id:<16} {b.trigger:<8} {_at(b.due_at):<25} "
        f"{_at(b.created_at):<25} {b.leads:>6} {b.state:<7} {_at(b.sent_at):<25} "
        f"{b.reason or ''}"
        for b in found
    ]
