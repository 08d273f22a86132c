"""The `janitor` command line: parse, call the core, render. Core modules are imported lazily so that
`janitor --help` starts fast."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 3


def fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"janitor: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map JanitorError to one clear line and its exit code; a traceback only with --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from claude_janitor.model import JanitorError

        try:
            return fn(*args, **kwargs)
        except JanitorError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as e:  # noqa: BLE001 - last line of defence: one line, not a traceback
            ctx = click.get_current_context(silent=True)
            if ctx is not None and ctx.find_root().params.get("debug"):
                raise
            fail(f"unexpected {type(e).__name__}: {e} (re-run with --debug for a traceback)", EXIT_PARTIAL)

    return wrapper


def cache_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--claude-dir and --config, shared by every command that reads the cache."""
    fn = click.option("--config", "config_path", metavar="FILE", type=click.Path(dir_okay=False),
                      help="Janitor config (TOML). Default: config.toml in the user config dir "
                           "(see `janitor doctor`).")(fn)
    fn = click.option("--claude-dir", "claude_dirs", multiple=True, metavar="DIR",
                      help="Claude Code config dir to sweep (repeatable). Default: $CLAUDE_CONFIG_DIR, "
                           "else ~/.claude.")(fn)
    return fn


def make_env(claude_dirs: tuple[str, ...], config_path: str | None, **kw: Any) -> Any:
    import os

    from claude_janitor.config.paths import claude_dirs as find_dirs
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.sweep.run import Env

    default_root = not claude_dirs and not os.environ.get("CLAUDE_CONFIG_DIR")
    return Env(roots=find_dirs(claude_dirs), dirs=janitor_dirs(), config_path=config_path,
               default_root=default_root, **kw)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.version_option(package_name="claude-janitor", prog_name="janitor")
def cli(debug: bool) -> None:
    """Retention and cache janitor for Claude Code transcripts.

    Finds every session under ~/.claude (or $CLAUDE_CONFIG_DIR), decides from the retention policy
    which have expired, and deletes or archives them, recording every action in a tamper-evident
    audit log. `janitor report` shows what a sweep would do without changing anything.

    Exit codes: 0 ok, 1 some actions failed, 2 usage or config error, 3 another sweep is running.
    """


def _now(now: float | None) -> float:
    import time

    return time.time() if now is None else now


now_option = click.option("--now", "now", type=float, hidden=True,
                          help="Pretend the time is this Unix timestamp (testing).")
no_titles_option = click.option("--no-titles", "no_titles", is_flag=True,
                                help="Leave out session titles (transcript text), e.g. for a screenshot.")


@cli.command()
@cache_options
@click.option("--dry-run", is_flag=True, help="Decide and check everything, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--older-than", metavar="DURATION",
              help='Expire sessions inactive longer than this for this run ("7d", "12h"); '
                   "project rules with their own retention still apply.")
@click.option("--action", type=click.Choice(["delete", "archive"]), help="Override the action for this run.")
@click.option("--force", is_flag=True, help="Proceed even if the mass-removal guard trips.")
@click.option("--wait", type=float, default=0.0, metavar="SECONDS",
              help="Wait up to this long for another running sweep to finish (default: exit 3 at once).")
@no_titles_option
@now_option
@handle_errors
def sweep(claude_dirs: tuple[str, ...], config_path: str | None, dry_run: bool, as_json: bool,
          older_than: str | None, action: str | None, force: bool, wait: float, no_titles: bool,
          now: float | None) -> None:
    """Delete or archive expired sessions now (one-shot).

    Sessions that are active (within `grace`), pinned, unreadable or changed since the scan are kept.
    """
    from claude_janitor.fs.locks import SweepLocks
    from claude_janitor.render import report
    from claude_janitor.sweep.run import run

    def running_pid(dirs: Any) -> int | None:  # this state dir's daemon (its sweeps wait for our state lock)
        from claude_janitor.daemon.main import running_pid as pid

        return pid(dirs)

    from claude_janitor.model import JanitorError, LockBusy

    env = make_env(claude_dirs, config_path, older_than=older_than, action=action, force=force)
    stop = _stop_on_signals()
    started = _time()
    try:
        with _progress(not as_json) as phase:
            if dry_run:
                res = run(env, _now(now), dry_run=True, should_stop=stop.is_set, phase=phase)
            else:
                with SweepLocks(env.dirs.lock_file, env.roots, wait=wait,  # also each Claude dir's own
                                daemon_pid=lambda: running_pid(env.dirs)):
                    res = run(env, _now(now), dry_run=False, should_stop=stop.is_set,
                              phase=phase, acting=stop.start_acting)
    except JanitorError as e:
        if not dry_run and not isinstance(e, LockBusy):  # busy: the other sweep writes the metrics
            _write_metrics(env, None, started, error=e)
        raise
    except _Stopped as e:
        click.echo(f"janitor: stopped by {e.signame} before acting; nothing was changed", err=True)
        sys.exit(128 + e.signum)
    if not dry_run:
        _write_metrics(env, res, started)
    if as_json:
        click.echo(report.to_json(res, all_sessions=False, titles=not no_titles))
    else:
        click.echo("\n".join(report.summary_lines(res)))
    if stop.is_set():
        click.echo(f"janitor: stopped by {stop.signame} between sessions; nothing is half done", err=True)
        sys.exit(128 + stop.signum)
    sys.exit(res.exit_code)


def _time() -> float:
    import time

    return time.time()


def _write_metrics(env: Any, res: Any, started: float, *, error: Exception | None = None) -> None:
    """metrics_file after a sweep that ran, or that failed (then the last success time is carried over)."""
    from claude_janitor.config.janitor import load_policy
    from claude_janitor.model import GuardTripped, JanitorError
    from claude_janitor.render import metrics

    try:
        pol = res.policy if res is not None else load_policy(env.config_path, older_than=env.older_than,
                                                              action=env.action)
    except JanitorError:
        return  # a broken config names no metrics file
    if not pol.metrics_file:
        return
    if res is not None:
        sample = metrics.from_run(res.plan, res.outcomes, started=started, finished=_time(), guard=None,
                                  error="some actions failed" if res.exit_code else None)
        t = _trash_usage(env)
        sample.trash_bytes = t[2] if t else None
    else:
        guard = str(error) if isinstance(error, GuardTripped) else None
        sample = metrics.from_run(None, [], started=started, finished=_time(), guard=guard,
                                  error=None if guard else str(error))
    why = metrics.write(pol.metrics_file, sample)
    if why:
        click.echo(f"janitor: warning: {why}", err=True)


class _Stopped(BaseException):
    """A signal arrived while the sweep was still only reading (scan, settings, plan): stop at once."""

    def __init__(self, signum: int, signame: str) -> None:
        super().__init__(signame)
        self.signum, self.signame = signum, signame


class _Stop:
    def __init__(self) -> None:
        self.signum = 0
        self.signame = ""
        self.acting = False

    def is_set(self) -> bool:
        return bool(self.signum)

    def start_acting(self) -> None:
        self.acting = True


def _stop_on_signals() -> _Stop:
    """SIGTERM/SIGINT: before the sweep changes anything (reading settings, scanning, planning — however
    long that takes, whatever it waits on) they stop it at once; once it acts, they stop it after the
    session in hand (no half-done session)."""
    import signal

    stop = _Stop()

    def handler(signum: int, _frame: object) -> None:
        stop.signum, stop.signame = signum, signal.Signals(signum).name
        if not stop.acting:
            raise _Stopped(signum, stop.signame)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@cli.command()
@cache_options
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table",
              show_default=True, help="Output format (markdown: for pasting into an issue or chat).")
@click.option("--older-than", metavar="DURATION", help="Report as if the default window were this.")
@click.option("--action", type=click.Choice(["delete", "archive"]), help="Report as if this were the action.")
@click.option("--summary", is_flag=True, help="Only the per-project overview, not every session.")
@click.option("--stores", is_flag=True, help="Disk usage per store instead (same as `janitor du`).")
@no_titles_option
@now_option
@handle_errors
def report(claude_dirs: tuple[str, ...], config_path: str | None, fmt: str, older_than: str | None,
           action: str | None, summary: bool, stores: bool, no_titles: bool, now: float | None) -> None:
    """Show what a sweep would do, session by session, changing nothing.

    Projects come first with their sessions, size and the bytes a sweep would reclaim; then every
    session with its decision, the reason or rule behind it, last activity, age and size.
    """
    from claude_janitor.render import report as rep
    from claude_janitor.sweep.run import run

    env = make_env(claude_dirs, config_path, older_than=older_than, action=action)
    with _progress(fmt != "json") as phase:
        res = run(env, _now(now), dry_run=True, phase=phase)
        usage = _store_usage(env, res, phase) if stores else None
    if usage is not None:
        click.echo(rep.stores_render(usage, res, fmt, _trash_usage(env)))
        return
    if fmt == "json":
        click.echo(rep.to_json(res, titles=not no_titles))
    else:
        click.echo(rep.to_markdown(res, sessions=not summary, titles=not no_titles) if fmt == "markdown" else
                   rep.to_table(res, sessions=not summary, color=_color(), titles=not no_titles))


def _color() -> bool:
    import os

    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _store_usage(env: Any, res: Any, phase: Any) -> list[tuple[str, list[Any]]]:
    """(root, usage per store) for every Claude dir of the run, with the plan's reclaimable bytes."""
    import os

    from claude_janitor.cache.usage import usage

    count = phase("measuring", None, "entries") if phase else None
    return [(str(r), usage(str(r), res.plan, count)) for r in env.roots if os.path.isdir(r)]


@cli.command()
@cache_options
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table",
              show_default=True, help="Output format.")
@click.option("--older-than", metavar="DURATION", help="Count as reclaimable what this window would expire.")
@now_option
@handle_errors
def du(claude_dirs: tuple[str, ...], config_path: str | None, fmt: str, older_than: str | None,
       now: float | None) -> None:
    """Disk usage per store (projects/, debug/, file-history/, shell-snapshots/ …), biggest first.

    For each store: files, size, space on disk, oldest and newest file, and how much a sweep with
    the current policy would reclaim from it. Changes nothing.
    """
    from claude_janitor.render import report as rep
    from claude_janitor.sweep.run import run

    env = make_env(claude_dirs, config_path, older_than=older_than)
    with _progress(fmt != "json") as phase:
        res = run(env, _now(now), dry_run=True, phase=phase)
        usage = _store_usage(env, res, phase)
    click.echo(rep.stores_render(usage, res, fmt, _trash_usage(env)))


def _trash_usage(env: Any) -> tuple[str, int, int] | None:
    from claude_janitor.removal import trash

    tdir = trash.trash_dir(env.dirs)
    if not tdir.is_dir():
        return None
    n, b = trash.usage(tdir)
    return str(tdir), n, b


@cli.command()
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
    import json

    from claude_janitor.config.paths import claude_dirs as find_dirs
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.render.doctor import collect, render

    rep = collect(find_dirs(claude_dirs), config_path, janitor_dirs(), _now(now))
    click.echo(json.dumps(rep, indent=2, ensure_ascii=True) if as_json else render(rep))
    sys.exit(EXIT_USAGE if rep["problems"] or rep["settings_problems"] else EXIT_OK)


@cli.command()
@click.argument("session_id")
@cache_options
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@no_titles_option
@now_option
@handle_errors
def show(session_id: str, claude_dirs: tuple[str, ...], config_path: str | None, as_json: bool, no_titles: bool,
         now: float | None) -> None:
    """One session, everything the janitor knows: title, kind, project, pieces with sizes and times, the
    decision and the whole reasoning behind it (which rule, which window from which file), pins, archives.

    Changes nothing. Exit 2 for a malformed id or one found nowhere."""
    from claude_janitor.archive.maintenance import list_archives
    from claude_janitor.cache.ids import same_id
    from claude_janitor.cache.pins import check_id
    from claude_janitor.render import show as sh
    from claude_janitor.sweep.run import build_plan

    sid = check_id(session_id)
    env = make_env(claude_dirs, config_path)
    when = _now(now)
    plan, pol, _ = build_plan(env, when)
    found = sh.find(plan, pol, sid)
    archives = []
    try:
        archives = [a.to_dict() for a in list_archives(_archive_dir(config_path))]
    except OSError:
        pass
    archives = [a for a in archives if a.get("session_id") and same_id(a["session_id"], sid)]
    trash = _trash_of(env, pol, sid)
    if not found and not archives and not trash:
        fail(f"no session {sid} under {', '.join(map(str, env.roots)) or '(no Claude dir)'}, in the archives or "
             "in the trash (see `janitor report`)")
    for x in found:
        p = x.decision.session.project
        x.archives = [a for a in archives if not p or a.get("project") in (p, None)]
        x.trash = [t for t in trash if not p or t.get("project") in (p, None)]
    if not found:
        click.echo(f"session {sid} is not in the cache"
                   + ("; archived: " + ", ".join(a["path"] for a in archives) if archives else "")
                   + ("; in the trash: " + ", ".join(t["path"] for t in trash) if trash else ""))
        if as_json:
            click.echo(json.dumps({"now": None, "sessions": [], "archives": archives, "trash": trash}, indent=2,
                                  ensure_ascii=True))
        return
    click.echo(sh.to_json(found, when, not no_titles) if as_json else sh.render(found, when, not no_titles), nl=False)


def _trash_of(env: Any, pol: Any, sid: str) -> list[dict[str, Any]]:
    """The trash entries of a session."""
    from claude_janitor.cache.ids import same_id
    from claude_janitor.removal import trash

    return [e.to_dict() for e in trash.entries(trash.trash_dir(env.dirs)) if same_id(e.session_id, sid)]


@cli.command()
@click.argument("session_ids", nargs=-1, metavar="[SESSION_ID]...")
@click.option("--claude-dir", "claude_dirs", multiple=True, metavar="DIR",
              help="Claude Code config dir to look the session up in (repeatable).")
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


@cli.command()
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


class _progress:  # noqa: N801 - used as a context manager: `with _progress(enabled) as phase`
    """The progress line for long runs (stderr, TTY only, never with JSON). Yields the run's phase hook."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from claude_janitor.render.progress import Progress

            self.bar = Progress()

    def __enter__(self) -> Any:
        return self.bar.phase if self.bar else None

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.close()


@cli.group()
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
    from pathlib import Path

    from claude_janitor.audit.verify import verify
    from claude_janitor.config.paths import janitor_dirs

    dirs = janitor_dirs()
    ok, msg, _ = verify(Path(file), anchor=dirs.audit_anchor) if file else \
        verify(dirs.audit_log, anchor=dirs.audit_anchor)
    click.echo(msg, err=not ok)
    sys.exit(0 if ok else 1)


# ---- archives --------------------------------------------------------------------------------------

def _archive_dir(config_path: str | None) -> Any:
    from claude_janitor.config.janitor import load_policy
    from claude_janitor.config.paths import archive_dir_for, janitor_dirs

    return archive_dir_for(load_policy(config_path), janitor_dirs())


config_option = click.option("--config", "config_path", metavar="FILE", type=click.Path(dir_okay=False),
                             help="Janitor config (TOML), for archive_dir. Default: config.toml in the user "
                                  "config dir.")


@cli.group("archive")
def archive_group() -> None:
    """Session archives (made by `action = "archive"`): list and check them.

    Each archive holds one whole session with a manifest of every file's sha256; bring one back with
    `janitor restore SESSION_ID`.
    """


@archive_group.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the archives as JSON.")
@click.option("--verify", "full", is_flag=True,
              help="Read every archive in full and check it against its manifest (exit 1 if any fails).")
@handle_errors
def archive_list(config_path: str | None, as_json: bool, full: bool) -> None:
    """List the archives, oldest first: when, which session, original and stored size, project."""
    import json

    from claude_janitor.archive.maintenance import list_archives
    from claude_janitor.render.archives import render_list

    adir = _archive_dir(config_path)
    archives = list_archives(adir, full=full)
    if as_json:
        click.echo(json.dumps({"archive_dir": str(adir), "archives": [a.to_dict() for a in archives]},
                              indent=2, ensure_ascii=True))
    else:
        click.echo(render_list(archives, adir, verified=full))
    sys.exit(EXIT_PARTIAL if any(a.error for a in archives) else EXIT_OK)


@cli.command()
@click.argument("session_id")
@click.option("--project", metavar="PATH",
              help="The session's project (its path, or its encoded dir name under projects/), when the same "
                   "id was archived from more than one place.")
@click.option("--archive", "archive_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Restore from this archive file (default: the newest archive of the session).")
@click.option("--claude-dir", "claude_dir", metavar="DIR",
              help="Restore into this Claude config dir (default: $CLAUDE_CONFIG_DIR, else ~/.claude, as for "
                   "every command; the dir named inside the archive is shown, never obeyed).")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--pin/--no-pin", default=False, show_default=True,
              help="Also pin the restored session, so no sweep takes it again until `janitor unpin`. Without "
                   "it, the session gets a fresh window from the restore time.")
@click.option("--wait", type=float, default=0.0, metavar="SECONDS",
              help="Wait up to this long for a running sweep to finish (default: exit 3 at once).")
@handle_errors
def restore(session_id: str, project: str | None, archive_file: str | None, claude_dir: str | None,
            config_path: str | None, as_json: bool, pin: bool, wait: float) -> None:
    """Put an archived session back where it was, so `claude --resume` finds it again.

    Every piece returns to its original path with its original modes; its files carry the time of the
    restore (the original times stay in the archive's manifest), so neither Claude Code's own cleanup nor
    the next sweep takes it again before a fresh window has passed. The archive is verified in full first
    and treated as untrusted: absolute paths, `..`, links and anything outside the session's own places
    are refused. A live file in the way is never overwritten. The archive is kept.
    """
    import json
    from pathlib import Path

    from claude_janitor.archive.format import ArchiveInvalid, iso
    from claude_janitor.archive.maintenance import find_archive
    from claude_janitor.archive.reader import read_header
    from claude_janitor.archive.restore import restore as restore_archive
    from claude_janitor.cache.ids import same_id
    from claude_janitor.config.paths import claude_dirs as find_dirs
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.fs.locks import SweepLock
    from claude_janitor.fs.tree import Changed, Unsafe
    from claude_janitor.sweep.run import Env, audit_log

    dirs = janitor_dirs()
    target = find_dirs((claude_dir,) if claude_dir else ())[0]
    info = None
    try:
        if archive_file:
            info = read_header(Path(archive_file))
            if not same_id(info.session_id, session_id):
                fail(f"{archive_file} holds session {info.session_id}, not {session_id}")
        else:
            from claude_janitor.model import JanitorError
            from claude_janitor.removal import trash

            entry = trash.find(trash.trash_dir(dirs), session_id, project)
            try:
                info = find_archive(_archive_dir(config_path), session_id, project=project)
            except JanitorError:
                if entry is None:
                    raise
                info = None
            if entry is not None and (info is None or entry.removed_at >= (info.header.get("archived_at") or 0)):
                sys.exit(_restore_trash(entry, target, dirs, config_path, wait, as_json))
            assert info is not None
        with SweepLock(dirs.lock_file, wait=wait):
            res = restore_archive(info, target_root=target,
                              audit=audit_log(Env(roots=[], dirs=dirs, config_path=config_path)))
    except ArchiveInvalid as e:
        fail(f"archive {info.path if info else archive_file} is not usable: {e}; nothing was restored",
             EXIT_PARTIAL)
    except (Unsafe, Changed) as e:
        fail(f"refused: {e}; nothing was restored", EXIT_PARTIAL)
    except OSError as e:
        fail(f"restore failed: {e.strerror or e}{f' ({e.filename})' if e.filename else ''}; "
             "nothing was restored", EXIT_PARTIAL)
    h = res.header
    if res.header_root:
        click.echo(f"janitor: note: the archive says it came from {res.header_root}; restored into {res.root} "
                   "(the Claude dir this command resolves: --claude-dir, else $CLAUDE_CONFIG_DIR, else "
                   "~/.claude), not into the one the archive names", err=True)
    pinned = False
    if pin:
        from claude_janitor.cache import pins
        from claude_janitor.model import ConfigError

        try:
            pins.update(dirs.pins_file, add=[session_id])
            pinned = True
        except ConfigError:
            pass  # not a UUID-shaped id: cannot be pinned; the note below says what happens
    hist_failed = res.history is not None and res.history.result.startswith("failed")
    if as_json:
        click.echo(json.dumps({"session_id": session_id, "archive": str(res.archive), "root": res.root,
                               "project_path": h.get("project_path"), "restored": res.restored,
                               "already_present": res.already, "files": res.files, "bytes": res.bytes,
                               "pinned": pinned, "archive_names_root": res.header_root,
                               "history": res.history.to_dict() if res.history is not None else None,
                               "original_last_activity": iso(h.get("last_activity")),
                               "archived_at": iso(h.get("archived_at"))},
                              indent=2, ensure_ascii=True))
        sys.exit(EXIT_PARTIAL if hist_failed else EXIT_OK)
    where = h.get("project_path") or h.get("project") or "(no project)"
    if res.history is not None and res.history.result != "nothing to do":
        hr = res.history
        click.echo(f"prompt history: {hr.added} lines put back into {res.root}/history.jsonl" if hr.result == "ok"
                   else f"prompt history: {hr.result}", err=hist_failed)
    if not res.restored:
        click.echo(f"session {session_id} is already in place in {res.root} (identical to {res.archive}); "
                   "nothing to do")
        sys.exit(EXIT_PARTIAL if hist_failed else EXIT_OK)
    click.echo(f"restored session {session_id} ({where}) from {res.archive}")
    click.echo(f"  into {res.root}: {len(res.restored)} pieces, {res.files} files, {res.bytes} bytes")
    for rel in res.already:
        click.echo(f"  already in place, left as it was: {rel}")
    if h.get("project_path"):
        click.echo(f"resume it with: cd {h['project_path']!r} && claude --resume {session_id}")
    click.echo(f"  its files carry the restore time; the original times (last active "
               f"{iso(h.get('last_activity')) or 'unknown'}) stay in the archive's manifest")
    if pinned:
        click.echo(f"pinned {session_id}: no sweep will take it again until `janitor unpin {session_id}`; "
                   "Claude Code's own cleanup still deletes it once it has been idle for its window.")
    else:
        click.echo("it counts as active now: Claude Code's cleanup and the janitor give it a fresh window; "
                   "if it expires again unchanged, the janitor re-uses this archive.")
    sys.exit(EXIT_PARTIAL if hist_failed else EXIT_OK)


def _restore_trash(entry: Any, target: Any, dirs: Any, config_path: str | None, wait: float, as_json: bool) -> int:
    """Put one session back from the trash (trash.restore); the exit code."""
    from claude_janitor.fs.locks import SweepLock
    from claude_janitor.removal import trash
    from claude_janitor.sweep.run import Env, audit_log

    with SweepLock(dirs.lock_file, wait=wait):
        res = trash.restore(entry, target, audit=audit_log(Env(roots=[], dirs=dirs, config_path=config_path)))
    if as_json:
        click.echo(json.dumps({"session_id": entry.session_id, "trash": str(entry.path), "root": res.root,
                               "project_path": entry.project_path, "restored": res.restored,
                               "refused": res.refused}, indent=2, ensure_ascii=True))
    else:
        where = entry.project_path or entry.project or "(no project)"
        click.echo(f"restored session {entry.session_id} ({where}) from the trash {entry.path}")
        click.echo(f"  into {res.root}: {len(res.restored)} pieces, with the restore time")
        for r in res.refused:
            click.echo(f"  not restored: {r}")
        if entry.project_path and not res.refused:
            click.echo(f"resume it with: cd {entry.project_path!r} && claude --resume {entry.session_id}")
    return EXIT_PARTIAL if res.refused else EXIT_OK


@cli.command()
@click.option("--claude-dir", "claude_dir", metavar="DIR",
              help="Restore into this Claude config dir (default: $CLAUDE_CONFIG_DIR, else ~/.claude).")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--wait", type=float, default=0.0, metavar="SECONDS",
              help="Wait up to this long for a running sweep to finish (default: exit 3 at once).")
@handle_errors
def undo(claude_dir: str | None, config_path: str | None, as_json: bool, wait: float) -> None:
    """Put back everything the last sweep removed: from the trash, or from its archives.

    Same safety as `janitor restore`: nothing is overwritten, and everything goes into the Claude dir this
    command resolves. Sessions deleted with the trash off (or already purged from it) cannot come back."""
    from pathlib import Path

    from claude_janitor.archive.reader import read_header
    from claude_janitor.archive.restore import restore as restore_archive
    from claude_janitor.config.paths import claude_dirs as find_dirs
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.fs.locks import SweepLock
    from claude_janitor.model import JanitorError
    from claude_janitor.removal import trash
    from claude_janitor.sweep.run import Env, audit_log

    dirs = janitor_dirs()
    target = find_dirs((claude_dir,) if claude_dir else ())[0]
    last = trash.last_sweep(dirs)
    if not last:
        fail("no sweep has removed anything yet; nothing to undo", EXIT_USAGE)
    assert last is not None
    out: list[dict[str, Any]] = []
    code = EXIT_OK
    audit = audit_log(Env(roots=[], dirs=dirs, config_path=config_path))
    tdir = trash.trash_dir(dirs)
    with SweepLock(dirs.lock_file, wait=wait):
        for item in last["removed"]:
            if not isinstance(item, dict) or not isinstance(item.get("session_id"), str):
                continue
            sid = item["session_id"]
            row: dict[str, Any] = {"session_id": sid, "project": item.get("project")}
            try:
                if item.get("trash"):
                    e = next((e for e in trash.entries(tdir) if str(e.path) == item["trash"]), None)
                    if e is None:
                        row.update(result="gone", detail=f"no longer in the trash ({item['trash']}): purged or "
                                                         "restored already")
                    else:
                        res = trash.restore(e, target, audit=audit)
                        row.update(result="failed" if res.refused else "restored", detail="; ".join(res.refused)
                                   or f"from the trash, {len(res.restored)} pieces")
                elif item.get("archive"):
                    info = read_header(Path(item["archive"]))
                    res = restore_archive(info, target_root=target, audit=audit)
                    row.update(result="restored" if res.restored else "already in place",
                               detail=f"from {item['archive']}")
                else:
                    row.update(result="gone", detail="deleted for good (the trash was off)")
            except (JanitorError, OSError) as e:  # noqa: PERF203 - one session's failure is reported, the rest go on
                row.update(result="failed", detail=str(e))
            if row["result"] == "failed":
                code = EXIT_PARTIAL
            out.append(row)
    from claude_janitor.render.report import iso

    if as_json:
        click.echo(json.dumps({"sweep_at": iso(last.get("at")) if isinstance(last.get("at"), int | float) else None,
                               "sessions": out}, indent=2, ensure_ascii=True))
    else:
        click.echo(f"undoing the sweep of {iso(last.get('at')) if isinstance(last.get('at'), int | float) else '?'}"
                   f" ({len(out)} sessions):")
        for r in out:
            click.echo(f"  {r['session_id']}: {r['result']}: {r['detail']}")
    sys.exit(code)


# ---- daemon, status, service -------------------------------------------------------------------------

@cli.command()
@cache_options
@click.option("-v", "--verbose", is_flag=True, help="Log every step (debug level).")
@click.option("--log-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Log to this file instead of stderr, rotated at 1 MiB (3 old files kept); for launchd.")
@click.option("--log-max-bytes", type=click.IntRange(min=1024), default=1024 * 1024, hidden=True)
@handle_errors
def daemon(claude_dirs: tuple[str, ...], config_path: str | None, verbose: bool, log_file: str | None,
           log_max_bytes: int) -> None:
    """Run in the foreground, sweeping as sessions expire (for systemd, launchd or a terminal).

    A full sweep runs at start and then every `sweep_interval` (default 1d) or on `sweep_cron`; between
    them the cache is watched, and each session is acted on the moment it expires. SIGTERM/SIGINT stop
    after the session in hand; SIGHUP reloads the config. Exit 3 if a daemon is already running.
    See `janitor service install` to run it as a service.
    """
    from claude_janitor.daemon.main import run

    sys.exit(run(make_env(claude_dirs, config_path), verbose=verbose, log_file=log_file,
                 log_max_bytes=log_max_bytes))


@cli.command("_daemon-full-sweep", hidden=True)
@click.option("--claude-dir", "claude_dirs", multiple=True, required=True)
@click.option("--config", "config_path")
@click.option("--default-root", is_flag=True)
@click.option("--now", type=float, required=True)
@click.option("--parent-pid", type=int, required=True)
@click.option("--lock-fd", "lock_fds", type=int, multiple=True)
@click.option("--audit-from")
@click.option("-v", "--verbose", is_flag=True)
def daemon_full_sweep(claude_dirs: tuple[str, ...], config_path: str | None, default_root: bool, now: float,
                      parent_pid: int, lock_fds: tuple[int, ...], audit_from: str | None, verbose: bool) -> None:
    """Internal: one full sweep of `janitor daemon`, in a process of its own (JSON result on stdout)."""
    from claude_janitor.daemon.main import child_main

    sys.exit(child_main(list(claude_dirs), config_path, default_root, now, parent_pid, list(lock_fds),
                        audit_from, verbose))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@handle_errors
def status(as_json: bool) -> None:
    """Is a daemon running? Its last and next sweep, next expiry wake-up, and the index size.

    Exit 0 if a daemon is running, 3 if not (as `systemctl is-active`)."""
    import json

    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.daemon.main import status as get_status

    st = get_status(janitor_dirs())
    if as_json:
        click.echo(json.dumps(st, indent=2, sort_keys=True))
    else:
        click.echo("\n".join(_status_lines(st)))
    sys.exit(0 if st["running"] else 3)


def _status_lines(st: dict[str, Any]) -> list[str]:
    def when(v: Any) -> str:
        return str(v).replace("T", " ").replace("+00:00", " UTC") if v else "-"

    if st["running"]:
        lines = [f"daemon: running (pid {st.get('pid') or '?'}) since {when(st.get('started'))}"]
    elif st.get("started"):
        lines = [f"daemon: not running (last ran {when(st.get('started'))} to {when(st.get('stopped'))})"]
    else:
        lines = ["daemon: not running (never started; see `janitor daemon` or `janitor service install`)"]
    if st.get("roots"):
        lines.append(f"  watching: {', '.join(st['roots'])}; full sweep {st.get('schedule', '-')}")
    for root, how in (st.get("watching") or {}).items():
        if how != "ok":
            lines.append(f"  not watched: {root}: {how} (full scans only)")
    last = st.get("last_sweep")
    if last:
        counts = ", ".join(f"{k} {last[k]}" for k in ("acted", "failed", "skipped") if last.get(k))
        err = f"; error: {last['error']}" if last.get("error") else ""
        lines.append(f"  last sweep: {when(last.get('finished') or last.get('started'))} ({last.get('kind')}"
                     f"{', ' + counts if counts else ''}){err}")
    if st.get("last_full_sweep"):
        lines.append(f"  last full sweep: {when(st['last_full_sweep'])}")
    refused = st.get("reload_refused")
    if st["running"] and refused:
        lines.append(f"  config reload refused at {when(refused.get('at'))}: {refused.get('error')} "
                     "(running with the previous config)")
    if st["running"]:
        sweeping = st.get("sweeping")
        if sweeping:
            lines.append(f"  sweeping now: {sweeping.get('kind')} sweep since {when(sweeping.get('since'))}")
        lines.append(f"  next sweep: {when(st.get('next_sweep'))}")
        due = " (due: acted on when the sweep in progress ends)" if sweeping and st.get("next_expiry") else ""
        lines.append(f"  next expiry: {when(st.get('next_expiry'))}{due}")
    n = st.get("index_sessions")
    lines.append(f"  index: {'none yet' if n is None else f'{n} sessions'} ({st['index']})")
    return lines


@cli.group()
def service() -> None:
    """Run the daemon (or a daily one-shot sweep) as a systemd user service or a launchd agent."""


def _backend(systemd: bool, launchd: bool) -> str:
    from claude_janitor.service.manager import default_backend

    if systemd and launchd:
        fail("choose one of --systemd and --launchd")
    return "systemd" if systemd else "launchd" if launchd else default_backend()


backend_options = [
    click.option("--systemd", is_flag=True, help="Use a systemd user service (default on Linux)."),
    click.option("--launchd", is_flag=True, help="Use a launchd agent (default on macOS)."),
]


def _with_backend(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(backend_options):
        fn = opt(fn)
    return fn


@service.command("install")
@cache_options
@_with_backend
@click.option("--timer", is_flag=True,
              help="Install a daily one-shot `janitor sweep` on a timer instead of the resident daemon.")
@click.option("--at", "at", metavar="HH:MM", help="With --timer: the time of day to sweep (default 03:30).")
@click.option("--print", "print_only", is_flag=True, help="Print the rendered files; install nothing.")
@handle_errors
def service_install(claude_dirs: tuple[str, ...], config_path: str | None, systemd: bool, launchd: bool,
                    timer: bool, at: str | None, print_only: bool) -> None:
    """Render the unit files (or plist) with this machine's paths, install and start them.

    systemd: ~/.config/systemd/user/, then `systemctl --user daemon-reload` and `enable --now`.
    launchd: ~/Library/LaunchAgents/, then `launchctl bootstrap gui/$UID`. Installing the daemon removes
    the timer variant and vice versa.
    """
    from claude_janitor.config.paths import claude_dirs as find_dirs
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.service import manager as svc

    backend = _backend(systemd, launchd)
    setup = svc.setup_for(find_dirs(claude_dirs), janitor_dirs(), config_path, at=at)
    if print_only:
        rendered: dict[str, Any] = (svc.render_systemd(setup, timer=timer) if backend == "systemd"
                                    else svc.render_launchd(setup, timer=timer))
        for line in svc.private_tmp_warning(setup) if backend == "systemd" else []:
            click.echo(line, err=True)
        where = svc.systemd_unit_dir() if backend == "systemd" else svc.launchd_agent_dir()
        for name, data in rendered.items():
            click.echo(f"# {where / name}", err=True)
            click.echo(data if isinstance(data, str) else data.decode(), nl=False)
        return
    res = svc.install(setup, backend, timer=timer)
    for p in res.removed:
        click.echo(f"removed {p}")
    for p in res.files:
        click.echo(f"wrote {p}")
    click.echo("\n".join(res.lines))


@service.command("uninstall")
@_with_backend
@handle_errors
def service_uninstall(systemd: bool, launchd: bool) -> None:
    """Stop and disable the service (daemon or timer) and remove its files."""
    from claude_janitor.service import manager as svc

    res = svc.uninstall(_backend(systemd, launchd))
    for p in res.removed:
        click.echo(f"removed {p}")
    click.echo("\n".join(res.lines))


@service.command("status")
@_with_backend
@handle_errors
def service_status(systemd: bool, launchd: bool) -> None:
    """Which service files are installed, and whether the service manager has them enabled and running."""
    from claude_janitor.service import manager as svc

    res = svc.service_status(_backend(systemd, launchd))
    click.echo("\n".join(res.lines))


def main() -> None:
    cli(prog_name="janitor")


if __name__ == "__main__":  # pragma: no cover
    main()
