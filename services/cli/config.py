"""``leadflow config``: check, apply and show the YAML file of recipients and flows."""

from __future__ import annotations

import os
import sys
from typing import TextIO

import click

from services.cli import _sessions, _settings
from shared.errors import ConfigError, NotFound


@click.group()
def config() -> None:
    """Recipients and flows (the YAML file)."""


def _fail_config(exc: ConfigError) -> None:
    click.echo(f"configuration is invalid ({len(exc.problems)} problem(s)):", err=True)
    for problem in exc.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@config.command("check")
@click.argument("file", type=click.File("r"))
def config_check(file: TextIO) -> None:
    """Validate FILE without storing it."""
    from shared.flowconfig import load_config_text

    try:
        parsed = load_config_text(file.read(), os.environ)
    except ConfigError as exc:
        _fail_config(exc)
        return
    click.echo(
        f"configuration is valid: {len(parsed.recipients)} recipient(s), "
        f"{len(parsed.flows)} flow(s)"
    )


@config.command("apply")
@click.argument("file", type=click.File("r"))
def config_apply(file: TextIO) -> None:
    """Validate FILE and store it as the new version every service uses."""
    from shared.configstore import apply_config

    try:
        applied = apply_config(_sessions(_settings()), file.read(), os.environ)
    except ConfigError as exc:
        _fail_config(exc)
        return
    if applied.created:
        click.echo(f"applied configuration version {applied.version}")
    else:
        click.echo(f"configuration unchanged (version {applied.version})")


@config.command("show")
@click.option("--version", "version", type=int, default=None, help="a stored version")
def config_show(version: int | None) -> None:
    """Print the stored configuration (newest version by default)."""
    from shared.configstore import ConfigStore

    try:
        number, text = ConfigStore(_sessions(_settings())).source_text(version)
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"# version {number}", err=True)
    click.echo(text, nl=not text.endswith("\n"))
