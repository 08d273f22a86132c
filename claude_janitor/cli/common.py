"""What every command shares: the one-line error and its exit status, the shared options, the run's
environment and the progress line. Only click is imported at start; the core is imported when a command
runs, so that `janitor --help` starts fast."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from claude_janitor.errors import ExitStatus

if TYPE_CHECKING:
    from claude_janitor.config.paths import JanitorDirs
    from claude_janitor.render.progress import Progress
    from claude_janitor.sweep.plan import Env

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])
ProgressFn = Callable[[int], None]
PhaseFn = Callable[[str, "int | None", str], ProgressFn]


def fail(message: str, code: int = ExitStatus.USAGE) -> NoReturn:
    """One line on stderr, then exit with ``code`` (an ExitStatus, or 128 + a signal's number)."""
    click.echo(f"janitor: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Map JanitorError to one clear line and its exit code; a traceback only with --debug."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from claude_janitor.errors import JanitorError

        try:
            return fn(*args, **kwargs)
        except JanitorError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            import signal

            fail("interrupted", ExitStatus.for_signal(signal.SIGINT))
        except Exception as e:  # noqa: BLE001 - last line of defence: one line, not a traceback
            ctx = click.get_current_context(silent=True)
            if ctx is not None and ctx.find_root().params.get("debug"):
                raise
            fail(f"unexpected {type(e).__name__}: {e} (re-run with --debug for a traceback)", ExitStatus.ACTIONS_FAILED)

    return wrapper


def cache_options(fn: F) -> F:
    """--claude-dir and --config, shared by every command that reads the cache."""
    fn = click.option(
        "--config",
        "config_path",
        metavar="FILE",
        type=click.Path(dir_okay=False),
        help="Janitor config (TOML). Default: config.toml in the user config dir (see `janitor doctor`).",
    )(fn)
    return click.option(
        "--claude-dir",
        "claude_dirs",
        multiple=True,
        metavar="DIR",
        help="Claude Code config dir to sweep (repeatable). Default: $CLAUDE_CONFIG_DIR, else ~/.claude.",
    )(fn)


config_option = click.option(
    "--config",
    "config_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Janitor config (TOML), for archive_dir. Default: config.toml in the user config dir.",
)
now_option = click.option(
    "--now", "now", type=float, hidden=True, help="Pretend the time is this Unix timestamp (testing)."
)
no_titles_option = click.option(
    "--no-titles", "no_titles", is_flag=True, help="Leave out session titles (transcript text), e.g. for a screenshot."
)


def wait_option(what: str) -> Callable[[F], F]:
    return click.option(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help=f"Wait up to this long for {what} to finish (default: exit 3 at once).",
    )


def make_env(
    claude_dirs: tuple[str, ...],
    config_path: str | None,
    *,
    older_than: str | None = None,
    action: str | None = None,
    force: bool = False,
) -> Env:
    import os

    from claude_janitor.config.paths import claude_dirs as find_dirs
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.sweep.plan import Env

    default_root = not claude_dirs and not os.environ.get("CLAUDE_CONFIG_DIR")
    return Env(
        roots=find_dirs(claude_dirs),
        dirs=janitor_dirs(),
        config_path=config_path,
        default_root=default_root,
        older_than=older_than,
        action=action,
        force=force,
    )


def audit_env(dirs: JanitorDirs, config_path: str | None) -> Env:
    """The environment of a command that only writes audit records (restore, undo): no Claude dir."""
    from claude_janitor.sweep.plan import Env

    return Env(roots=[], dirs=dirs, config_path=config_path)


def now_or(now: float | None) -> float:
    import time

    return time.time() if now is None else now


def color() -> bool:
    import os

    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def echo_json(doc: object, *, sort_keys: bool = False) -> None:
    import json

    click.echo(json.dumps(doc, indent=2, ensure_ascii=True, sort_keys=sort_keys))


def echo_stream(parts: Iterable[str], sep: str = "", end: str = "\n") -> None:
    """``sep.join(parts) + end`` to stdout as the parts are made, in writes of ~64 KiB: a report of 100k
    sessions is ~100 MB of text, never held whole."""
    buf: list[str] = []
    size = 0
    for i, part in enumerate(parts):
        if i and sep:
            buf.append(sep)
        buf.append(part)
        size += len(part)
        if size >= 1 << 16:
            click.echo("".join(buf), nl=False)
            buf.clear()
            size = 0
    buf.append(end)
    click.echo("".join(buf), nl=False)


def archive_dir(config_path: str | None) -> Path:
    from claude_janitor.config.janitor import load_policy
    from claude_janitor.config.paths import archive_dir_for, janitor_dirs

    return archive_dir_for(load_policy(config_path), janitor_dirs())


def trash_usage(env: Env) -> tuple[str, int, int] | None:
    """(dir, sessions, bytes) of the janitor's trash; None if there is none."""
    from claude_janitor.removal import trash

    tdir = trash.trash_dir(env.dirs)
    if not tdir.is_dir():
        return None
    n, b = trash.usage(tdir)
    return str(tdir), n, b


class progress:  # noqa: N801 - used as a context manager: `with progress(enabled) as phase`
    """The progress line for long runs (stderr, TTY only, never with JSON). Yields the run's phase hook."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Progress | None = None
        if enabled and sys.stderr.isatty():
            from claude_janitor.render.progress import Progress

            self.bar = Progress()

    def __enter__(self) -> PhaseFn | None:
        return self.bar.phase if self.bar else None

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.bar:
            self.bar.close()
