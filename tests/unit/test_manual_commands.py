"""The CLI's ``leads export|deliver`` behind click: the file on standard output or in a
file, and the ``\\rN leads`` progress counter, with fake terminals."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest

from services.manual import commands, files
from shared.config import Settings
from shared.configstore import ConfigStore, apply_config
from tests.unit.test_email_worker import CONFIG, sqlite_sessions, submit


class FakeStream(io.StringIO):
    """Standard output or error, on a terminal or redirected."""

    def __init__(self, *, terminal: bool) -> None:
        super().__init__(newline="")
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A database with five leads of flow ``later``, and progress every two leads."""
    path = tmp_path / "leadflow.db"
    sessions = sqlite_sessions(str(path))
    apply_config(sessions, CONFIG, {})
    configs = ConfigStore(sessions, refresh_seconds=0)
    for n in range(5):
        submit(sessions, configs, "later", first_name=f"Lead{n}", phone_1="5125551212")
    monkeypatch.setattr(files, "PROGRESS_EVERY", 2)
    return Settings(database_url=f"sqlite:///{path}")


def terminals(
    monkeypatch: pytest.MonkeyPatch, *, stdout: bool, stderr: bool
) -> tuple[FakeStream, FakeStream]:
    out, err = FakeStream(terminal=stdout), FakeStream(terminal=stderr)
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    return out, err


def export(settings: Settings, path: str | None) -> int:
    return commands.export(
        settings,
        flow_id="later",
        recipient_id=None,
        status=None,
        since=None,
        until=None,
        choice=commands.FileChoice(quote=False),
        path=path,
    )


@pytest.mark.parametrize(
    ("stdout_terminal", "stderr_terminal", "to_file", "progress"),
    [
        (True, True, True, "\r2 leads\r4 leads"),  # the file elsewhere: counted on screen
        (False, True, False, "\r2 leads\r4 leads"),  # stdout piped on: counted on screen
        (True, True, False, ""),  # the file on the screen: no counter over its lines
        (False, False, False, ""),  # nobody watching: nothing
        (True, False, True, ""),  # stderr redirected: nothing
    ],
)
def test_an_export_shows_progress_only_on_a_terminal_that_does_not_show_the_file(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stdout_terminal: bool,
    stderr_terminal: bool,
    to_file: bool,
    progress: str,
) -> None:
    # given standard output and error on a terminal or not
    out, err = terminals(monkeypatch, stdout=stdout_terminal, stderr=stderr_terminal)
    path = tmp_path / "leads.csv"

    # when five leads are exported to a file or to standard output
    count = export(settings, str(path) if to_file else None)

    # then the counter went to stderr (or not), and the file holds the leads alone
    assert count == 5
    assert err.getvalue() == progress
    text = path.read_text() if to_file else out.getvalue()
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["first_name", "phone_1"]] + [
        [f"Lead{n}", "5125551212"] for n in range(5)
    ]
    assert out.getvalue() == ("" if to_file else text)


def test_a_manual_delivery_to_a_file_counts_its_leads_on_the_terminal(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a terminal on both standard output and error
    out, err = terminals(monkeypatch, stdout=True, stderr=True)

    # when the recipient's pending leads are delivered to a file
    count = commands.deliver(
        settings, "batch_buyer", commands.FileChoice(), str(tmp_path / "leads.tsv")
    )

    # then the terminal shows the count as it goes, and the leads are in the file only
    assert count == 5
    assert err.getvalue() == "\r2 leads\r4 leads"
    assert out.getvalue() == ""
    assert (tmp_path / "leads.tsv").read_text().count("\n") == 6


def test_a_file_is_written_beside_its_path_and_renamed_into_place(tmp_path: Path) -> None:
    target = tmp_path / "leads.csv"
    with files.output(str(target)) as sink:
        sink.write("a,b\r\n")
        assert not target.exists()  # (nothing half-written under the real name)
    assert target.read_text() == "a,b\n"
    assert list(tmp_path.iterdir()) == [target]


def test_a_pipe_or_device_given_as_the_output_is_written_in_place_not_replaced(
    tmp_path: Path,
) -> None:
    # given a named pipe with a reader (as `-o /dev/null` or `-o /dev/stdout` would be)
    import os
    import stat
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(pipe.read_text()), daemon=True)
    reader.start()

    # when leads are written to it
    with files.output(str(pipe)) as sink:
        sink.write("a,b\r\n")
    reader.join(10)

    # then the reader got them and the pipe is still a pipe
    assert read == ["a,b\n"]
    assert stat.S_ISFIFO(pipe.stat().st_mode)
