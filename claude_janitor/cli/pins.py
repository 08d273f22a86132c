"""`janitor pin` and `janitor unpin`: sessions no sweep may take."""

from __future__ import annotations

import click

from claude_janitor.cli.common import handle_errors


@click.command()
@click.argument("session_ids", nargs=-1, metavar="[SESSION_ID]...")
@click.option(
    "--claude-dir",
    "claude_dirs",
    multiple=True,
    metavar="DIR",
    help="Claude Code config dir to look the session up in (repeatable).",
)
@handle_errors
def pin(session_ids: tuple[str, ...], claude_dirs: tuple[str, ...]) -> None:
    """Protect sessions from every sweep (daemon included) until unpinned. No ids: list the pins."""
    from claude_janitor.cache import pins
    from claude_janitor.config.paths import claude_dirs as find_dirs
    from claude_janitor.config.paths import janitor_dirs

    path = janitor_dirs().pins_file
    if not session_ids:
        from claude_janitor.cache.pins import load_pins

        for sid in sorted(load_pins(path)):
            click.echo(sid)
        return
    ids = [pins.check_id(s) for s in session_ids]
    _, changed = pins.update(path, add=ids)
    roots = find_dirs(claude_dirs)
    for sid in ids:
        where = pins.find_session(roots, sid)
        state = "pinned" if sid in changed else "already pinned"
        note = "" if where else f" (no transcript found under {', '.join(map(str, roots))}; pinned anyway)"
        click.echo(f"{state}: {sid}{note}")


@click.command()
@click.argument("session_ids", nargs=-1, required=True, metavar="SESSION_ID...")
@handle_errors
def unpin(session_ids: tuple[str, ...]) -> None:
    """Let sweeps treat these sessions by the policy again."""
    from claude_janitor.cache import pins
    from claude_janitor.config.paths import janitor_dirs

    ids = [pins.check_id(s) for s in session_ids]
    _, changed = pins.update(janitor_dirs().pins_file, remove=ids)
    for sid in ids:
        click.echo(f"{'unpinned' if sid in changed else 'was not pinned'}: {sid}")


COMMANDS = [pin, unpin]
