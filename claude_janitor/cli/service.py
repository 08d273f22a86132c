"""`janitor daemon`, `status` and `service install|uninstall|status`: the resident sweeper and how it is
run by the service manager."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

import click

from claude_janitor.cli.common import F, cache_options, echo_json, fail, handle_errors, make_env
from claude_janitor.errors import ExitStatus


@click.command()
@cache_options
@click.option("-v", "--verbose", is_flag=True, help="Log every step (debug level).")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Log to this file instead of stderr, rotated at 1 MiB (3 old files kept); for launchd.",
)
@click.option("--log-max-bytes", type=click.IntRange(min=1024), default=1024 * 1024, hidden=True)
@handle_errors
def daemon(
    claude_dirs: tuple[str, ...], config_path: str | None, verbose: bool, log_file: str | None, log_max_bytes: int
) -> None:
    """Run in the foreground, sweeping as sessions expire (for systemd, launchd or a terminal).

    A full sweep runs at start and then every `sweep_interval` (default 1d) or on `sweep_cron`; between
    them the cache is watched, and each session is acted on the moment it expires. SIGTERM/SIGINT stop
    after the session in hand; SIGHUP reloads the config. Exit 3 if a daemon is already running.
    See `janitor service install` to run it as a service.
    """
    from claude_janitor.daemon.loop import run

    sys.exit(run(make_env(claude_dirs, config_path), verbose=verbose, log_file=log_file, log_max_bytes=log_max_bytes))


@click.command("_daemon-full-sweep", hidden=True)
@click.option("--claude-dir", "claude_dirs", multiple=True, required=True)
@click.option("--config", "config_path")
@click.option("--default-root", is_flag=True)
@click.option("--now", type=float, required=True)
@click.option("--parent-pid", type=int, required=True)
@click.option("--lock-fd", "lock_fds", type=int, multiple=True)
@click.option("--audit-from")
@click.option("-v", "--verbose", is_flag=True)
def daemon_full_sweep(
    claude_dirs: tuple[str, ...],
    config_path: str | None,
    default_root: bool,
    now: float,
    parent_pid: int,
    lock_fds: tuple[int, ...],
    audit_from: str | None,
    verbose: bool,
) -> None:
    """Internal: one full sweep of `janitor daemon`, in a process of its own (JSON result on stdout)."""
    from claude_janitor.daemon.child import child_main

    sys.exit(
        child_main(list(claude_dirs), config_path, default_root, now, parent_pid, list(lock_fds), audit_from, verbose)
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@handle_errors
def status(as_json: bool) -> None:
    """Is a daemon running? Its last and next sweep, next expiry wake-up, and the index size.

    Exit 0 if a daemon is running, 3 if not (as `systemctl is-active`)."""
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.daemon.state import status as get_status
    from claude_janitor.render.status import status_lines

    st = get_status(janitor_dirs())
    if as_json:
        echo_json(st, sort_keys=True)
    else:
        click.echo("\n".join(status_lines(st)))
    sys.exit(ExitStatus.OK if st["running"] else ExitStatus.BUSY)


@click.group()
def service() -> None:
    """Run the daemon (or a daily one-shot sweep) as a systemd user service or a launchd agent."""


def _backend(systemd: bool, launchd: bool) -> str:
    from claude_janitor.service.manager import default_backend

    if systemd and launchd:
        fail("choose one of --systemd and --launchd")
    return "systemd" if systemd else "launchd" if launchd else default_backend()


backend_options: list[Callable[[F], F]] = [
    click.option("--systemd", is_flag=True, help="Use a systemd user service (default on Linux)."),
    click.option("--launchd", is_flag=True, help="Use a launchd agent (default on macOS)."),
]


def _with_backend(fn: F) -> F:
    for opt in reversed(backend_options):
        fn = opt(fn)
    return fn


@service.command("install")
@cache_options
@_with_backend
@click.option(
    "--timer", is_flag=True, help="Install a daily one-shot `janitor sweep` on a timer instead of the resident daemon."
)
@click.option("--at", "at", metavar="HH:MM", help="With --timer: the time of day to sweep (default 03:30).")
@click.option("--print", "print_only", is_flag=True, help="Print the rendered files; install nothing.")
@handle_errors
def service_install(
    claude_dirs: tuple[str, ...],
    config_path: str | None,
    systemd: bool,
    launchd: bool,
    timer: bool,
    at: str | None,
    print_only: bool,
) -> None:
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
        rendered: Mapping[str, str | bytes] = (
            svc.render_systemd(setup, timer=timer) if backend == "systemd" else svc.render_launchd(setup, timer=timer)
        )
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


COMMANDS = [daemon, daemon_full_sweep, status, service]
