"""One exception hierarchy for leadflow: every failure a service handles is one of these."""

from __future__ import annotations

from collections.abc import Sequence


class LeadflowError(Exception):
    """Base class for every error leadflow raises on purpose."""


class ConfigError(LeadflowError):
    """The flow configuration is invalid; carries every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class SettingsError(LeadflowError):
    """An environment setting has a value that cannot be used."""


class MessageDecodeError(LeadflowError):
    """A message body could not be turned into its typed message; keeps the raw body."""

    def __init__(self, reason: str, raw: object) -> None:
        super().__init__(reason)
        self.raw = raw


class TransientError(LeadflowError):
    """Worth retrying later: a timeout, a refused connection, a 5xx, an SMTP 4xx.

    ``schedule`` gives the delays (in seconds) before each retransmission; the
    messaging layer picks the tier for the next attempt and, when the schedule is
    used up, parks the message in the dead-letter queue. Failures are counted by
    ``kind``, so waiting out a database outage does not use up a recipient's retries.
    A ``persistent`` failure (an outage, a lease held by another worker) is never
    parked: once its schedule is used up it keeps waiting the schedule's last delay.
    """

    def __init__(
        self,
        reason: str,
        schedule: Sequence[float],
        *,
        kind: str = "transient",
        persistent: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.schedule = tuple(schedule)
        self.kind = kind
        self.persistent = persistent


class Busy(TransientError):
    """Another worker holds the work (its claim's lease has not lapsed): wait and look
    again, for as long as it takes, without using up any retry schedule."""

    def __init__(self, reason: str, schedule: Sequence[float]) -> None:
        super().__init__(reason, schedule, kind="busy", persistent=True)


class PermanentError(LeadflowError):
    """Retrying cannot help: the message is parked at once with this reason."""


class NotFound(LeadflowError):
    """A lead, event, flow or source does not exist."""


class UsageError(LeadflowError):
    """An operator asked for what cannot be done as asked (an unknown recipient, a bad
    ``--status``...)."""
