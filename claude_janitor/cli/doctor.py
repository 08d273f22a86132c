"""`janitor doctor` (where every setting comes from) and `janitor show` (one session, all that is known)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from claude_janitor.cli.common import (
    archive_dir,
    cache_options,
    echo_json,
    fail,
    handle_errors,
    make_env,
    no_titles_option,
    now_option,
    now_or,
)
from claude_janitor.errors import ExitStatus

if TYPE_CHECKING:
    from claude_janitor.sweep.plan import Env


@click.command()
@cache_options
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@now_option
@handle_errors
def doctor(claude_dirs: tuple[str, ...], config_path: str | None, as_json: bool, now: float | None) -> None:
    """Where every setting comes from, and whether Claude Code is cleaning up on its own.

    Shows the effective policy with the file each value came from (user config or the managed policy),
    Claude Code's cleanupPeriodDays and its source (user or managed settings, projects that set their
    own), when Claude Code's own sweep last ran (.last-cleanup), and the privacy settings Claude Code
    honours (DISABLE_TELEMETRY …, from the environment or settings.json `env`). Exit 2 if any config or
    settings file is broken.
    """
    import sys

    from claude_janitor.config.paths import claude_dirs as find_dirs
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.render.doctor import render
    from claude_janitor.render.doctor_checks import collect

    rep = collect(find_dirs(claude_dirs), config_path, janitor_dirs(), now_or(now))
    if as_json:
        echo_json(rep)
    else:
        click.echo(render(rep))
    sys.exit(ExitStatus.USAGE if rep["problems"] or rep["settings_problems"] else ExitStatus.OK)


@click.command()
@click.argument("session_id")
@cache_options
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@no_titles_option
@now_option
@handle_errors
def show(
    session_id: str,
    claude_dirs: tuple[str, ...],
    config_path: str | None,
    as_json: bool,
    no_titles: bool,
    now: float | None,
) -> None:
    """One session, everything the janitor knows: title, kind, project, pieces with sizes and times, the
    decision and the whole reasoning behind it (which rule, which window from which file), pins, archives.

    Changes nothing. Exit 2 for a malformed id or one found nowhere."""
    from claude_janitor.cache.pins import check_id
    from claude_janitor.render import show as sh
    from claude_janitor.sweep.plan import build_plan

    sid = check_id(session_id)
    env = make_env(claude_dirs, config_path)
    when = now_or(now)
    plan, pol, _ = build_plan(env, when)
    found = sh.find(plan, pol, sid)
    archives = _archives_of(config_path, sid)
    trash = _trash_of(env, sid)
    if not found and not archives and not trash:
        fail(
            f"no session {sid} under {', '.join(map(str, env.roots)) or '(no Claude dir)'}, in the archives or "
            "in the trash (see `janitor report`)"
        )
    for x in found:
        p = x.decision.session.project
        x.archives = [a for a in archives if not p or a.get("project") in (p, None)]
        x.trash = [t for t in trash if not p or t.get("project") in (p, None)]
    if not found:
        click.echo(
            f"session {sid} is not in the cache"
            + ("; archived: " + ", ".join(a["path"] for a in archives) if archives else "")
            + ("; in the trash: " + ", ".join(t["path"] for t in trash) if trash else "")
        )
        if as_json:
            echo_json({"now": None, "sessions": [], "archives": archives, "trash": trash})
        return
    click.echo(sh.to_json(found, when, not no_titles) if as_json else sh.render(found, when, not no_titles), nl=False)


def _archives_of(config_path: str | None, sid: str) -> list[dict[str, Any]]:
    """The archives of a session (none if the archive dir cannot be listed)."""
    from claude_janitor.archive.maintenance import list_archives
    from claude_janitor.cache.ids import same_id

    try:
        archives = [a.to_dict() for a in list_archives(archive_dir(config_path))]
    except OSError:
        return []
    return [a for a in archives if a.get("session_id") and same_id(a["session_id"], sid)]


def _trash_of(env: Env, sid: str) -> list[dict[str, Any]]:
    """The trash entries of a session."""
    from claude_janitor.cache.ids import same_id
    from claude_janitor.removal import trash

    return [e.to_dict() for e in trash.entries(trash.trash_dir(env.dirs)) if same_id(e.session_id, sid)]


COMMANDS = [doctor, show]
