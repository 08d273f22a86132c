"""`janitor audit path|verify`: where the audit log is, and whether it is intact."""

from __future__ import annotations

import click

from claude_janitor.cli.common import handle_errors
from claude_janitor.errors import ExitStatus


@click.group()
def audit() -> None:
    """The audit log: where it is, and whether it is intact."""


@audit.command("path")
def audit_path() -> None:
    """Print the audit log's path."""
    from claude_janitor.config.paths import janitor_dirs

    click.echo(str(janitor_dirs().audit_log))


@audit.command("verify")
@click.option("--file", "file", type=click.Path(dir_okay=False), help="Verify this log instead.")
@handle_errors
def audit_verify(file: str | None) -> None:
    """Check the hash chain, its head and anchor: exit 1 if a record was edited, reordered, removed or cut off."""
    import sys
    from pathlib import Path

    from claude_janitor.audit.verify import verify
    from claude_janitor.config.paths import janitor_dirs

    dirs = janitor_dirs()
    ok, msg, _ = verify(Path(file) if file else dirs.audit_log, anchor=dirs.audit_anchor)
    click.echo(msg, err=not ok)
    sys.exit(ExitStatus.OK if ok else ExitStatus.ACTIONS_FAILED)


COMMANDS = [audit]
