"""The daemon as a real systemd user service: `janitor service install` into a private `systemd --user`
manager (no container, no machine-wide systemd needed), then start, expire, reload, a second instance, stop.

How: `unshare -m` gives the manager a private mount namespace in which /run/systemd/system exists (systemd
refuses to run as a user manager on a machine not booted with systemd otherwise); it gets its own
XDG_RUNTIME_DIR (its private bus socket) and XDG_CONFIG_HOME (its unit dir); every systemctl call is made
inside that namespace (nsenter). Needs root (a mount namespace) and the systemd binary; skipped otherwise,
with one line saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for, write_config
from tests.helpers.cachegen import make_session

SYSTEMD = next((p for p in ("/usr/lib/systemd/systemd", "/lib/systemd/systemd") if os.access(p, os.X_OK)), None)
# Sandboxing a container may not allow (read-only /proc/sys, no /proc/kmsg): set off in a drop-in only when
# the unit fails with status 226/NAMESPACE, and said in the test's output.
CONTAINER_DROP_IN = "[Service]\nProtectKernelTunables=no\nProtectKernelLogs=no\n"


class Manager:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        script = (
            "mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system "
            f"&& exec {SYSTEMD} --user"
        )
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        # --wd: entering a mount namespace moves to its root; `python -m janitor` must run from here
        cmd = ["nsenter", "-t", str(self.proc.pid), "-m", f"--wd={os.getcwd()}", "--", *args]
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120)
        assert not check or p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    def systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--user", *args)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"-p{p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def janitor(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "claude_janitor", *args)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


@pytest.fixture
def manager(jenv: dict[str, str]) -> Iterator[Manager]:
    if not sys.platform.startswith("linux"):
        pytest.skip("a real systemd user manager needs Linux")
    if SYSTEMD is None or not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.skip("a real systemd user manager needs the systemd binary, unshare and nsenter")
    if os.geteuid() != 0:
        pytest.skip("a private systemd --user needs root here (a private mount namespace for /run/systemd)")
    run = Path(tempfile.mkdtemp(prefix="jr-"))  # short: it holds unix sockets (108-byte paths)
    run.chmod(0o700)
    env = dict(jenv, XDG_RUNTIME_DIR=str(run), PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    env.pop("NOTIFY_SOCKET", None)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    m = Manager(env)
    try:
        if (
            not wait_for(lambda: (run / "systemd" / "private").exists() or m.proc.poll() is not None, timeout=30)
            or m.proc.poll() is not None
        ):
            pytest.skip(f"could not start a private systemd --user manager: {m.output().strip()[-300:]}")
        if not wait_for(lambda: m.systemctl("is-system-running").stdout.strip() in ("running", "degraded"), timeout=30):
            pytest.skip(f"the private systemd --user manager did not come up: {m.output().strip()[-300:]}")
        yield m
    finally:
        if m.proc.poll() is None:
            m.systemctl("exit")
            try:
                m.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
        m.log.close()
        shutil.rmtree(run, ignore_errors=True)


def test_the_daemon_as_a_real_systemd_user_service(
    manager: Manager, jenv: dict[str, str], root: Path, tmp_path: Path
) -> None:
    m = manager
    unit = "claude-janitor.service"
    write_config(jenv, 'retention = "1h"\ngrace = "0s"\n')
    (root / "projects").mkdir()
    old = make_session(root, "/w/a", time.time() - 7200, side=False)
    keep = make_session(root, "/w/b", time.time(), side=False)
    units = Path(jenv["XDG_CONFIG_HOME"]) / "systemd" / "user"

    p = m.janitor("service", "install", "--claude-dir", str(root))
    if p.returncode != 0 and "226/NAMESPACE" in m.systemctl("status", unit).stdout:
        print(
            "this machine cannot set up ProtectKernelTunables/ProtectKernelLogs (a container): "
            "set off in a drop-in for this test"
        )
        (units / f"{unit}.d").mkdir(parents=True)
        (units / f"{unit}.d" / "container.conf").write_text(CONTAINER_DROP_IN)
        m.systemctl("daemon-reload")
        m.systemctl("restart", unit)
    else:
        assert p.returncode == 0, (p.stdout, p.stderr)
    assert "PrivateTmp=no" in p.stdout + p.stderr or "PrivateTmp=no" in (units / unit).read_text()

    def active() -> bool:
        return m.systemctl("is-active", unit).stdout.strip() == "active"

    assert wait_for(active, timeout=60), (
        p.stdout,
        p.stderr,
        m.systemctl("status", unit).stdout,
        m.run("journalctl", "--user", "-u", unit).stdout,
        m.output(),
    )
    assert wait_for(lambda: not old.paths[0].exists(), timeout=60), m.run("journalctl", "--user", "-u", unit).stdout
    assert keep.paths[0].exists()
    st = m.janitor("status", "--json")
    assert st.returncode == 0 and json.loads(st.stdout)["running"]
    pid = json.loads(st.stdout)["pid"]
    props = m.show(unit, "MainPID", "WatchdogUSec", "WatchdogTimestampMonotonic", "StatusText", "NRestarts", "Type")
    assert props["Type"] == "notify" and int(props["MainPID"]) == pid
    assert props["WatchdogUSec"] == "2min" and int(props["WatchdogTimestampMonotonic"]) > 0  # pinged
    assert props["NRestarts"] == "0"
    # The session goes in the full sweep's process, which still writes the index and the audit log after
    # that: STATUS= says "next sweep" once the sweep is over.
    assert wait_for(lambda: "next sweep" in m.show(unit, "StatusText")["StatusText"], timeout=60), props

    # systemctl reload: RELOADING=1, the config read again, READY=1; the same process goes on.
    write_config(jenv, 'retention = "30m"\ngrace = "0s"\n')
    assert m.systemctl("reload", unit).returncode == 0
    assert active() and int(m.show(unit, "MainPID")["MainPID"]) == pid

    # A second service on the same Claude dir (another state dir) exits 3 and is not restarted every 30 s.
    twin = (
        (units / unit)
        .read_text()
        .replace(
            f"Environment=XDG_STATE_HOME={Path(jenv['XDG_STATE_HOME'])}",
            f"Environment=XDG_STATE_HOME={tmp_path / 'twin-state'}",
        )
    )
    assert f"XDG_STATE_HOME={tmp_path / 'twin-state'}" in twin
    (tmp_path / "twin-state").mkdir()
    twin = twin.replace("[Service]\n", f"[Service]\nReadWritePaths={tmp_path / 'twin-state'}\n", 1)
    (units / "claude-janitor-twin.service").write_text(twin)
    if (units / f"{unit}.d").exists():
        shutil.copytree(units / f"{unit}.d", units / "claude-janitor-twin.service.d")
    m.systemctl("daemon-reload")
    m.systemctl("start", "claude-janitor-twin.service")
    twin_props = lambda: m.show("claude-janitor-twin.service", "ActiveState", "ExecMainStatus", "Result")  # noqa: E731
    assert wait_for(lambda: twin_props()["ActiveState"] in ("failed", "inactive"), timeout=30), (
        twin_props(),
        m.run("journalctl", "--user", "-u", "claude-janitor-twin.service").stdout,
        m.systemctl("status", "claude-janitor-twin.service").stdout,
    )
    assert twin_props()["ExecMainStatus"] == "3" and twin_props()["Result"] == "exit-code"
    assert active()

    # systemctl stop: SIGTERM, a clean exit; `janitor status` then says so (exit 3).
    assert m.systemctl("stop", unit).returncode == 0
    assert m.show(unit, "Result")["Result"] == "success"
    st = m.janitor("status")
    assert st.returncode == 3 and "not running" in st.stdout
    assert keep.paths[0].exists()
