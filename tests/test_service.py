"""Service files: the systemd units and launchd plists rendered from the repo's templates, checked by
systemd-analyze and plistlib; install/uninstall drive systemctl/launchctl (recorded here, not run)."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from claude_janitor.config.paths import janitor_dirs
from claude_janitor.errors import ConfigError, JanitorError
from claude_janitor.service import manager as svc
from tests.helpers import run_cli, write_config

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "claude_janitor" / "service" / "templates"
ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture
def setup(jenv, tmp_path) -> svc.Setup:
    root = tmp_path / "my claude %dir"
    root.mkdir()
    return svc.setup_for([root], janitor_dirs(), None)


def analyze(unit_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    run = tmp_path / "xdg-run"
    run.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(run), SYSTEMD_LOG_LEVEL="warning")
    units = sorted(str(p) for p in unit_dir.iterdir())
    return subprocess.run([ANALYZE, "--user", "verify", *units], capture_output=True, text=True, env=env, timeout=60)


def test_templates_are_real_files_with_placeholders() -> None:
    for name in ("claude-janitor.service", "claude-janitor-sweep.service", "claude-janitor-sweep.timer"):
        text = (TEMPLATES / "systemd" / name).read_text()
        assert "@" in text and "[Install]" in text or name.endswith("sweep.service")
    daemon = plistlib.loads((TEMPLATES / "launchd" / "org.claude-janitor.daemon.plist").read_bytes())
    assert daemon["ProgramArguments"][0] == "@JANITOR@"
    assert Path(str(svc.template_dir("systemd"))) == TEMPLATES / "systemd"


def test_rendered_daemon_unit(setup: svc.Setup) -> None:
    text = svc.render_systemd(setup)["claude-janitor.service"]
    assert not re.findall(r"@[A-Z_]+@", text)
    root = setup.roots[0]
    assert f'--claude-dir "{str(root).replace("%", "%%")}"' in text
    assert f"ExecStart={setup.command[0]} daemon" in text
    for line in (
        "Type=notify",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "WantedBy=default.target",
        "RestartPreventExitStatus=2 3",
        "WatchdogSec=2min",
    ):
        assert line in text
    # pytest's tmp_path is under /tmp: a private /tmp would hide the cache and the state from the service.
    assert "PrivateTmp=no" in text and "PrivateTmp=yes" not in text
    rw = next(ln for ln in text.splitlines() if ln.startswith("ReadWritePaths="))
    d = setup.dirs
    assert f'"-{str(root).replace("%", "%%")}"' in rw  # optional, quoted, % escaped
    for p in (d.state, d.data):
        assert f" {p}" in rw
    assert str(d.log) not in rw.split() or d.log.parent != d.state  # the log dir is inside the state dir
    assert f"Environment=XDG_STATE_HOME={d.state.parent}" in text


def test_rendered_timer_variant(setup: svc.Setup) -> None:
    setup.at = (4, 5)
    out = svc.render_systemd(setup, timer=True)
    assert set(out) == {"claude-janitor-sweep.service", "claude-janitor-sweep.timer"}
    assert "OnCalendar=*-*-* 04:05:00" in out["claude-janitor-sweep.timer"]
    assert "Persistent=true" in out["claude-janitor-sweep.timer"]
    assert "Type=oneshot" in out["claude-janitor-sweep.service"]
    assert " sweep --wait 900 --claude-dir " in out["claude-janitor-sweep.service"]


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (.ci/run installs it)")
def test_systemd_analyze_verify_passes_on_the_rendered_units(setup: svc.Setup, tmp_path: Path) -> None:
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    for name, text in {**svc.render_systemd(setup), **svc.render_systemd(setup, timer=True)}.items():
        (unit_dir / name).write_text(text)
    p = analyze(unit_dir, tmp_path)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr
    # The check has teeth: a unit with a mistake is reported.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "claude-janitor.service").write_text(
        svc.render_systemd(setup)["claude-janitor.service"].replace("Type=notify", "Type=notifyy")
    )
    p = analyze(bad, tmp_path)
    assert "notifyy" in p.stdout + p.stderr


def test_rendered_plists(setup: svc.Setup) -> None:
    data = plistlib.loads(svc.render_launchd(setup)["org.claude-janitor.daemon.plist"])
    assert data["Label"] == "org.claude-janitor.daemon"
    assert data["ProgramArguments"] == [
        *setup.command,
        "daemon",
        "--claude-dir",
        str(setup.roots[0]),
        "--log-file",
        str(setup.dirs.log / "daemon.log"),
    ]  # rotated by itself
    assert data["RunAtLoad"] is True and data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["StandardErrorPath"] == str(setup.dirs.log / "daemon.log")
    setup.at = (22, 15)
    sweep = plistlib.loads(svc.render_launchd(setup, timer=True)["org.claude-janitor.sweep.plist"])
    assert sweep["Label"] == "org.claude-janitor.sweep"
    assert sweep["StartCalendarInterval"] == {"Hour": 22, "Minute": 15}
    assert sweep["ProgramArguments"][len(setup.command) :] == [
        "sweep",
        "--wait",
        "900",
        "--claude-dir",
        str(setup.roots[0]),
    ]
    setup.command = ["/usr/bin/python3", "-m", "claude_janitor"]
    assert plistlib.loads(svc.render_launchd(setup)["org.claude-janitor.daemon.plist"])["ProgramArguments"][:4] == [
        "/usr/bin/python3",
        "-m",
        "claude_janitor",
        "daemon",
    ]


def test_sd_quote() -> None:
    assert svc.sd_quote("/a/b") == "/a/b"
    assert svc.sd_quote("/a b/c") == '"/a b/c"'
    assert svc.sd_quote('/a"b') == '"/a\\"b"'
    assert svc.sd_quote("/50%") == "/50%%"
    assert svc.sd_quote("/$HOME", exec_line=True) == '"/$$HOME"'
    with pytest.raises(ConfigError):
        svc.sd_quote("/a\nb")


def test_archive_dir_from_the_config_is_writable(jenv, tmp_path: Path) -> None:
    write_config(jenv, f'archive_dir = "{tmp_path / "vault"}"\n')
    s = svc.setup_for([tmp_path / "claude"], janitor_dirs(), None, at="7:05")
    assert s.at == (7, 5)
    assert (tmp_path / "vault", True) in s.writable
    with pytest.raises(ConfigError, match="HH:MM"):
        svc.setup_for([tmp_path / "claude"], janitor_dirs(), None, at="25:00")


class Recorder:
    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, cmd):
        self.calls.append(list(cmd))
        rc = 1 if self.fail and self.fail in cmd else 0
        return subprocess.CompletedProcess(list(cmd), rc, "enabled\n", "boom" if rc else "")


def test_private_tmp_is_kept_unless_a_path_is_under_tmp(setup: svc.Setup, monkeypatch) -> None:
    home = Path("/home/someone")
    dirs = type(setup.dirs)(
        config=home / ".config/cj",
        state=home / ".local/state/cj",
        log=home / ".local/state/cj/log",
        data=home / ".local/share/cj",
    )
    elsewhere = svc.Setup(roots=[home / ".claude"], dirs=dirs, archive_dir=dirs.data / "archives")
    for k in svc.PASS_ENV:
        monkeypatch.delenv(k, raising=False)
    assert elsewhere.under_tmp() == [] and svc.private_tmp_warning(elsewhere) == []
    for name, text in svc.render_systemd(elsewhere).items():
        assert "PrivateTmp=yes" in text, name
    for claude in (Path("/tmp/claude"), Path("/var/tmp/x/.claude")):
        one = svc.Setup(roots=[claude], dirs=dirs, archive_dir=dirs.data / "archives")
        assert one.under_tmp() == [claude]
        assert "PrivateTmp=no" in svc.render_systemd(one, timer=True)["claude-janitor-sweep.service"]
        assert str(claude) in svc.private_tmp_warning(one)[0]


def test_systemd_install_switch_and_uninstall(setup: svc.Setup, tmp_path: Path) -> None:
    units = tmp_path / "units"
    rec = Recorder()
    res = svc.install(setup, "systemd", runner=rec, unit_dir=units)
    assert [p.name for p in res.files] == ["claude-janitor.service"]
    assert rec.calls == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "claude-janitor.service"],
    ]
    assert any("PrivateTmp=no" in line for line in res.lines)  # tmp_path is under /tmp: said, not hidden
    assert setup.dirs.state.is_dir() and setup.dirs.log.is_dir() and setup.archive_dir.is_dir()
    rec.calls.clear()
    svc.install(setup, "systemd", timer=True, runner=rec, unit_dir=units)  # the timer replaces the daemon
    assert rec.calls[0] == ["systemctl", "--user", "disable", "--now", "claude-janitor.service"]
    assert rec.calls[-1] == ["systemctl", "--user", "enable", "--now", "claude-janitor-sweep.timer"]
    assert sorted(p.name for p in units.iterdir()) == ["claude-janitor-sweep.service", "claude-janitor-sweep.timer"]
    st = svc.service_status("systemd", runner=Recorder(), unit_dir=units)
    assert len(st.files) == 2 and "enabled" in st.lines[0]
    rec.calls.clear()
    res = svc.uninstall("systemd", runner=rec, unit_dir=units)
    assert rec.calls[0][:4] == ["systemctl", "--user", "disable", "--now"]
    assert list(units.iterdir()) == [] and len(res.removed) == 2
    assert svc.uninstall("systemd", runner=rec, unit_dir=units).lines == ["nothing installed"]


def test_a_failing_systemctl_is_an_error(setup: svc.Setup, tmp_path: Path) -> None:
    with pytest.raises(JanitorError, match="boom") as e:
        svc.install(setup, "systemd", runner=Recorder(fail="enable"), unit_dir=tmp_path / "u")
    assert e.value.exit_code == 1


def test_launchd_install_and_uninstall(setup: svc.Setup, tmp_path: Path) -> None:
    agents = tmp_path / "LaunchAgents"
    rec = Recorder()
    svc.install(setup, "launchd", runner=rec, unit_dir=agents)
    path = agents / "org.claude-janitor.daemon.plist"
    assert plistlib.loads(path.read_bytes())["Label"] == "org.claude-janitor.daemon"
    dom = f"gui/{os.getuid()}"
    assert rec.calls[-1] == ["launchctl", "bootstrap", dom, str(path)]
    rec.calls.clear()
    svc.uninstall("launchd", runner=rec, unit_dir=agents)
    assert rec.calls == [["launchctl", "bootout", f"{dom}/org.claude-janitor.daemon"]]
    assert not path.exists()


def test_cli_prints_the_rendered_files(jenv, tmp_path: Path) -> None:
    root = tmp_path / "claude"
    root.mkdir()
    p = run_cli(["service", "install", "--systemd", "--print", "--claude-dir", str(root)], jenv)
    assert p.returncode == 0, p.stderr
    assert f"daemon --claude-dir {root}" in p.stdout and "claude-janitor.service" in p.stderr
    assert "PrivateTmp=no" in p.stderr and str(root) in p.stderr
    p = run_cli(
        ["service", "install", "--launchd", "--timer", "--at", "01:02", "--print", "--claude-dir", str(root)], jenv
    )
    assert p.returncode == 0, p.stderr
    assert plistlib.loads(p.stdout.encode())["StartCalendarInterval"] == {"Hour": 1, "Minute": 2}
    assert not (Path(jenv["XDG_STATE_HOME"]) / "claude-janitor").exists()  # --print installs nothing
    p = run_cli(["service", "install", "--systemd", "--launchd", "--print"], jenv)
    assert p.returncode == 2


def test_every_template_ships_in_the_wheel():
    """pyproject's package-data must cover every template file (they are package resources)."""
    import fnmatch
    import tomllib

    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = conf["package-data"]["claude_janitor.service"]
    files = [p.relative_to(TEMPLATES.parent).as_posix() for p in TEMPLATES.rglob("*") if p.is_file()]
    assert len(files) == 5
    for name in files:
        assert any(fnmatch.fnmatch(name, g) for g in globs), name


def test_a_systemd_package_elsewhere_on_the_path_is_not_taken_for_the_templates(jenv, tmp_path):
    """python-systemd installs a top-level ``systemd`` package; the templates must still be the janitor's own."""
    shadow = tmp_path / "site"
    (shadow / "systemd").mkdir(parents=True)
    (shadow / "systemd" / "__init__.py").write_text("")
    env = dict(jenv, PYTHONPATH=f"{shadow}{os.pathsep}{jenv.get('PYTHONPATH', '')}")
    p = run_cli(["service", "install", "--systemd", "--print"], env)
    assert p.returncode == 0, p.stderr
    assert "ExecStart=" in p.stdout
