"""The batch scheduler: at each due time of each batch recipient, claim a batch and publish it.

Due times are the same in every process: cron times (``schedule``) in the recipient's
time zone, or multiples of ``every`` counted from midnight, 1 January 1970, on the
recipient's wall clock. Each due time is a slot that one scheduler claims (see
``batches.claim``), so any number of email-delivery processes may run the scheduler.

A scheduler that starts (or sees a recipient's timing change) claims the latest slot
already due, so a batch due while no scheduler ran (a restart at 08:05) is sent at
once rather than at the next slot. Such a batch holds only the leads that were waiting
at its due time (``batches.claim``): a scheduler started at 10:00 for ``0 8,15 * * *``
sends at once a lead of 07:30, but keeps a lead of 08:30 for 15:00. It also publishes
again, now and then, the batches whose message was never published.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from services.email_delivery import batches
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, utcnow
from shared.errors import NotFound
from shared.flowconfig import EmailTarget
from shared.messaging import Publisher

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
MAX_SLEEP = 1.0
REPUBLISH_AFTER = timedelta(seconds=30)

Timing = tuple[str | None, float | None, str]


def timing(target: EmailTarget) -> Timing:
    return (target.schedule, target.every, target.timezone)


def latest_slot(target: EmailTarget, now: datetime) -> datetime:
    """The latest due time at or before ``now`` (UTC)."""
    zone = ZoneInfo(target.timezone)
    if target.schedule is not None:
        local = now.astimezone(zone) + timedelta(microseconds=1)
        previous: datetime = croniter(target.schedule, local).get_prev(datetime)
        return previous.astimezone(UTC)
    assert target.every is not None
    every_ms = max(1, round(target.every * 1000))
    offset = now.astimezone(zone).utcoffset() or timedelta(0)
    wall_ms = (now - EPOCH + offset) // MS
    return EPOCH + (wall_ms // every_ms * every_ms) * MS - offset


def next_slot(target: EmailTarget, after: datetime) -> datetime:
    """The first due time strictly after ``after`` (UTC)."""
    if target.schedule is not None:
        local = after.astimezone(ZoneInfo(target.timezone))
        following: datetime = croniter(target.schedule, local).get_next(datetime)
        return following.astimezone(UTC)
    assert target.every is not None
    slot = latest_slot(target, after) + timedelta(seconds=target.every)
    return slot if slot > after else slot + timedelta(seconds=target.every)


class Scheduler:
    def __init__(
        self,
        sessions: SessionFactory,
        configs: ConfigStore,
        publisher: Publisher,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.configs = configs
        self.publisher = publisher
        self.clock = clock
        self._due: dict[str, tuple[Timing, datetime]] = {}
        self._next_sweep = datetime.min.replace(tzinfo=UTC)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self.run, name="batch-scheduler", daemon=True)

    def tick(self) -> float:
        """Claim and publish every batch that is due; returns seconds until the next one."""
        now = self.clock()
        try:
            _, config = self.configs.latest()
        except NotFound:
            return MAX_SLEEP
        targets = {
            rid: r.email
            for rid, r in config.recipients.items()
            if r.email is not None and r.email.mode == "batch"
        }
        for gone in set(self._due) - set(targets):
            del self._due[gone]
        for recipient_id, target in targets.items():
            known = self._due.get(recipient_id)
            due = known[1] if known and known[0] == timing(target) else latest_slot(target, now)
            if due <= now:
                due = latest_slot(target, now)  # slots missed meanwhile are one batch
                claimed = batches.claim(self.sessions, recipient_id, due)
                if claimed is not None:
                    self._publish(claimed)
                due = next_slot(target, due)
            self._due[recipient_id] = (timing(target), due)
        if now >= self._next_sweep:
            self._next_sweep = now + REPUBLISH_AFTER / 2
            self.republish()
        soonest = min(
            (due for _, due in self._due.values()), default=now + timedelta(seconds=MAX_SLEEP)
        )
        return (soonest - self.clock()).total_seconds()

    def republish(self) -> None:
        for claimed in batches.unpublished(self.sessions, REPUBLISH_AFTER):
            logger.info("publishing batch %s of %s again", claimed.batch_id, claimed.recipient_id)
            self._publish(claimed)

    def _publish(self, claimed: batches.Claimed) -> None:
        try:
            batches.publish(self.sessions, self.publisher, claimed)
        except Exception as exc:
            logger.warning(
                "batch %s is claimed but not published (%s); the sweep publishes it later",
                claimed.batch_id,
                exc,
            )

    def run(self) -> None:
        logger.info("batch scheduler started")
        while not self._stopping.is_set():
            try:
                wait = self.tick()
            except Exception:
                logger.exception("batch scheduler pass failed; trying again")
                wait = 5.0
            self._stopping.wait(min(max(wait, 0.02), MAX_SLEEP))

    def start(self) -> None:
        """Run the scheduler on a daemon thread; ``stop`` it before the process exits."""
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop it and wait (up to ``timeout``) for its thread to end: a thread still in
        a database call when the interpreter exits is torn down mid-call (an abort)."""
        self._stopping.set()
        self._thread.join(timeout)
