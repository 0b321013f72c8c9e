"""Handing a message over: into a local Maildir (the default) or to an SMTP server.

``LEADFLOW_EMAIL_URL`` picks the transport: ``maildir://var/mail`` (relative to the
working directory), ``maildir:///abs/path``, ``smtp://user:pass@host:port?starttls=true``
or ``smtps://...`` (TLS from the start). ``send`` returns once the message is accepted
(written, or answered 250) and raises ``SendFailed`` otherwise, saying whether trying
again later may help: a refused connection, a timeout or a 4xx reply may; a 5xx may not.
A server that accepts the message for some recipients and refuses others has accepted
it: ``Accepted.refused`` names the ones it refused, for the worker to log and record.

TLS (``starttls=true`` or ``smtps``) checks the server's certificate and name against the
system's CAs; a relay with a certificate from a private CA is trusted by pointing
OpenSSL's ``SSL_CERT_FILE`` at a bundle that holds that CA. A failed login (535) is a
5xx: the message is not retried.
"""

from __future__ import annotations

import mailbox
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from shared.errors import LeadflowError, SettingsError

DEFAULT_TIMEOUT = 60.0


class SendFailed(LeadflowError):
    """The server (or the disk) did not accept the message."""

    def __init__(self, reason: str, *, transient: bool, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.code = code


@dataclass(frozen=True, slots=True)
class Accepted:
    code: int | None  # the SMTP reply code; None for a Maildir
    where: str
    #: Recipients the server refused while it accepted others (``Recipients refused: a@x:
    #: 550 ...``); the message is delivered, but not to them.
    refused: str | None = None


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> Accepted: ...


@dataclass(frozen=True, slots=True)
class MaildirMailer:
    path: str

    def send(self, message: EmailMessage) -> Accepted:
        try:
            # The three folders are made idempotently: two threads (or processes) creating
            # the Maildir at once must not leave one of them without `tmp`/`new`/`cur`.
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(self.path, sub), exist_ok=True)
            key = mailbox.Maildir(self.path, create=False).add(message)
        except OSError as exc:
            raise SendFailed(f"Maildir {self.path}: {exc}", transient=True) from None
        return Accepted(None, f"{self.path}/new/{key}")


@dataclass(frozen=True, slots=True)
class SmtpMailer:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    tls: bool = False
    timeout: float = DEFAULT_TIMEOUT

    def send(self, message: EmailMessage) -> Accepted:
        connect = smtplib.SMTP_SSL if self.tls else smtplib.SMTP
        try:
            with connect(self.host, self.port, timeout=self.timeout) as client:
                if self.starttls:
                    client.starttls(context=ssl.create_default_context())
                if self.username:
                    client.login(self.username, self.password or "")
                refused = client.send_message(message)
        except Exception as exc:
            raise classify(exc) from None
        return Accepted(250, f"{self.host}:{self.port}", refusal(refused) if refused else None)


def classify(exc: BaseException) -> SendFailed:
    """Sort an smtplib or socket failure into retry-later (4xx, network) or give-up (5xx)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted(code for code, _ in exc.recipients.values())
        transient = all(400 <= code < 500 for code in codes)
        return SendFailed(refusal(exc.recipients), transient=transient, code=codes[-1])
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        reason = f"SMTP {code} {_text(exc.smtp_error)}".strip()
        return SendFailed(reason, transient=not 500 <= code < 600, code=code)
    if isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
        return SendFailed(f"SMTP: {exc}", transient=False)
    if isinstance(exc, TimeoutError):
        return SendFailed("SMTP: timed out", transient=True)
    # another SMTP or network failure is worth retrying; anything else is not
    transient = isinstance(exc, smtplib.SMTPException | OSError)
    return SendFailed(f"SMTP: {type(exc).__name__}: {exc}", transient=transient)


def refusal(recipients: Mapping[str, tuple[int, bytes | str]]) -> str:
    """``Recipients refused: a@x: 550 no such user; ...`` from smtplib's refused dict."""
    replies = "; ".join(
        f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in recipients.items()
    )
    return f"Recipients refused: {replies}"


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:300]


def mailer_from_url(url: str) -> Mailer:
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        # maildir://var/mail -> var/mail (relative); maildir:///srv/mail -> /srv/mail
        path = unquote(parts.netloc + parts.path) if parts.netloc else unquote(parts.path)
        if not path:
            raise SettingsError(f"LEADFLOW_EMAIL_URL={url!r}: the Maildir path is missing")
        return MaildirMailer(path)
    if parts.scheme in ("smtp", "smtps"):
        if not parts.hostname:
            raise SettingsError(f"LEADFLOW_EMAIL_URL={url!r}: the SMTP host is missing")
        query = dict(parse_qsl(parts.query))
        try:
            timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
            port = parts.port or (465 if parts.scheme == "smtps" else 25)
        except ValueError as exc:
            raise SettingsError(f"LEADFLOW_EMAIL_URL={url!r}: {exc}") from None
        return SmtpMailer(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            starttls=query.get("starttls", "").lower() in ("1", "true", "yes", "on"),
            tls=parts.scheme == "smtps",
            timeout=timeout,
        )
    raise SettingsError(f"LEADFLOW_EMAIL_URL={url!r}: use maildir://PATH or smtp://host:port")
