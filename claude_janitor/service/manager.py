"""Render and install the daemon (or the one-shot sweep on a timer) as a systemd user service or a launchd
agent. The templates are the real files in the repo's systemd/ and launchd/ dirs; @PLACEHOLDERS@ in them
are filled with this machine's paths: the janitor executable, the Claude dir(s), the janitor's state, log
and archive dirs.
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from claude_janitor.config.paths import JanitorDirs, ensure_private_dir
from claude_janitor.errors import ConfigError, ExitStatus, JanitorError
from claude_janitor.fs.atomicfile import write_atomic

SYSTEMD_DAEMON = "claude-janitor.service"
SYSTEMD_SWEEP = ("claude-janitor-sweep.service", "claude-janitor-sweep.timer")
LAUNCHD_DAEMON = "org.claude-janitor.daemon"
LAUNCHD_SWEEP = "org.claude-janitor.sweep"
# Passed on to the service when set. The last three say where Claude Code's own dir, user cache and temp dir
# are, so the service takes the same stores for the user's (cli-logs, tmp: removal.stores.places) as the shell.
PASS_ENV = (
    "CLAUDE_JANITOR_MANAGED_DIR",
    "CLAUDE_JANITOR_POLICY",
    "CLAUDE_CONFIG_DIR",
    "XDG_CACHE_HOME",
    "CLAUDE_CODE_TMPDIR",
)

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def template_dir(kind: str) -> Traversable:
    """The ``systemd`` or ``launchd`` templates, package resources of claude_janitor.service (templates/<kind>/);
    never a same-named dir elsewhere on sys.path (python-systemd installs a ``systemd`` package)."""
    found = resources.files("claude_janitor.service") / "templates" / kind
    if not found.is_dir():
        raise JanitorError(f"the {kind} templates are missing from the installed package; reinstall claude-janitor")
    return found


def default_backend() -> str:
    return "launchd" if sys.platform == "darwin" else "systemd"


def janitor_command() -> list[str]:
    """How a service manager starts this janitor: the console script next to this Python, else on PATH,
    else ``python -m claude_janitor``. Always absolute."""
    exe = Path(sys.executable)
    script = exe.parent / "janitor"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("janitor")
    if found:
        return [os.path.abspath(found)]
    return [str(exe), "-m", "claude_janitor"]


@dataclass
class Setup:
    """What gets filled into the templates."""

    roots: list[Path]
    dirs: JanitorDirs
    archive_dir: Path
    config_path: str | None = None
    command: list[str] = field(default_factory=janitor_command)
    at: tuple[int, int] = (3, 30)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def args(self) -> list[str]:
        out: list[str] = []
        for r in self.roots:
            out += ["--claude-dir", str(r)]
        if self.config_path:
            out += ["--config", os.path.abspath(self.config_path)]
        return out

    @property
    def writable(self) -> list[tuple[Path, bool]]:
        """(path, required) for ReadWritePaths: the swept dirs (optional: the janitor says clearly when one
        is missing) and the janitor's own state, log, data and archive dirs (created on install)."""
        out: list[tuple[Path, bool]] = [(r, False) for r in self.roots]
        from claude_janitor.removal.stores import cache_dir, places

        if any("cache" in places(str(r)) for r in self.roots):  # the user's own Claude dir: its cli-logs store
            out.append((Path(cache_dir()) / "claude-cli-nodejs", False))
        for p in (self.dirs.state, self.dirs.log, self.dirs.data, self.archive_dir):
            if all(p != q and q not in p.parents for q, _ in out):
                out.append((p, True))
        return out

    def under_tmp(self) -> list[Path]:
        """The paths the service needs that lie under /tmp or /var/tmp: ``PrivateTmp=yes`` would give the
        service an empty private /tmp in which they do not exist (an unswept cache, a fresh state dir)."""
        paths = [*self.roots, self.dirs.config, self.dirs.state, self.dirs.log, self.dirs.data, self.archive_dir]
        if self.config_path:
            paths.append(Path(self.config_path))
        paths += [Path(v) for k, v in self.environment().items() if k in PASS_ENV]
        out: list[Path] = []
        for p in paths:
            real = Path(os.path.realpath(os.path.abspath(p)))
            if any(real == t or t in real.parents for t in (Path("/tmp"), Path("/var/tmp"))) and p not in out:
                out.append(p)
        return out

    def environment(self) -> dict[str, str]:
        """Variables that pin the janitor's dirs to what this install computed (the service manager's
        environment may lack the user's XDG_* settings), plus pass-through ones set now."""
        out: dict[str, str] = {}
        if sys.platform != "darwin":
            out["XDG_CONFIG_HOME"] = str(self.dirs.config.parent)
            out["XDG_STATE_HOME"] = str(self.dirs.state.parent)
            out["XDG_DATA_HOME"] = str(self.dirs.data.parent)
        for k in PASS_ENV:
            if os.environ.get(k):
                out[k] = os.environ[k]
        out.update(self.env)
        return out


def setup_for(roots: list[Path], dirs: JanitorDirs, config_path: str | None, *, at: str | None = None) -> Setup:
    """The Setup for this user: reads the janitor config for a custom archive_dir."""
    from claude_janitor.config import janitor as config

    pol = config.load_policy(config_path)
    archive = Path(pol.archive_dir) if pol.archive_dir else dirs.archive_dir
    s = Setup(roots=[Path(os.path.abspath(r)) for r in roots], dirs=dirs, archive_dir=archive, config_path=config_path)
    if at:
        m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at.strip())
        if not m:
            raise ConfigError(f"--at {at!r}: give a time of day as HH:MM, e.g. 03:30")
        s.at = (int(m.group(1)), int(m.group(2)))
    return s


# ---- systemd ------------------------------------------------------------------------------------------

_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def sd_quote(word: str, *, exec_line: bool = False) -> str:
    """One word for a unit file: specifiers (%) and, in Exec lines, variables ($) escaped; quoted when
    needed."""
    if "\n" in word or "\r" in word:
        raise ConfigError(f"path {word!r} contains a newline; it cannot go in a unit file")
    w = word.replace("%", "%%")
    if exec_line:
        w = w.replace("$", "$$")
    if _SAFE.match(w):
        return w
    return '"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_systemd(setup: Setup, *, timer: bool = False) -> dict[str, str]:
    """unit file name -> rendered text."""
    names = SYSTEMD_SWEEP if timer else (SYSTEMD_DAEMON,)
    env = setup.environment()
    values = {
        "@JANITOR@": " ".join(sd_quote(w, exec_line=True) for w in setup.command),
        "@ARGS@": " ".join(sd_quote(w, exec_line=True) for w in setup.args),
        "@READ_WRITE_PATHS@": " ".join(sd_quote(("" if req else "-") + str(p)) for p, req in setup.writable),
        "@ENVIRONMENT@": "\n".join(f"Environment={sd_quote(f'{k}={v}')}" for k, v in env.items()),
        "@ON_CALENDAR@": f"*-*-* {setup.at[0]:02d}:{setup.at[1]:02d}:00",
        "@PRIVATE_TMP@": "no" if setup.under_tmp() else "yes",
    }
    out = {}
    for name in names:
        text = (template_dir("systemd") / name).read_text()
        for k, v in values.items():
            text = text.replace(k, v)
        text = text.replace(" \n", "\n")  # an empty @ARGS@ at the end of a line
        left = re.findall(r"@[A-Z_]+@", text)
        if left:
            raise JanitorError(f"template {name}: unknown placeholder(s) {', '.join(sorted(set(left)))}")
        out[name] = text
    return out


def private_tmp_warning(setup: Setup) -> list[str]:
    """What to tell the user when the units are rendered with PrivateTmp=no (empty if they are not)."""
    tmp = setup.under_tmp()
    if not tmp:
        return []
    return [
        f"warning: {', '.join(str(p) for p in tmp)} {'is' if len(tmp) == 1 else 'are'} under /tmp or "
        "/var/tmp, which a service with PrivateTmp=yes cannot see: the unit is written with PrivateTmp=no. "
        "Files there may also be removed by tmp cleaners (systemd-tmpfiles) or at reboot."
    ]


def systemd_unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


# ---- launchd ------------------------------------------------------------------------------------------


def _subst(value: Any, values: dict[str, list[str] | str]) -> Any:
    if isinstance(value, dict):
        return {k: _subst(v, values) for k, v in value.items()}
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            if isinstance(v, str) and isinstance(values.get(v), list):
                out += values[v]  # an argument that is exactly a list placeholder: zero or more arguments
            else:
                out.append(_subst(v, values))
        return out
    if isinstance(value, str):
        for k, v in values.items():
            if k in value:
                value = value.replace(k, v if isinstance(v, str) else " ".join(v))
        return value
    return value


def render_launchd(setup: Setup, *, timer: bool = False) -> dict[str, bytes]:
    """plist file name -> rendered plist (XML)."""
    label = LAUNCHD_SWEEP if timer else LAUNCHD_DAEMON
    name = f"{label}.plist"
    with (template_dir("launchd") / name).open("rb") as f:
        tpl = plistlib.load(f)
    values: dict[str, list[str] | str] = {
        "@JANITOR@": setup.command[0],
        "@ARGS@": setup.args,
        "@LOG_DIR@": str(setup.dirs.log),
    }
    data = _subst(tpl, values)
    # The command may be several words (python -m janitor): splice it in place of the first argument.
    data["ProgramArguments"] = setup.command + data["ProgramArguments"][1:]
    env = {k: v for k, v in setup.environment().items() if k in PASS_ENV or os.environ.get(k)}
    if env:
        data["EnvironmentVariables"] = env
    if timer:
        data["StartCalendarInterval"] = {"Hour": setup.at[0], "Minute": setup.at[1]}
    left = re.findall(r"@[A-Z_]+@", plistlib.dumps(data).decode())
    if left:
        raise JanitorError(f"template {name}: unknown placeholder(s) {', '.join(sorted(set(left)))}")
    return {name: plistlib.dumps(data)}


def launchd_agent_dir() -> Path:
    return Path.home() / "Library" / "LaunchAgents"


# ---- install / uninstall / status ----------------------------------------------------------------------


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return subprocess.CompletedProcess(list(cmd), 127, "", f"{cmd[0]}: command not found")


@dataclass
class Result:
    files: list[Path] = field(default_factory=list)
    commands: list[tuple[list[str], int, str]] = field(default_factory=list)  # cmd, rc, output
    removed: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def run(self, runner: Runner, cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = runner(cmd)
        self.commands.append((cmd, p.returncode, (p.stdout or "") + (p.stderr or "")))
        if check and p.returncode != 0:
            raise JanitorError(
                f"`{' '.join(cmd)}` failed (exit {p.returncode}): "
                f"{((p.stderr or '') + (p.stdout or '')).strip() or 'no output'}",
                exit_code=ExitStatus.ACTIONS_FAILED,
            )
        return p


def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=0o644)


def _make_dirs(setup: Setup) -> None:
    """The janitor's own dirs must exist before the service starts (ReadWritePaths, log files)."""
    for p in (setup.dirs.state, setup.dirs.log, setup.dirs.data, setup.archive_dir):
        ensure_private_dir(p)


def install(
    setup: Setup, backend: str, *, timer: bool = False, runner: Runner = _run, unit_dir: Path | None = None
) -> Result:
    res = Result()
    _make_dirs(setup)
    if backend == "systemd":
        unit_dir = unit_dir or systemd_unit_dir()
        other = (SYSTEMD_DAEMON,) if timer else SYSTEMD_SWEEP
        present = [n for n in other if (unit_dir / n).exists()]
        if present:  # switching between the daemon and the timer: only one of them at a time
            res.run(runner, ["systemctl", "--user", "disable", "--now", *present], check=False)
            for n in present:
                (unit_dir / n).unlink()
                res.removed.append(unit_dir / n)
        for name, text in render_systemd(setup, timer=timer).items():
            _write(unit_dir / name, text)
            res.files.append(unit_dir / name)
        res.lines += private_tmp_warning(setup)
        res.run(runner, ["systemctl", "--user", "daemon-reload"])
        unit = SYSTEMD_SWEEP[1] if timer else SYSTEMD_DAEMON
        res.run(runner, ["systemctl", "--user", "enable", "--now", unit])
        res.lines.append(f"enabled and started {unit}; see `systemctl --user status {unit}`")
    elif backend == "launchd":
        agent_dir = unit_dir or launchd_agent_dir()
        domain = f"gui/{os.getuid()}"
        other_agent = LAUNCHD_DAEMON if timer else LAUNCHD_SWEEP
        if (agent_dir / f"{other_agent}.plist").exists():
            res.run(runner, ["launchctl", "bootout", f"{domain}/{other_agent}"], check=False)
            (agent_dir / f"{other_agent}.plist").unlink()
            res.removed.append(agent_dir / f"{other_agent}.plist")
        label = LAUNCHD_SWEEP if timer else LAUNCHD_DAEMON
        for name, data in render_launchd(setup, timer=timer).items():
            _write(agent_dir / name, data)
            res.files.append(agent_dir / name)
        res.run(runner, ["launchctl", "bootout", f"{domain}/{label}"], check=False)  # if loaded before
        res.run(runner, ["launchctl", "enable", f"{domain}/{label}"], check=False)
        res.run(runner, ["launchctl", "bootstrap", domain, str(agent_dir / f"{label}.plist")])
        res.lines.append(f"loaded {label}; see `launchctl print {domain}/{label}`")
    else:
        raise ConfigError(f"unknown service manager {backend!r}")
    return res


def uninstall(backend: str, *, runner: Runner = _run, unit_dir: Path | None = None) -> Result:
    res = Result()
    if backend == "systemd":
        unit_dir = unit_dir or systemd_unit_dir()
        names = [n for n in (SYSTEMD_DAEMON, *SYSTEMD_SWEEP) if (unit_dir / n).exists()]
        if names:
            res.run(runner, ["systemctl", "--user", "disable", "--now", *names], check=False)
        for n in names:
            (unit_dir / n).unlink()
            res.removed.append(unit_dir / n)
        if names:
            res.run(runner, ["systemctl", "--user", "daemon-reload"], check=False)
    elif backend == "launchd":
        agent_dir = unit_dir or launchd_agent_dir()
        for label in (LAUNCHD_DAEMON, LAUNCHD_SWEEP):
            path = agent_dir / f"{label}.plist"
            if path.exists():
                res.run(runner, ["launchctl", "bootout", f"gui/{os.getuid()}/{label}"], check=False)
                path.unlink()
                res.removed.append(path)
    else:
        raise ConfigError(f"unknown service manager {backend!r}")
    if not res.removed:
        res.lines.append("nothing installed")
    return res


def service_status(backend: str, *, runner: Runner = _run, unit_dir: Path | None = None) -> Result:
    res = Result()
    if backend == "systemd":
        unit_dir = unit_dir or systemd_unit_dir()
        for n in (SYSTEMD_DAEMON, *SYSTEMD_SWEEP):
            if not (unit_dir / n).exists():
                continue
            res.files.append(unit_dir / n)
            enabled = res.run(runner, ["systemctl", "--user", "is-enabled", n], check=False).stdout.strip()
            active = res.run(runner, ["systemctl", "--user", "is-active", n], check=False).stdout.strip()
            res.lines.append(f"{n}: {enabled or 'unknown'}, {active or 'unknown'} ({unit_dir / n})")
    elif backend == "launchd":
        agent_dir = unit_dir or launchd_agent_dir()
        for label in (LAUNCHD_DAEMON, LAUNCHD_SWEEP):
            path = agent_dir / f"{label}.plist"
            if not path.exists():
                continue
            res.files.append(path)
            p = res.run(runner, ["launchctl", "print", f"gui/{os.getuid()}/{label}"], check=False)
            state = "loaded" if p.returncode == 0 else "not loaded"
            m = re.search(r"^\s*state = (.+)$", p.stdout or "", re.M)
            res.lines.append(f"{label}: {state}{f', {m.group(1)}' if m else ''} ({path})")
    else:
        raise ConfigError(f"unknown service manager {backend!r}")
    if not res.files:
        res.lines.append(f"no claude-janitor {backend} service is installed")
    return res
