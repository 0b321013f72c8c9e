"""What the CLI's ``leads deliver|export`` do, kept out of click.

Each function takes the settings, writes the file (standard output, or a path written
beside it and renamed into place) and returns how many leads it wrote; ``UsageError``
(and ``NotFound``) mean the request cannot be done as asked.
"""

from __future__ import annotations

import sys

from services.manual import files
from services.manual.files import FileChoice
from shared.config import Settings
from shared.configstore import ConfigStore
from shared.db.engine import SessionFactory, make_engine, make_session_factory

__all__ = ["FileChoice", "count_line", "deliver", "export", "progress_for"]


def _sessions(settings: Settings) -> SessionFactory:
    return make_session_factory(make_engine(settings.database_url, pool_size=2))


def _progress(count: int) -> None:
    sys.stderr.write(f"\r{count} leads")
    sys.stderr.flush()


def progress_for(path: str | None) -> files.Progress | None:
    """A ``\rN leads`` counter on stderr when stderr is a terminal, unless the file itself
    goes to a terminal (standard output not redirected), where the counter would write
    over its lines."""
    to_stdout = path is None or path == "-"
    if not sys.stderr.isatty() or (to_stdout and sys.stdout.isatty()):
        return None
    return _progress


def deliver(settings: Settings, recipient_id: str, choice: FileChoice, path: str | None) -> int:
    sessions = _sessions(settings)
    with files.output(path) as out:
        return files.deliver(
            sessions, ConfigStore(sessions), recipient_id, out, choice, progress_for(path)
        )


def export(
    settings: Settings,
    *,
    flow_id: str | None,
    recipient_id: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    choice: FileChoice,
    path: str | None,
) -> int:
    sessions = _sessions(settings)
    since_at = files.parse_when(since) if since else None
    until_at = files.parse_when(until, end=True) if until else None
    with files.output(path) as out:
        return files.export(
            sessions,
            ConfigStore(sessions),
            out,
            flow_id=flow_id,
            recipient_id=recipient_id,
            status=status,
            since=since_at,
            until=until_at,
            choice=choice,
            progress=progress_for(path),
        )


def count_line(count: int) -> str:
    """``N leads`` for stderr (over the progress counter when stderr is a terminal)."""
    return ("\r" if sys.stderr.isatty() else "") + f"{count} leads"
