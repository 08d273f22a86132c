"""`janitor archive list`, `restore` and `undo`: sessions back from the archives or the trash."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from claude_janitor.cli.common import (
    archive_dir,
    audit_env,
    config_option,
    echo_json,
    fail,
    handle_errors,
    wait_option,
)
from claude_janitor.errors import ExitStatus

if TYPE_CHECKING:
    from claude_janitor.archive.reader import ArchiveInfo
    from claude_janitor.archive.restore import RestoreResult
    from claude_janitor.audit.log import AuditLog
    from claude_janitor.config.paths import JanitorDirs
    from claude_janitor.removal.trash import Entry


@click.group("archive")
def archive_group() -> None:
    """Session archives (made by `action = "archive"`): list and check them.

    Each archive holds one whole session with a manifest of every file's sha256; bring one back with
    `janitor restore SESSION_ID`.
    """


@archive_group.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the archives as JSON.")
@click.option(
    "--verify",
    "full",
    is_flag=True,
    help="Read every archive in full and check it against its manifest (exit 1 if any fails).",
)
@handle_errors
def archive_list(config_path: str | None, as_json: bool, full: bool) -> None:
    """List the archives, oldest first: when, which session, original and stored size, project."""
    from claude_janitor.archive.maintenance import list_archives
    from claude_janitor.render.archives import render_list

    adir = archive_dir(config_path)
    archives = list_archives(adir, full=full)
    if as_json:
        echo_json({"archive_dir": str(adir), "archives": [a.to_dict() for a in archives]})
    else:
        click.echo(render_list(archives, adir, verified=full))
    sys.exit(ExitStatus.ACTIONS_FAILED if any(a.error for a in archives) else ExitStatus.OK)


@click.command()
@click.argument("session_id")
@click.option(
    "--project",
    metavar="PATH",
    help="The session's project (its path, or its encoded dir name under projects/), when the same "
    "id was archived from more than one place.",
)
@click.option(
    "--archive",
    "archive_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Restore from this archive file (default: the newest archive of the session).",
)
@click.option(
    "--claude-dir",
    "claude_dir",
    metavar="DIR",
    help="Restore into this Claude config dir (default: $CLAUDE_CONFIG_DIR, else ~/.claude, as for "
    "every command; the dir named inside the archive is shown, never obeyed).",
)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--pin/--no-pin",
    default=False,
    show_default=True,
    help="Also pin the restored session, so no sweep takes it again until `janitor unpin`. Without "
    "it, the session gets a fresh window from the restore time.",
)
@wait_option("a running sweep")
@handle_errors
def restore(
    session_id: str,
    project: str | None,
    archive_file: str | None,
    claude_dir: str | None,
    config_path: str | None,
    as_json: bool,
    pin: bool,
    wait: float,
) -> None:
    """Put an archived session back where it was, so `claude --resume` finds it again.

    Every piece returns to its original path with its original modes; its files carry the time of the
    restore (the original times stay in the archive's manifest), so neither Claude Code's own cleanup nor
    the next sweep takes it again before a fresh window has passed. The archive is verified in full first
    and treated as untrusted: absolute paths, `..`, links and anything outside the session's own places
    are refused. A live file in the way is never overwritten. The archive is kept.
    """
    from claude_janitor.config.paths import janitor_dirs

    dirs = janitor_dirs()
    target = _target(claude_dir)
    res = _restore_archive(session_id, project, archive_file, target, dirs, config_path, wait, as_json)
    if res.header_root:
        click.echo(
            f"janitor: note: the archive says it came from {res.header_root}; restored into {res.root} "
            "(the Claude dir this command resolves: --claude-dir, else $CLAUDE_CONFIG_DIR, else "
            "~/.claude), not into the one the archive names",
            err=True,
        )
    pinned = pin and _pin(dirs, session_id)
    hist_failed = res.history is not None and res.history.result.startswith("failed")
    if as_json:
        echo_json(_restored_dict(session_id, res, pinned))
    else:
        _render_restored(session_id, res, pinned, hist_failed)
    sys.exit(ExitStatus.ACTIONS_FAILED if hist_failed else ExitStatus.OK)


def _target(claude_dir: str | None) -> Path:
    from claude_janitor.config.paths import claude_dirs as find_dirs

    return find_dirs((claude_dir,) if claude_dir else ())[0]


def _pick(
    session_id: str, project: str | None, archive_file: str | None, dirs: JanitorDirs, config_path: str | None
) -> ArchiveInfo | Entry:
    """What to restore from: the archive named, else the newest of the session's archive and trash entry."""
    from claude_janitor.archive import maintenance, reader
    from claude_janitor.cache.ids import same_id
    from claude_janitor.errors import JanitorError
    from claude_janitor.removal import trash

    if archive_file:
        info = reader.read_header(Path(archive_file))
        if not same_id(info.session_id, session_id):
            fail(f"{archive_file} holds session {info.session_id}, not {session_id}")
        return info
    entry = trash.find(trash.trash_dir(dirs), session_id, project)
    try:
        found: ArchiveInfo | None = maintenance.find_archive(archive_dir(config_path), session_id, project=project)
    except JanitorError:
        if entry is None:
            raise
        found = None
    if entry is not None and (found is None or entry.removed_at >= (found.header.get("archived_at") or 0)):
        return entry
    assert found is not None
    return found


def _restore_archive(
    session_id: str,
    project: str | None,
    archive_file: str | None,
    target: Path,
    dirs: JanitorDirs,
    config_path: str | None,
    wait: float,
    as_json: bool,
) -> RestoreResult:
    """Restore from the archive (or, when it is the newer, exit after restoring from the trash)."""
    from claude_janitor.archive import format as arcfmt
    from claude_janitor.archive import restore as arcrestore
    from claude_janitor.fs.locks import SweepLock
    from claude_janitor.fs.tree import Changed, Unsafe
    from claude_janitor.removal.trash import Entry
    from claude_janitor.sweep.execute import audit_log

    info = None
    try:
        got = _pick(session_id, project, archive_file, dirs, config_path)
        if isinstance(got, Entry):
            sys.exit(_restore_trash(got, target, dirs, config_path, wait, as_json))
        info = got
        with SweepLock(dirs.lock_file, wait=wait):
            return arcrestore.restore(info, target_root=target, audit=audit_log(audit_env(dirs, config_path)))
    except arcfmt.ArchiveInvalid as e:
        _failed(f"archive {info.path if info else archive_file} is not usable: {e}")
    except (Unsafe, Changed) as e:
        _failed(f"refused: {e}")
    except OSError as e:
        _failed(f"restore failed: {e.strerror or e}{f' ({e.filename})' if e.filename else ''}")


def _failed(message: str) -> NoReturn:
    fail(f"{message}; nothing was restored", ExitStatus.ACTIONS_FAILED)


def _pin(dirs: JanitorDirs, session_id: str) -> bool:
    from claude_janitor.cache import pins
    from claude_janitor.errors import ConfigError

    try:
        pins.update(dirs.pins_file, add=[session_id])
    except ConfigError:
        return False  # not a UUID-shaped id: cannot be pinned; the note after the restore says what happens
    return True


def _restored_dict(session_id: str, res: RestoreResult, pinned: bool) -> dict[str, Any]:
    from claude_janitor.timefmt import iso

    h = res.header
    return {
        "session_id": session_id,
        "archive": str(res.archive),
        "root": res.root,
        "project_path": h.get("project_path"),
        "restored": res.restored,
        "already_present": res.already,
        "files": res.files,
        "bytes": res.bytes,
        "pinned": pinned,
        "archive_names_root": res.header_root,
        "history": res.history.to_dict() if res.history is not None else None,
        "original_last_activity": iso(h.get("last_activity")),
        "archived_at": iso(h.get("archived_at")),
    }


def _render_restored(session_id: str, res: RestoreResult, pinned: bool, hist_failed: bool) -> None:
    from claude_janitor.timefmt import iso

    h = res.header
    where = h.get("project_path") or h.get("project") or "(no project)"
    if res.history is not None and res.history.result != "nothing to do":
        hr = res.history
        click.echo(
            f"prompt history: {hr.added} lines put back into {res.root}/history.jsonl"
            if hr.result == "ok"
            else f"prompt history: {hr.result}",
            err=hist_failed,
        )
    if not res.restored:
        click.echo(
            f"session {session_id} is already in place in {res.root} (identical to {res.archive}); nothing to do"
        )
        return
    click.echo(f"restored session {session_id} ({where}) from {res.archive}")
    click.echo(f"  into {res.root}: {len(res.restored)} pieces, {res.files} files, {res.bytes} bytes")
    for rel in res.already:
        click.echo(f"  already in place, left as it was: {rel}")
    if h.get("project_path"):
        click.echo(f"resume it with: cd {h['project_path']!r} && claude --resume {session_id}")
    click.echo(
        f"  its files carry the restore time; the original times (last active "
        f"{iso(h.get('last_activity')) or 'unknown'}) stay in the archive's manifest"
    )
    if pinned:
        click.echo(
            f"pinned {session_id}: no sweep will take it again until `janitor unpin {session_id}`; "
            "Claude Code's own cleanup still deletes it once it has been idle for its window."
        )
    else:
        click.echo(
            "it counts as active now: Claude Code's cleanup and the janitor give it a fresh window; "
            "if it expires again unchanged, the janitor re-uses this archive."
        )


def _restore_trash(
    entry: Entry, target: Path, dirs: JanitorDirs, config_path: str | None, wait: float, as_json: bool
) -> ExitStatus:
    """Put one session back from the trash (trash.restore); the exit status."""
    from claude_janitor.fs.locks import SweepLock
    from claude_janitor.removal import trash
    from claude_janitor.sweep.execute import audit_log

    with SweepLock(dirs.lock_file, wait=wait):
        res = trash.restore(entry, target, audit=audit_log(audit_env(dirs, config_path)))
    if as_json:
        echo_json(
            {
                "session_id": entry.session_id,
                "trash": str(entry.path),
                "root": res.root,
                "project_path": entry.project_path,
                "restored": res.restored,
                "refused": res.refused,
            }
        )
    else:
        where = entry.project_path or entry.project or "(no project)"
        click.echo(f"restored session {entry.session_id} ({where}) from the trash {entry.path}")
        click.echo(f"  into {res.root}: {len(res.restored)} pieces, with the restore time")
        for r in res.refused:
            click.echo(f"  not restored: {r}")
        if entry.project_path and not res.refused:
            click.echo(f"resume it with: cd {entry.project_path!r} && claude --resume {entry.session_id}")
    return ExitStatus.ACTIONS_FAILED if res.refused else ExitStatus.OK


@click.command()
@click.option(
    "--claude-dir",
    "claude_dir",
    metavar="DIR",
    help="Restore into this Claude config dir (default: $CLAUDE_CONFIG_DIR, else ~/.claude).",
)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@wait_option("a running sweep")
@handle_errors
def undo(claude_dir: str | None, config_path: str | None, as_json: bool, wait: float) -> None:
    """Put back everything the last sweep removed: from the trash, or from its archives.

    Same safety as `janitor restore`: nothing is overwritten, and everything goes into the Claude dir this
    command resolves. Sessions deleted with the trash off (or already purged from it) cannot come back."""
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.fs.locks import SweepLock
    from claude_janitor.removal import trash
    from claude_janitor.sweep.execute import audit_log
    from claude_janitor.timefmt import iso

    dirs = janitor_dirs()
    target = _target(claude_dir)
    last = trash.last_sweep(dirs)
    if not last:
        fail("no sweep has removed anything yet; nothing to undo", ExitStatus.USAGE)
    audit = audit_log(audit_env(dirs, config_path))
    with SweepLock(dirs.lock_file, wait=wait):
        out = [
            _undo_one(item, dirs, target, audit)
            for item in last["removed"]
            if isinstance(item, dict) and isinstance(item.get("session_id"), str)
        ]
    at = iso(last.get("at"))
    if as_json:
        echo_json({"sweep_at": at, "sessions": out})
    else:
        click.echo(f"undoing the sweep of {at or '?'} ({len(out)} sessions):")
        for r in out:
            click.echo(f"  {r['session_id']}: {r['result']}: {r['detail']}")
    sys.exit(ExitStatus.ACTIONS_FAILED if any(r["result"] == "failed" for r in out) else ExitStatus.OK)


def _undo_one(item: dict[str, Any], dirs: JanitorDirs, target: Path, audit: AuditLog) -> dict[str, Any]:
    """Put one removed session of the last sweep back; its row (result and detail)."""
    from claude_janitor.archive import reader
    from claude_janitor.archive import restore as arcrestore
    from claude_janitor.errors import JanitorError
    from claude_janitor.removal import trash

    row: dict[str, Any] = {"session_id": item["session_id"], "project": item.get("project")}
    try:
        if item.get("trash"):
            e = next((e for e in trash.entries(trash.trash_dir(dirs)) if str(e.path) == item["trash"]), None)
            if e is None:
                row.update(
                    result="gone", detail=f"no longer in the trash ({item['trash']}): purged or restored already"
                )
            else:
                res = trash.restore(e, target, audit=audit)
                row.update(
                    result="failed" if res.refused else "restored",
                    detail="; ".join(res.refused) or f"from the trash, {len(res.restored)} pieces",
                )
        elif item.get("archive"):
            info = reader.read_header(Path(item["archive"]))
            got = arcrestore.restore(info, target_root=target, audit=audit)
            row.update(result="restored" if got.restored else "already in place", detail=f"from {item['archive']}")
        else:
            row.update(result="gone", detail="deleted for good (the trash was off)")
    except (JanitorError, OSError) as e:  # one session's failure is reported, the rest go on
        row.update(result="failed", detail=str(e))
    return row


COMMANDS = [archive_group, restore, undo]
