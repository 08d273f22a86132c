"""The full sweep's process: `janitor _daemon-full-sweep`, the daemon's full sweep (or a big wake-up) in a
short-lived process of its own, so that the memory a big scan takes (~60 MB for 10k sessions) is given back
when it ends.

The protocol, over the child's stdin and stdout:
  daemon -> child  a pickle of {"version", "policy", "due"}: the daemon's policy (the one it loaded, kept
                   until SIGHUP) and, for a wake-up, the keys of the sessions due (None: a full sweep);
  child -> daemon  one JSON line: the outcome counts, where the audit log stands after it ("audit_pos"),
                   the restored sessions, the sessions gone without it removing them; or {"error": …}
                   ("busy": the sweep lock is held elsewhere, "crash": an unexpected exception), or
                   {"stopped": "start" | "scan"}.
The child holds the daemon's sweep lock and Claude dir locks with it (the same open files, passed down)
and stops between sessions on SIGTERM/SIGINT (forwarded by the daemon), on the daemon's death
(PR_SET_PDEATHSIG) or when its parent is no longer the daemon.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from claude_janitor.daemon.clock import REAL
from claude_janitor.daemon.follower import audit_since
from claude_janitor.daemon.index import Index, Key
from claude_janitor.daemon.logs import setup_logging
from claude_janitor.daemon.notify import WATCHDOG_ENV, sd_notify
from claude_janitor.daemon.schedule import load_settings
from claude_janitor.daemon.work import Stopping, full_sweep_work, gone_rows, incremental_result, incremental_work
from claude_janitor.errors import ExitStatus, JanitorError, LockBusy
from claude_janitor.fs.procs import die_with_parent, on_stop_signals
from claude_janitor.model import Policy

if TYPE_CHECKING:
    from claude_janitor.sweep.plan import Env

log = logging.getLogger("janitor.daemon")

CHILD_COMMAND = "_daemon-full-sweep"  # hidden `janitor` command: the daemon's full sweep in a process of its own
# Told to stop (or orphaned), the process finishes at most the session in hand. Still running this long after,
# it is stuck: it dumps every thread's stack to the log and exits (faulthandler's own C thread does it, so
# it works even when no Python code can run), rather than hold the daemon's locks for good. A removal it
# left half done is finished by the next sweep's recovery, as after a kill -9.
STOP_DEADLINE = 120.0
STOP_DEADLINE_ENV = "JANITOR_TEST_STOP_DEADLINE"  # tests: a shorter deadline (seconds)


class ChildFailed(JanitorError):
    """The full sweep's process crashed, was killed, or said nothing usable."""


# ---- the daemon's side ----------------------------------------------------------------------------------


class ChildRunner:
    """Starts `janitor _daemon-full-sweep`, hands it the policy, waits for its result; ``signal`` forwards a
    signal to the one running (the daemon's SIGTERM/SIGINT)."""

    def __init__(self, env: Env, stopping: threading.Event) -> None:
        self.env = env
        self.roots = [str(r) for r in env.roots]
        self.stopping = stopping
        self.proc: subprocess.Popen[bytes] | None = None  # the one running
        self._lock = threading.Lock()

    def command(self, now: float, audit_from: str, lock_fds: tuple[int, ...]) -> list[str]:
        cmd = [sys.executable, "-m", "claude_janitor", CHILD_COMMAND, "--now", repr(now),
               "--parent-pid", str(os.getpid()), "--audit-from", audit_from]  # fmt: skip
        for r in self.roots:
            cmd += ["--claude-dir", r]
        if self.env.config_path:
            cmd += ["--config", str(self.env.config_path)]
        if self.env.default_root:
            cmd.append("--default-root")
        if log.isEnabledFor(logging.DEBUG):
            cmd.append("-v")
        for fd in lock_fds:
            cmd += ["--lock-fd", str(fd)]
        return cmd

    def run(self, pol: Policy, now: float, audit_from: str, due: list[Key] | None,
            lock_fds: tuple[int, ...]) -> dict[str, Any]:  # fmt: skip
        """Run it and wait; its JSON result (ChildFailed if it crashed or said nothing usable, Stopping if
        the daemon stops before it started). ``lock_fds``: the locks the child holds with the daemon."""
        import pickle

        from claude_janitor import __version__

        cmd = self.command(now, audit_from, lock_fds)
        env = {k: v for k, v in os.environ.items() if k not in WATCHDOG_ENV}
        payload = pickle.dumps({"version": __version__, "policy": pol, "due": due})
        # Started (and waited for) from the scheduler's worker thread: PR_SET_PDEATHSIG fires when the thread
        # that started the child ends, and this one lives as long as the daemon (it is blocked here meanwhile).
        with self._lock:
            if self.stopping.is_set():
                raise Stopping()
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, pass_fds=lock_fds)
            self.proc = proc
        what = "wake-up" if due else "full sweep"
        log.debug("%s: process %d", what, proc.pid)
        sd_notify(f"STATUS={what} in progress (process {proc.pid})")
        try:
            out, _ = proc.communicate(payload)
        finally:
            with self._lock:
                self.proc = None
                if proc.poll() is None:  # communicate() was interrupted: never leave it behind unwaited
                    proc.terminate()
                    proc.wait()
        return _result(out, proc.returncode, proc.pid)

    def signal(self, sig: int) -> int | None:
        """Send ``sig`` to the process running; its pid (None if none runs)."""
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(sig)
                    return self.proc.pid
        return None


def _result(out: bytes, rc: int, pid: int) -> dict[str, Any]:
    """The child's last line of output, a JSON object, with its pid; ChildFailed without one."""
    res: dict[str, Any] | None = None
    lines = out.decode(errors="replace").strip().splitlines()
    if lines:
        with contextlib.suppress(ValueError):
            got = json.loads(lines[-1])
            res = got if isinstance(got, dict) else None
    if res is None or (rc != 0 and not res.get("error")):
        how = f"exit status {rc}"
        if rc < 0:
            with contextlib.suppress(ValueError):
                how = f"killed by {signal.Signals(-rc).name}"
        raise ChildFailed(f"the full sweep's process {pid} failed ({how})")
    res["process"] = pid
    return res


# ---- the child's side -----------------------------------------------------------------------------------


def child_main(roots: list[str], config_path: str | None, default_root: bool, now: float, parent_pid: int,
               lock_fds: list[int], audit_from: str | None, verbose: bool) -> int:  # fmt: skip
    """`janitor _daemon-full-sweep`: one full sweep for the daemon, which reads its JSON result on stdout.

    The daemon's policy comes pickled on stdin; without it (or from another version of the janitor) the
    config is loaded as the daemon would. SIGTERM/SIGINT, the daemon's death (PR_SET_PDEATHSIG) or a new
    parent (the daemon died before that was set) stop the sweep between sessions. Exit 0 with a result
    (also when stopped), 2/… for a JanitorError, 3 if the sweep lock is held by another sweep; anything
    else is a crash."""
    # A plain flag, not a threading.Event: the handler runs between any two bytecodes of the main thread and
    # is re-entered when a second SIGTERM comes while it runs (systemd's and the daemon's, or the kernel's
    # parent-death signal and a ^C). Event.set takes a non-reentrant lock, and a second handler waiting for
    # the lock its first holds hung the process for good (seen: three nested handlers in Event.set).
    stopped = [False]  # set in place: however many signals come, nothing grows

    def on_signal(_sig: int) -> None:
        stopped[0] = True
        arm_stop_deadline()

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the daemon reloads; its sweep goes on with what it has
    on_stop_signals(on_signal)  # also unblocks them: the daemon's mask survives exec
    die_with_parent(signal.SIGTERM)
    setup_logging(verbose)

    def should_stop() -> bool:
        if stopped[0]:
            return True
        if os.getppid() != parent_pid:
            arm_stop_deadline()
            return True
        return False

    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.sweep.plan import Env

    env = Env(roots=[Path(r) for r in roots], dirs=janitor_dirs(), config_path=config_path,
              default_root=default_root)  # fmt: skip
    pol, due = _payload(sys.stdin.buffer.read())
    if should_stop():
        _emit({"stopped": "start"})
        return ExitStatus.OK
    try:
        _emit(_locked_sweep(env, pol, due, now, lock_fds, audit_from, should_stop))
        return ExitStatus.OK
    except Stopping:
        _emit({"stopped": "scan"})
        return ExitStatus.OK
    except LockBusy as e:
        _emit({"error": str(e), "busy": True})
        return e.exit_code
    except JanitorError as e:
        _emit({"error": str(e)})
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - reported to the daemon, with the traceback in the log
        log.exception("full sweep failed")
        _emit({"error": f"unexpected {type(e).__name__}: {e}", "crash": True})
        return ExitStatus.ACTIONS_FAILED


_deadline_armed = False


def arm_stop_deadline() -> None:
    """Once told to stop: exit with a dump of every thread's stack if still running STOP_DEADLINE seconds
    from now (see STOP_DEADLINE)."""
    global _deadline_armed
    if _deadline_armed:
        return
    _deadline_armed = True
    try:
        deadline = float(os.environ.get(STOP_DEADLINE_ENV) or STOP_DEADLINE)
    except ValueError:
        deadline = STOP_DEADLINE
    faulthandler.dump_traceback_later(deadline, exit=True, file=sys.stderr)


def _locked_sweep(env: Env, pol: Policy | None, due: list[Any] | None, now: float, lock_fds: list[int],
                  audit_from: str | None, should_stop: Any) -> dict[str, Any]:  # fmt: skip
    """The sweep under the daemon's locks (inherited), or under its own when run by itself."""
    from claude_janitor.fs.locks import SweepLocks, hold_inherited
    from claude_janitor.sweep.run import recover, recover_interrupted

    if lock_fds:
        hold_inherited(lock_fds)
        return _sweep(env, pol, due, now, audit_from, should_stop)
    with SweepLocks(env.dirs.lock_file, [str(r) for r in env.roots], wait=0.0):
        for note in recover_interrupted(env):  # removals a crash left half way (recovery.recover)
            log.warning("%s", note)
        recover(env)  # run by itself, not by a daemon (which settles the audit log before a sweep)
        return _sweep(env, pol, due, now, audit_from, should_stop)


def _sweep(env: Env, pol: Policy | None, due: list[Any] | None, now: float, audit_from: str | None,
           should_stop: Any) -> dict[str, Any]:  # fmt: skip
    if pol is None:
        pol = load_settings(env)[0]
    index = Index(env.dirs.index_db)
    try:
        if due is None:
            return full_sweep_work(env, pol, now, index, should_stop=should_stop, audit_from=audit_from)
        # a big wake-up: the due sessions only
        rows = [e for k in due if (e := index.get((str(k[0]), str(k[1]), str(k[2])))) is not None]
        outcomes, gone = incremental_work(env, pol, now, index, rows, should_stop=should_stop)
        pos, restored = audit_since(env.dirs.audit_log, audit_from)
        res = incremental_result(outcomes, now, REAL.time())
        res.update({"gone": gone_rows(gone), "audit_pos": pos, "restored": [list(k) for k in restored]})
        return res
    finally:
        index.close()


def _emit(result: dict[str, Any]) -> None:
    """Write the result line for the daemon (with this process's pid and peak memory)."""
    import resource

    result["pid"] = os.getpid()
    result["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    try:
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The daemon is gone (killed): nobody reads the result. Exit quietly, also at interpreter exit
        # (whose own flush of stdout would fail again).
        log.debug("the daemon is gone; its full sweep's result is dropped")
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _payload(data: bytes) -> tuple[Policy | None, list[Any] | None]:
    """What the daemon sent: its policy, if this version of the janitor can use it (else None: load the
    config), and the sessions due for a wake-up (None: a full sweep)."""
    if not data:
        return None, None
    import pickle

    from claude_janitor import __version__

    try:
        got = pickle.loads(data)  # noqa: S301 - from our own parent, over a pipe
        due = got.get("due")
        due = list(due) if isinstance(due, list | tuple) else None
        if got.get("version") == __version__ and isinstance(got.get("policy"), Policy):
            return got["policy"], due
    except Exception as e:  # noqa: BLE001 - e.g. the janitor was upgraded under a running daemon
        log.warning("cannot use the daemon's policy (%s): loading the config", e)
        return None, None
    log.warning("the daemon runs another version of the janitor: loading the config")
    return None, due
