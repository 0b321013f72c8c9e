"""``leadflow config``: check, apply and show the YAML file of recipients and flows."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import click

from services.cli import _reported, _sessions, main
from shared.errors import ConfigError, NotFound


@main.group()
def config() -> None:
    """Recipients and flows (the YAML file)."""


@contextlib.contextmanager
def _valid() -> Iterator[None]:
    """An invalid file ends the command (exit code 1) listing every problem."""
    try:
        yield
    except ConfigError as exc:
        click.echo(f"configuration is invalid ({len(exc.problems)} problem(s)):", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)


@config.command("check")
@click.argument("file", type=click.File("r"))
def config_check(file: TextIO) -> None:
    """Validate FILE without storing it."""
    from shared.flowconfig import load_config_text

    with _valid():
        parsed = load_config_text(file.read(), os.environ)
    click.echo(
        f"configuration is valid: {len(parsed.recipients)} recipient(s), "
        f"{len(parsed.flows)} flow(s)"
    )


@config.command("apply")
@click.argument("file", type=click.File("r"))
def config_apply(file: TextIO) -> None:
    """Validate FILE and store it as the new version every service uses."""
    from shared.configstore import apply_config

    with _valid():
        applied = apply_config(_sessions(), file.read(), os.environ)
    if applied.created:
        click.echo(f"applied configuration version {applied.version}")
    else:
        click.echo(f"configuration unchanged (version {applied.version})")


@config.command("show")
@click.argument("file", type=click.File("r"), required=False)
@click.option("--version", "version", type=int, default=None, help="a stored version")
def config_show(file: TextIO | None, version: int | None) -> None:
    """Print the stored configuration (newest version by default), or FILE as leadflow
    reads it: validated, every default filled in, ${NAME} substituted, secrets masked."""
    from shared.configstore import ConfigStore

    if file is not None:
        _show_file(file)
        return
    with _reported(NotFound):
        number, text = ConfigStore(_sessions()).source_text(version)
    click.echo(f"# version {number}", err=True)
    click.echo(text, nl=not text.endswith("\n"))


def _show_file(file: TextIO) -> None:
    import yaml

    from shared.flowconfig import load_config_text

    with _valid():
        parsed = load_config_text(file.read(), os.environ)
    click.echo(f"# {file.name} as leadflow reads it (secrets masked)", err=True)
    click.echo(yaml.safe_dump(_masked(parsed.model_dump(mode="json")), sort_keys=False), nl=False)


def _masked(value: Any, name: str = "") -> Any:
    """Credentials (``api_key``, passwords, key-like headers) and passwords in URLs
    replaced by ``***``."""
    from shared.redact import MASK, is_sensitive, url_without_password

    if isinstance(value, dict):
        return {key: _masked(item, str(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, name) for item in value]
    if isinstance(value, str):
        return MASK if value and is_sensitive(name) else url_without_password(value)
    return value
