"""`janitor sweep`, `report` and `du`: one run of the plan (real or dry), rendered."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from claude_janitor.cli.common import (
    PhaseFn,
    cache_options,
    color,
    echo_stream,
    handle_errors,
    make_env,
    no_titles_option,
    now_option,
    now_or,
    progress,
    trash_usage,
    wait_option,
)
from claude_janitor.errors import ExitStatus

if TYPE_CHECKING:
    from claude_janitor.cache.usage import StoreUsage
    from claude_janitor.sweep.plan import Env
    from claude_janitor.sweep.run import RunResult

ACTIONS = click.Choice(["delete", "archive"])
FORMATS = click.Choice(["table", "json", "markdown"])


@click.command()
@cache_options
@click.option("--dry-run", is_flag=True, help="Decide and check everything, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--older-than",
    metavar="DURATION",
    help='Expire sessions inactive longer than this for this run ("7d", "12h"); '
    "project rules with their own retention still apply.",
)
@click.option("--action", type=ACTIONS, help="Override the action for this run.")
@click.option("--force", is_flag=True, help="Proceed even if the mass-removal guard trips.")
@wait_option("another running sweep")
@no_titles_option
@now_option
@handle_errors
def sweep(
    claude_dirs: tuple[str, ...],
    config_path: str | None,
    dry_run: bool,
    as_json: bool,
    older_than: str | None,
    action: str | None,
    force: bool,
    wait: float,
    no_titles: bool,
    now: float | None,
) -> None:
    """Delete or archive expired sessions now (one-shot).

    Sessions that are active (within `grace`), pinned, unreadable or changed since the scan are kept.
    """
    from claude_janitor.render import report

    env = make_env(claude_dirs, config_path, older_than=older_than, action=action, force=force)
    stop = _stop_on_signals()
    res = _sweep_run(env, now_or(now), dry_run, not as_json, wait, stop)
    if as_json:
        echo_stream(report.json_chunks(res, all_sessions=False, titles=not no_titles))
    else:
        click.echo("\n".join(report.summary_lines(res)))
    if stop.is_set():
        click.echo(f"janitor: stopped by {stop.signame} between sessions; nothing is half done", err=True)
        sys.exit(ExitStatus.for_signal(stop.signum))
    sys.exit(res.exit_code)


def _sweep_run(env: Env, now: float, dry_run: bool, show_progress: bool, wait: float, stop: _Stop) -> RunResult:
    """The run itself, under the sweep locks unless dry; metrics written after a real one (also when it
    failed); a signal before it acts ends the process here."""
    from claude_janitor.errors import JanitorError, LockBusy
    from claude_janitor.fs.locks import SweepLocks
    from claude_janitor.sweep.run import run

    def running_pid() -> int | None:  # this state dir's daemon (its sweeps wait for our state lock)
        from claude_janitor.daemon.instance import running_pid as pid

        return pid(env.dirs)

    started = _time()
    try:
        with progress(show_progress) as phase:
            if dry_run:
                return run(env, now, dry_run=True, should_stop=stop.is_set, phase=phase)
            with SweepLocks(
                env.dirs.lock_file,
                env.roots,
                wait=wait,  # also each Claude dir's own
                daemon_pid=running_pid,
            ):
                res = run(env, now, dry_run=False, should_stop=stop.is_set, phase=phase, acting=stop.start_acting)
    except JanitorError as e:
        if not dry_run and not isinstance(e, LockBusy):  # busy: the other sweep writes the metrics
            _write_metrics(env, None, started, error=e)
        raise
    except _Stopped as e:
        click.echo(f"janitor: stopped by {e.signame} before acting; nothing was changed", err=True)
        sys.exit(ExitStatus.for_signal(e.signum))
    _write_metrics(env, res, started)
    return res


def _time() -> float:
    import time

    return time.time()


def _write_metrics(env: Env, res: RunResult | None, started: float, *, error: Exception | None = None) -> None:
    """metrics_file after a sweep that ran, or that failed (then the last success time is carried over)."""
    from claude_janitor.config.janitor import load_policy
    from claude_janitor.errors import GuardTripped, JanitorError
    from claude_janitor.render import metrics

    try:
        pol = (
            res.policy
            if res is not None
            else load_policy(env.config_path, older_than=env.older_than, action=env.action)
        )
    except JanitorError:
        return  # a broken config names no metrics file
    if not pol.metrics_file:
        return
    if res is not None:
        sample = metrics.from_run(
            res.plan,
            res.outcomes,
            started=started,
            finished=_time(),
            guard=None,
            error="some actions failed" if res.exit_code else None,
        )
        t = trash_usage(env)
        sample.trash_bytes = t[2] if t else None
    else:
        guard = str(error) if isinstance(error, GuardTripped) else None
        sample = metrics.from_run(
            None, [], started=started, finished=_time(), guard=guard, error=None if guard else str(error)
        )
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

    from claude_janitor.fs.procs import on_stop_signals

    stop = _Stop()

    def on_signal(signum: int) -> None:
        stop.signum, stop.signame = signum, signal.Signals(signum).name
        if not stop.acting:
            raise _Stopped(signum, stop.signame)

    on_stop_signals(on_signal)
    return stop


@click.command()
@cache_options
@click.option(
    "--format",
    "fmt",
    type=FORMATS,
    default="table",
    show_default=True,
    help="Output format (markdown: for pasting into an issue or chat).",
)
@click.option("--older-than", metavar="DURATION", help="Report as if the default window were this.")
@click.option("--action", type=ACTIONS, help="Report as if this were the action.")
@click.option("--summary", is_flag=True, help="Only the per-project overview, not every session.")
@click.option("--stores", is_flag=True, help="Disk usage per store instead (same as `janitor du`).")
@no_titles_option
@now_option
@handle_errors
def report(
    claude_dirs: tuple[str, ...],
    config_path: str | None,
    fmt: str,
    older_than: str | None,
    action: str | None,
    summary: bool,
    stores: bool,
    no_titles: bool,
    now: float | None,
) -> None:
    """Show what a sweep would do, session by session, changing nothing.

    Projects come first with their sessions, size and the bytes a sweep would reclaim; then every
    session with its decision, the reason or rule behind it, last activity, age and size.
    """
    from claude_janitor.render import report as rep
    from claude_janitor.render import table
    from claude_janitor.sweep.run import run

    env = make_env(claude_dirs, config_path, older_than=older_than, action=action)
    with progress(fmt != "json") as phase:
        res = run(env, now_or(now), dry_run=True, phase=phase)
        usage = _store_usage(env, res, phase) if stores else None
    if usage is not None:
        click.echo(table.stores_render(usage, res, fmt, trash_usage(env)))
    elif fmt == "json":
        echo_stream(rep.json_chunks(res, titles=not no_titles))
    elif fmt == "markdown":
        echo_stream(table.markdown_lines(res, sessions=not summary, titles=not no_titles), sep="\n")
    else:
        echo_stream(table.table_lines(res, sessions=not summary, color=color(), titles=not no_titles), sep="\n")


def _store_usage(env: Env, res: RunResult, phase: PhaseFn | None) -> list[tuple[str, list[StoreUsage]]]:
    """(root, usage per store) for every Claude dir of the run, with the plan's reclaimable bytes."""
    from pathlib import Path

    from claude_janitor.cache.usage import usage

    count = phase("measuring", None, "entries") if phase else None
    return [(str(r), usage(str(r), res.plan, count)) for r in env.roots if Path(r).is_dir()]


@click.command()
@cache_options
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True, help="Output format.")
@click.option("--older-than", metavar="DURATION", help="Count as reclaimable what this window would expire.")
@now_option
@handle_errors
def du(
    claude_dirs: tuple[str, ...], config_path: str | None, fmt: str, older_than: str | None, now: float | None
) -> None:
    """Disk usage per store (projects/, debug/, file-history/, shell-snapshots/ …), biggest first.

    For each store: files, size, space on disk, oldest and newest file, and how much a sweep with
    the current policy would reclaim from it. Changes nothing.
    """
    from claude_janitor.render import table
    from claude_janitor.sweep.run import run

    env = make_env(claude_dirs, config_path, older_than=older_than)
    with progress(fmt != "json") as phase:
        res = run(env, now_or(now), dry_run=True, phase=phase)
        usage = _store_usage(env, res, phase)
    click.echo(table.stores_render(usage, res, fmt, trash_usage(env)))


COMMANDS = [sweep, report, du]
