"""Benchmarks: claude-janitor against `find` on identical copies of a generated cache, in one run.

    python benchmarks/run.py --sizes 10000 100000 --work /work/bench-tmp

For each size: generate a cache (benchmarks/gencache.py: transcripts, per-session folders, file-history,
session-env, tasks, todos, debug, plus shared stores; some 10 MB and 100 MB transcripts), then measure

  scan       `janitor sweep --dry-run` vs `find DIR -printf '%p %s %T@\\n'` (same tree, warm cache, median of 3,
             alternating) → ratio, regular files/s and entries/s
  sweep      `janitor sweep --older-than 31d` vs `find DIR -type f -mtime +30 -delete`, each on its own
             `cp -a` copy, alternating, best of 2 (find's +30 means "31 whole days or more": the same
             sessions) → ratio; also vs `find DIR -mtime +30 -delete`, which removes the emptied dirs too, as
             the janitor does; and, on each fresh copy first, `janitor sweep --dry-run` vs `find -printf`
             (the scan ratio again, in the same minutes as the sweep's); 1-minute load with each run; with
             --baseline DIR also the same sweep by the janitor of another checkout, on its own fresh copy
  sweep-loaded  the same with two CPU burners (`python -c 'while 1: pass'`) running during every timed
             command of both sides
  archive    `janitor sweep --action archive` vs `janitor sweep` (delete) of the same sessions, each on its own
             `cp -a` copy, alternating (--archive-reps rounds, best of each) → ratio; with `uptime`'s load
             beside each run (the machine may be shared), sessions archived and the archives' size
  tail       last-activity read (cache.read_tail) of a 1 KB and a 100 MB transcript: time and bytes read
  daemon     the daemon's first full sweep in its child process vs in-process vs a one-shot `janitor sweep`;
             incremental sweep from the daemon's index (~1% of sessions due) vs a full dry-run scan of the
             same tree; then `janitor daemon` idle (empty cache; after its first full sweep of a fresh copy):
             context switches, RSS and peak RSS over a quiet window, and that no child is left
  startup    `janitor --help` wall time (median of 15)
  stores     a Claude dir of store entries only (4000 paste-cache files, 400 image-cache folders of 4 files):
             `janitor sweep` (every entry staged, checked and deleted, stores.py) vs `find` deleting the same
             entries, each on its own `cp -a` copy, alternating, median of 3 → ratio; with --baseline DIR
             also the janitor of another checkout (e.g. one that removed store entries in place) → ratio
  memory     peak RSS (wait4) of `janitor report`, `report --format json`, `sweep --dry-run` (table and --json),
             a real `sweep` and the daemon's full-sweep child (`janitor _daemon-full-sweep`), each also on an
             empty Claude dir: bytes per session = (peak - empty) / sessions (--only memory)

Results go to benchmarks/out/results-<size>.json and a markdown table on stdout. Copies are deleted as soon
as they are measured; the generated cache is kept unless --clean.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from gencache import generate  # noqa: E402

JANITOR = [sys.executable, "-m", "claude_janitor"]


def sh(cmd: list[str], **kw) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def janitor_env(work: Path, name: str) -> dict[str, str]:
    base = work / f"xdg-{name}"
    env = dict(os.environ)
    env.update(
        {
            "XDG_CONFIG_HOME": str(base / "config"),
            "XDG_STATE_HOME": str(base / "state"),
            "XDG_DATA_HOME": str(base / "data"),
            "XDG_CACHE_HOME": str(base / "cache"),
            "CLAUDE_JANITOR_POLICY": str(base / "no-policy.toml"),
            "CLAUDE_JANITOR_MANAGED_DIR": str(base / "no-managed"),
        }
    )
    env.pop("CLAUDE_CONFIG_DIR", None)
    return env


def count_tree(root: Path) -> tuple[int, int]:
    files = entries = 0
    for _, dirs, fs in os.walk(root):
        entries += len(dirs) + len(fs)
        files += len(fs)
    return files, entries


def copy(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    subprocess.run(["sync"], check=True)


def bench_scan(gen: Path, work: Path, files: int, entries: int, reps: int = 3) -> dict:
    env = janitor_env(work, "scan")
    fmt = "%p %s %T@\n"
    sh(["find", str(gen), "-printf", fmt])  # warm the cache
    sh([*JANITOR, "sweep", "--dry-run", "--older-than", "31d", "--force", "--claude-dir", str(gen)], env=env)
    f_times, j_times = [], []
    for _ in range(reps):
        f_times.append(sh(["find", str(gen), "-printf", fmt]))
        j_times.append(
            sh([*JANITOR, "sweep", "--dry-run", "--older-than", "31d", "--force", "--claude-dir", str(gen)], env=env)
        )
    f, j = statistics.median(f_times), statistics.median(j_times)
    return {
        "find_printf_s": f,
        "janitor_dry_run_s": j,
        "ratio": j / f,
        "files_per_s": files / j,
        "entries_per_s": entries / j,
        "find_entries_per_s": entries / f,
        "find_runs": f_times,
        "janitor_runs": j_times,
    }


class Burners:
    """``n`` CPU-burning processes (``python -c 'while 1: pass'``) while the block runs: a loaded machine."""

    def __init__(self, n: int) -> None:
        self.n, self.procs = n, []

    def __enter__(self) -> Burners:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(self.n)]
        if self.n:
            time.sleep(0.5)  # running before the timed command starts
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def baseline_cmd(baseline: Path) -> list[str]:
    """The janitor of another checkout, run from there (its package before or after the rename)."""
    pkg = "claude_janitor" if (baseline / "claude_janitor").is_dir() else "janitor"
    return [sys.executable, "-m", pkg]


def bench_sweep(gen: Path, work: Path, reps: int = 2, burners: int = 0, baseline: Path | None = None) -> dict:
    """Removal is noisy on a VM (the disk's discards): ``reps`` rounds of find, janitor alternating, each on
    a fresh copy; the ratio is of the best run of each (all runs are in the result, each with the 1-minute
    load average when it started). On each fresh copy the listing side runs first: `find -printf` before
    find's delete, `janitor sweep --dry-run` before the janitor's sweep (the scan ratio, in the same run).
    ``burners``: that many CPU-burning processes run during every timed command (the "loaded" variant)."""
    a, b, c = work / "copy-find", work / "copy-janitor", work / "copy-find-dirs"
    finds: list[float] = []
    runs: list[float] = []
    prints: list[float] = []
    drys: list[float] = []
    loads: dict[str, list[float]] = {"find": [], "janitor": []}
    base_runs: list[float] = []
    fmt = "%p %s %T@\n"
    for _ in range(reps):
        copy(gen, a)
        before = count_tree(a)[0]
        with Burners(burners):
            loads["find"].append(os.getloadavg()[0])
            prints.append(sh(["find", str(a), "-printf", fmt]))
            finds.append(sh(["find", str(a), "-type", "f", "-mtime", "+30", "-delete"]))
        find_deleted = before - count_tree(a)[0]
        shutil.rmtree(a)
        copy(gen, b)
        env = janitor_env(work, "sweep")
        shutil.rmtree(work / "xdg-sweep", ignore_errors=True)
        with Burners(burners):
            loads["janitor"].append(os.getloadavg()[0])
            drys.append(
                sh([*JANITOR, "sweep", "--dry-run", "--older-than", "31d", "--force", "--claude-dir", str(b)], env=env)
            )
            t = time.perf_counter()
            p = subprocess.run(
                [*JANITOR, "sweep", "--json", "--older-than", "31d", "--force", "--claude-dir", str(b)],
                env=env,
                capture_output=True,
                text=True,
            )
            runs.append(time.perf_counter() - t)
        doc = json.loads(p.stdout)
        left_files = count_tree(b)[0]
        shutil.rmtree(b)
        if baseline is not None:  # the same sweep by another checkout's janitor, on its own fresh copy
            copy(gen, b)
            shutil.rmtree(work / "xdg-baseline", ignore_errors=True)
            with Burners(burners):
                loads.setdefault("baseline", []).append(os.getloadavg()[0])
                base_runs.append(
                    sh(
                        [*baseline_cmd(baseline), "sweep", "--json", "--older-than", "31d", "--force",
                         "--claude-dir", str(b)],
                        env=janitor_env(work, "baseline"),
                        cwd=baseline,
                    )
                )  # fmt: skip
            shutil.rmtree(b)
    copy(gen, c)  # files and the emptied dirs too (-delete implies -depth): the same work as the janitor's
    with Burners(burners):
        fd = sh(["find", str(c), "-mtime", "+30", "-delete"])
    shutil.rmtree(c)
    f, j = min(finds), min(runs)
    return {
        "find_delete_s": f,
        "janitor_sweep_s": j,
        "ratio": j / f,
        "find_runs": finds,
        "janitor_runs": runs,
        "find_files_deleted": find_deleted,
        "find_delete_files_and_dirs_s": fd,
        "ratio_vs_find_files_and_dirs": j / fd,
        "janitor_sessions_removed": doc["totals"]["results"].get("ok", 0),
        "janitor_files_deleted": before - left_files,
        "janitor_exit": p.returncode,
        "find_printf_s": min(prints),
        "janitor_dry_run_s": min(drys),
        "dry_run_ratio": min(drys) / min(prints),
        "find_printf_runs": prints,
        "janitor_dry_runs": drys,
        "burners": burners,
        "load_at_start": loads,
        **(
            {
                "baseline": str(baseline),
                "baseline_runs": base_runs,
                "baseline_ratio": min(base_runs) / f,
                "ratio_janitor_over_baseline": j / min(base_runs),
            }
            if baseline is not None
            else {}
        ),
    }


def load_avg() -> float:
    return os.getloadavg()[0]


def bench_archive(gen: Path, work: Path, reps: int = 1) -> dict:
    """Archive vs delete of the same sessions (``--older-than 31d``), each on a fresh ``cp -a`` copy, in
    turn; the ratio is of the best run of each. The load average (1 min) is noted beside each run."""
    runs: dict[str, list[dict]] = {"delete": [], "archive": []}
    for _ in range(reps):
        for mode in ("delete", "archive"):
            c = work / f"copy-archive-bench-{mode}-{os.getpid()}"  # (two runs may share --work)
            copy(gen, c)
            xdg = work / f"xdg-archive-bench-{mode}-{os.getpid()}"
            shutil.rmtree(xdg, ignore_errors=True)
            env = janitor_env(work, f"archive-bench-{mode}-{os.getpid()}")
            before = count_tree(c)[0]
            load = load_avg()
            t = time.perf_counter()
            p = subprocess.run(
                [
                    *JANITOR,
                    "sweep",
                    "--json",
                    "--older-than",
                    "31d",
                    "--force",
                    "--claude-dir",
                    str(c),
                    *(["--action", "archive"] if mode == "archive" else []),
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            secs = time.perf_counter() - t
            doc = json.loads(p.stdout)
            adir = xdg / "data" / "claude-janitor" / "archives"
            archives = [f for f in adir.rglob("*.tar.zst")] if adir.is_dir() else []
            runs[mode].append(
                {
                    "s": secs,
                    "load_before": load,
                    "load_after": load_avg(),
                    "exit": p.returncode,
                    "sessions_ok": doc["totals"]["results"].get("ok", 0),
                    "files_removed": before - count_tree(c)[0],
                    "archives": len(archives),
                    "archive_bytes": sum(f.stat().st_size for f in archives),
                }
            )
            shutil.rmtree(c)
            shutil.rmtree(xdg, ignore_errors=True)
    d, a = (min(runs[m], key=lambda r: r["s"]) for m in ("delete", "archive"))
    return {
        "delete_sweep_s": d["s"],
        "archive_sweep_s": a["s"],
        "ratio": a["s"] / d["s"],
        "sessions": a["sessions_ok"],
        "same_sessions": a["sessions_ok"] == d["sessions_ok"],
        "runs": runs,
    }


def bench_tail(work: Path) -> dict:
    from claude_janitor.cache.transcript import read_tail
    from tests.helpers.cachegen import record

    d = work / "tail"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    line = (json.dumps(record("s", "/p", 1_700_000_000, 0, "user", "x" * 800)) + "\n").encode()
    last = (json.dumps(record("s", "/p", 1_790_000_000, 1, "assistant", "done")) + "\n").encode()
    files = {"1KB": line[: 1024 - len(last)] + b"\n" + last}
    big = line * (100 * 1024 * 1024 // len(line)) + last
    files["100MB"] = big
    files["100MB, last 5 MB line has no timestamp"] = (
        line * (95 * 1024 * 1024 // len(line)) + last + b'{"type":"x","pad":"' + b"y" * (5 * 1024 * 1024) + b'"}\n'
    )
    out = {}
    for name, data in files.items():
        p = d / f"{len(out)}.jsonl"
        p.write_bytes(data)
        reps = 300
        fd = os.open(p, os.O_RDONLY)
        info = read_tail(fd, os.fstat(fd).st_size)
        t = time.perf_counter()
        for _ in range(reps):
            read_tail(fd, os.fstat(fd).st_size)
        us = (time.perf_counter() - t) / reps * 1e6
        os.close(fd)
        out[name] = {
            "size": len(data),
            "us_per_read": us,
            "bytes_read": info.bytes_read,
            "found_timestamp": info.last_time is not None,
        }
    shutil.rmtree(d)
    return out


def bench_daemon(gen: Path, work: Path, now: float, idle: bool = True) -> dict:
    """Incremental sweep from the index vs a full scan; then an idle daemon's wake-ups and RSS."""
    try:
        from claude_janitor.daemon import main as dmod
        from claude_janitor.daemon import sweeper
    except ImportError:
        return {"pending": "janitor.daemon is not there yet"}
    from claude_janitor.config.paths import janitor_dirs
    from claude_janitor.sweep.plan import Env, build_plan

    dcopy = work / "copy-daemon"
    copy(gen, dcopy)
    env_vars = janitor_env(work, "daemon")
    shutil.rmtree(work / "xdg-daemon", ignore_errors=True)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env_vars)
    res: dict = {}
    # The same first sweep as a one-shot `janitor sweep` (same policy, same time), on its own copy.
    scopy = work / "copy-daemon-sweep"
    copy(gen, scopy)
    senv = janitor_env(work, "daemon-sweep")
    shutil.rmtree(work / "xdg-daemon-sweep", ignore_errors=True)
    t = time.perf_counter()
    p = subprocess.run(
        [*JANITOR, "sweep", "--json", "--claude-dir", str(scopy)], env=senv, capture_output=True, text=True
    )
    res["janitor_sweep_same_policy_s"] = time.perf_counter() - t
    res["janitor_sweep_removed"] = json.loads(p.stdout)["totals"]["results"].get("ok", 0) if p.stdout else None
    shutil.rmtree(scopy)
    try:
        # The same first full sweep run in the benchmark's own process (full_in_child=False), on its own copy.
        icopy = work / "copy-daemon-inproc"
        copy(gen, icopy)
        shutil.rmtree(work / "xdg-daemon-inproc", ignore_errors=True)
        os.environ.clear()
        os.environ.update(janitor_env(work, "daemon-inproc"))
        d = dmod.Daemon(Env(roots=[icopy], dirs=janitor_dirs()), full_in_child=False)
        d.watcher.start()
        rss0 = _status(os.getpid(), "VmRSS")
        t = time.perf_counter()
        out = d.sweeper.full(now)
        res["daemon_first_full_sweep_in_process_s"] = time.perf_counter() - t
        res["in_process_removed"] = out["acted"]
        res["in_process_rss_growth_kb"] = _status(os.getpid(), "VmRSS") - rss0
        d.watcher.stop()
        d.index.close()
        shutil.rmtree(icopy)
        os.environ.clear()
        os.environ.update(env_vars)
        # As `janitor daemon` runs it: in a child process.
        env = Env(roots=[dcopy], dirs=janitor_dirs())
        d = dmod.Daemon(env)
        d.watcher.start()  # as in the daemon: its own deletions are seen by its watcher
        t = time.perf_counter()
        out = d.sweeper.full(now)
        res["daemon_first_full_sweep_s"] = time.perf_counter() - t
        res["first_full_removed"] = out["acted"]
        res["child_max_rss_kb"] = out.get("max_rss_kb")
        res["daemon_full_vs_janitor_sweep"] = res["daemon_first_full_sweep_s"] / res["janitor_sweep_same_policy_s"]
        res["child_vs_in_process"] = res["daemon_first_full_sweep_s"] / res["daemon_first_full_sweep_in_process_s"]
        d.watcher.flush()
        t = time.perf_counter()
        d.judge_gone()  # the sessions its own sweep removed, seen by the watcher
        res["judge_gone_after_full_s"] = time.perf_counter() - t
        d.watcher.stop()
        entries = d.index.all()
        dues = sorted(e.due for e in entries if e.due is not None)
        res["indexed_sessions"] = len(entries)
        k = max(1, len(dues) // 100)
        t1, t2 = dues[k - 1], dues[2 * k - 1]
        # The first wake-up after a full sweep also reads that sweep's audit records (once).
        t = time.perf_counter()
        outs = d.sweeper.incremental(t1)
        res["first_incremental_after_full_s"] = time.perf_counter() - t
        res["first_incremental_acted"] = outs["acted"]
        t = time.perf_counter()
        plan, _, _ = build_plan(env, t2)
        res["full_scan_s"] = time.perf_counter() - t
        res["full_scan_sessions"] = len(plan.decisions)
        t = time.perf_counter()
        outs = d.sweeper.incremental(t2)  # steady state: the next 1% of sessions come due
        res["incremental_s"] = time.perf_counter() - t
        res["incremental_due"] = k
        res["incremental_acted"] = outs["acted"]
        res["incremental_in_process"] = k <= sweeper.WAKE_IN_PROCESS
        res["ratio"] = res["incremental_s"] / res["full_scan_s"]
        t = time.perf_counter()
        d.sweeper.incremental(t2)  # nothing due any more
        res["incremental_nothing_due_s"] = time.perf_counter() - t
        # The usual wake-up: the next session to expire, alone.
        nxt = min(e.due for e in d.index.all() if e.due is not None)
        t = time.perf_counter()
        outs = d.sweeper.incremental(nxt)
        res["incremental_one_due_s"] = time.perf_counter() - t
        res["incremental_one_due_acted"] = outs["acted"]
        res["ratio_one_due"] = res["incremental_one_due_s"] / res["full_scan_s"]
        d.index.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if idle:
        empty = work / "empty-claude"
        shutil.rmtree(empty, ignore_errors=True)
        (empty / "projects").mkdir(parents=True)
        shutil.rmtree(work / "xdg-daemon-empty", ignore_errors=True)
        res["idle_baseline_empty_cache"] = bench_idle(empty, janitor_env(work, "daemon-empty"), window=5.0)
        shutil.rmtree(empty)
        res["idle_after_bench"] = bench_idle(dcopy, env_vars)
        # A daemon started on the whole cache: its first full sweep (in its child) removes what is expired,
        # its watcher sees every removal; then idle.
        fresh = work / "copy-daemon-idle"
        copy(gen, fresh)
        shutil.rmtree(work / "xdg-daemon-idle", ignore_errors=True)
        res["idle"] = bench_idle(fresh, janitor_env(work, "daemon-idle"))
        shutil.rmtree(fresh)
        res["heavy_wake_ups"] = bench_heavy_wakes(work)
    shutil.rmtree(dcopy)
    return res


def _ctx(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def _status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def bench_idle(root: Path, env: dict[str, str], window: float = 20.0) -> dict:
    state = Path(env["XDG_STATE_HOME"]) / "claude-janitor" / "daemon.json"
    # An earlier daemon's state (idle_after_bench follows the in-process runs, same state dir) says a full sweep
    # was done: the wait below would end at once and time this daemon's own first sweep as its idle window.
    state.unlink(missing_ok=True)
    p = subprocess.Popen(
        [*JANITOR, "daemon", "--claude-dir", str(root)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    started = time.monotonic()
    while time.monotonic() < deadline:
        try:
            st = json.loads(state.read_text())
            if st.get("last_full_sweep") or (st.get("last_sweep") or {}).get("kind") == "full":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    ready = time.monotonic() - started
    time.sleep(2.0)  # let the post-sweep bookkeeping settle
    threads = len(os.listdir(f"/proc/{p.pid}/task"))
    c0 = _ctx(p.pid)
    time.sleep(window)
    c1 = _ctx(p.pid)
    kids = [
        int(x)
        for tid in os.listdir(f"/proc/{p.pid}/task")
        for x in Path(f"/proc/{p.pid}/task/{tid}/children").read_text().split()
    ]
    last = {}
    try:
        last = json.loads(state.read_text()).get("last_sweep") or {}
    except (OSError, ValueError):
        pass
    out = {
        "startup_and_full_sweep_s": ready,
        "window_s": window,
        "threads": threads,
        "full_sweep_process": last.get("process"),
        "full_sweep_process_max_rss_kb": last.get("max_rss_kb"),
        "full_sweep_acted": last.get("acted"),
        "context_switches_in_window": c1 - c0,
        "rss_kb": _status(p.pid, "VmRSS"),
        "peak_rss_kb": _status(p.pid, "VmHWM"),
        "children_at_idle": len(kids),
        "children_rss_kb": sum(_status(k, "VmRSS") for k in kids),
    }
    try:
        st = json.loads(state.read_text())
        out["next_expiry"] = st.get("next_expiry")
    except (OSError, ValueError):
        pass
    p.send_signal(signal.SIGTERM)
    p.wait(120)
    return out


def bench_heavy_wakes(work: Path, rounds: int = 8, per_round: int = 3000) -> dict:
    """The issue-16 soak: a running daemon, then ``rounds`` bursts of ``per_round`` transcripts that all expire
    together (each burst one wake-up); RSS and threads after each, then idle."""
    root = work / "heavy-claude"
    shutil.rmtree(root, ignore_errors=True)
    proj = root / "projects" / "-w-heavy"
    proj.mkdir(parents=True)
    env = janitor_env(work, "daemon-heavy")
    shutil.rmtree(work / "xdg-daemon-heavy", ignore_errors=True)
    cfg = Path(env["XDG_CONFIG_HOME"]) / "claude-janitor" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('retention = "1h"\ngrace = "0s"\n')
    from tests.helpers.cachegen import make_session

    make_session(root, "/w/keep", time.time() + 86400, side=False)  # not every session at once: no guard
    p = subprocess.Popen(
        [*JANITOR, "daemon", "--claude-dir", str(root)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = Path(env["XDG_STATE_HOME"]) / "claude-janitor" / "daemon.json"

    def st() -> dict:
        try:
            return json.loads(state.read_text())
        except (OSError, ValueError):
            return {}

    deadline = time.monotonic() + 120
    while not st().get("last_full_sweep") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    out: dict = {
        "rounds": rounds,
        "per_round": per_round,
        "rss_kb_start": _status(p.pid, "VmRSS"),
        "threads_start": len(os.listdir(f"/proc/{p.pid}/task")),
        "after_round": [],
    }
    body = (json.dumps({"type": "user", "message": {"role": "user", "content": "hello"}}) + "\n") * 5
    for r in range(rounds):
        t = time.time() - 3600 + 3  # all expire 3 s from now
        proj.mkdir(parents=True, exist_ok=True)  # an empty project folder goes with a full sweep
        names = []
        for i in range(per_round):
            f = proj / f"{r:04d}{i:04d}-0000-4000-8000-{i:012d}.jsonl"
            f.write_text(body)
            os.utime(f, (t, t))
            names.append(f)
        started = time.monotonic()
        while any(f.exists() for f in names[-50:]) or any(f.exists() for f in names):
            if time.monotonic() - started > 300:
                break
            time.sleep(0.5)
        while (st().get("sweeping") or st().get("index_sessions", 0) > 1) and time.monotonic() - started < 300:
            time.sleep(0.2)
        time.sleep(1.0)
        out["after_round"].append(
            {
                "s": round(time.monotonic() - started, 2),
                "rss_kb": _status(p.pid, "VmRSS"),
                "threads": len(os.listdir(f"/proc/{p.pid}/task")),
                "left": sum(f.exists() for f in names),
                "process": (st().get("last_sweep") or {}).get("process"),
            }
        )
        print(f"   heavy round {r}: {out['after_round'][-1]}", file=sys.stderr)
    time.sleep(2.0)
    c0 = _ctx(p.pid)
    time.sleep(5.0)
    out.update(
        {
            "rss_kb_idle_after": _status(p.pid, "VmRSS"),
            "peak_rss_kb": _status(p.pid, "VmHWM"),
            "threads_idle_after": len(os.listdir(f"/proc/{p.pid}/task")),
            "context_switches_idle_5s": _ctx(p.pid) - c0,
        }
    )
    p.send_signal(signal.SIGTERM)
    p.wait(120)
    shutil.rmtree(root, ignore_errors=True)
    return out


def bench_startup(work: Path, reps: int = 15) -> dict:
    env = janitor_env(work, "startup")
    sh([*JANITOR, "--help"], env=env)
    runs = [sh([*JANITOR, "--help"], env=env) for _ in range(reps)]
    exe = shutil.which("janitor")
    script = [sh([exe, "--help"], env=env) for _ in range(reps)] if exe else []
    base = [sh([sys.executable, "-c", "pass"]) for _ in range(reps)]
    return {
        "python_m_janitor_help_ms": statistics.median(runs) * 1e3,
        "min_ms": min(runs) * 1e3,
        "janitor_script_help_ms": statistics.median(script) * 1e3 if script else None,
        "bare_python_ms": statistics.median(base) * 1e3,
    }


def make_stores(top: Path, files: int, dirs: int, t: float) -> None:
    for i in range(files):
        p = top / "paste-cache" / f"{i:016x}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x" * 2000)
        os.utime(p, (t, t))
    for i in range(dirs):
        d = top / "image-cache" / f"{i:08x}-0000-4000-8000-000000000000"
        (d / "sub").mkdir(parents=True)
        for j in range(4):
            (d / ("sub" if j % 2 else "") / f"{j}.png").write_bytes(b"y" * 3000)
        for dp, dn, fn in os.walk(d, topdown=False):
            for n in dn + fn:
                os.utime(os.path.join(dp, n), (t, t))
        os.utime(d, (t, t))


def bench_stores(work: Path, files: int = 4000, dirs: int = 400, reps: int = 3, baseline: Path | None = None) -> dict:
    """Store entries removed by `janitor sweep` (staged like sessions) vs `find -delete` of the same (and
    vs the janitor of the checkout ``baseline``, run from there)."""
    now = time.time()
    gen = work / "gen-stores"
    if gen.exists():
        shutil.rmtree(gen)
    make_stores(gen, files, dirs, now - 90 * 86400)
    env = janitor_env(work, "stores")
    times: dict[str, list[float]] = {"janitor": [], "find": [], **({"baseline": []} if baseline else {})}
    sides = list(times)
    for rep in range(reps):
        for side in sides if rep % 2 == 0 else sides[::-1]:
            c = work / f"stores-{side}"
            copy(gen, c)
            if side != "find":
                times[side].append(
                    sh(
                        [*JANITOR, "sweep", "--claude-dir", str(c), "--now", str(now)],
                        env=env,
                        cwd=baseline if side == "baseline" else None,
                    )
                )
            else:
                times[side].append(
                    sh(["find", str(c / "paste-cache"), str(c / "image-cache"), "-mindepth", "1", "-delete"])
                )
            left = sum(1 for _ in (c / "paste-cache").iterdir()) + sum(1 for _ in (c / "image-cache").iterdir())
            assert left == 0, (side, left)
            shutil.rmtree(c)
    shutil.rmtree(gen)
    j, f = statistics.median(times["janitor"]), statistics.median(times["find"])
    out = {
        "entries": files + dirs,
        **{f"{k}_s": v for k, v in times.items()},
        "ratio_janitor_over_find": j / f,
        "load": os.getloadavg(),
    }
    if baseline:
        out["ratio_janitor_over_baseline"] = j / statistics.median(times["baseline"])
    return out


def peak_rss_kb(cmd: list[str], env: dict[str, str], stdin: int | None = None) -> tuple[int, int]:
    """(max RSS in KiB, exit status) of one process, its forked workers included (wait4: the largest).

    Started by GNU time, a small process: Linux carries the RSS of the process that forked into a child's
    maximum across exec, so a child of this runner (hundreds of MB after generating a 100k cache) would
    report the runner's size, whatever its own."""
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(
            ["/usr/bin/time", "-o", out.name, "-f", "%M %x", *cmd],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=stdin,
        )
        kb, code = out.read().split()[-2:]
    return int(kb), int(code)


MEMORY_COMMANDS = {
    "report": ["report"],
    "report_json": ["report", "--format", "json"],
    "sweep_dry_run": ["sweep", "--dry-run", "--older-than", "31d", "--force"],
    "sweep_dry_run_json": ["sweep", "--dry-run", "--json", "--older-than", "31d", "--force"],
}


def bench_memory(gen: Path, work: Path, sessions: int, now: float) -> dict:
    """Peak RSS of each command on the generated cache (read-only ones on it, a real sweep and the daemon's
    full-sweep child each on its own `cp -a` copy), and of the same command on an empty Claude dir: the
    growth per session is (peak - empty) / sessions (issue 14: at most 2 KB a session)."""
    env = janitor_env(work, "memory")
    empty = work / "memory-empty-claude"
    empty.mkdir(exist_ok=True)
    out: dict = {}

    def one(name: str, args: list[str], root: Path, *, on_copy: bool = False) -> None:
        base, _ = peak_rss_kb([*JANITOR, *args, "--claude-dir", str(empty)], env)
        if on_copy:
            copy(gen, root)
        shutil.rmtree(work / "xdg-memory", ignore_errors=True)
        kb, rc = peak_rss_kb([*JANITOR, *args, "--claude-dir", str(root)], env)
        if on_copy:
            shutil.rmtree(root)
        out[name] = {
            "peak_rss_mb": kb / 1024,
            "empty_cache_mb": base / 1024,
            "exit": rc,
            "bytes_per_session": (kb - base) * 1024 / sessions,
        }
        print(
            f"   memory {name}: {kb / 1024:.1f} MB (empty cache {base / 1024:.1f} MB), "
            f"{(kb - base) * 1024 / sessions:.0f} B/session",
            file=sys.stderr,
        )

    for name, args in MEMORY_COMMANDS.items():
        one(name, args, gen)
    one("sweep", ["sweep", "--older-than", "31d", "--force"], work / "copy-memory", on_copy=True)
    # The daemon's full-sweep child, run as the daemon runs it (no policy on stdin: it loads the config). Its
    # parent is GNU time (peak_rss_kb), which it must name: a child whose parent is not the one named stops
    # before it scans (the daemon died), as it did here when the runner's pid was passed.
    for name, root in (("daemon_child_empty", empty), ("daemon_child", work / "copy-memory")):
        if root != empty:
            copy(gen, root)
        shutil.rmtree(work / "xdg-memory", ignore_errors=True)
        child = [*JANITOR, "_daemon-full-sweep", "--now", str(now), "--claude-dir", str(root), "--parent-pid"]
        script = " ".join(shlex.quote(w) for w in child) + ' "$PPID"'
        kb, rc = peak_rss_kb(["sh", "-c", f"exec {script}"], env, stdin=subprocess.DEVNULL)
        out[name] = {"peak_rss_mb": kb / 1024, "exit": rc}
        if root != empty:
            shutil.rmtree(root)
    out["daemon_child"]["bytes_per_session"] = (
        (out["daemon_child"]["peak_rss_mb"] - out["daemon_child_empty"]["peak_rss_mb"]) * 1024 * 1024 / sessions
    )
    print(f"   memory daemon full-sweep child: {out['daemon_child']['peak_rss_mb']:.1f} MB", file=sys.stderr)
    return out


def compile_bytecode(*trees: Path | None) -> None:
    """Bytecode as an installed janitor has it (pip compiles at install): where PYTHONDONTWRITEBYTECODE is set,
    every janitor process would otherwise compile its ~100 modules again (0.13 s of CPU), counted in --help,
    each sweep and each daemon child. The baseline checkout is compiled the same way."""
    for tree in trees:
        if tree is not None:
            compileall.compile_dir(tree, quiet=1, workers=1, rx=re.compile(r"/(\.venv|\.git|tests)/"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000])
    ap.add_argument("--work", type=Path, default=Path("/work/bench-tmp"))
    ap.add_argument("--only", nargs="*", default=["scan", "sweep", "tail", "daemon", "startup"])
    ap.add_argument("--clean", action="store_true", help="delete the generated caches at the end")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-daemon measurement")
    ap.add_argument("--sweep-reps", type=int, default=2, help="rounds of find/janitor sweeps (best of each)")
    ap.add_argument("--baseline", type=Path, help="stores, sweep: also time the janitor of this checkout")
    ap.add_argument("--archive-reps", type=int, default=1, help="rounds of delete/archive sweeps (best of each)")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    compile_bytecode(HERE.parent, a.baseline)
    outdir = HERE / "out"
    outdir.mkdir(exist_ok=True)
    if a.only == ["stores"]:  # its own tree: no session cache to generate
        got = bench_stores(a.work, baseline=a.baseline)
        print(json.dumps(got, indent=2))
        (outdir / "results-stores.json").write_text(json.dumps(got, indent=2))
        return
    for n in a.sizes:
        gen = a.work / f"gen-{n}"
        meta = gen.with_suffix(".json")
        if not gen.exists():
            t = time.perf_counter()
            info = generate(gen, sessions=n, big=5, huge=2)
            info["generate_s"] = time.perf_counter() - t
            meta.write_text(json.dumps(info))
        info = json.loads(meta.read_text())
        files, entries = count_tree(gen)
        out = outdir / f"results-{n}.json"
        r: dict = json.loads(out.read_text()) if out.exists() else {}  # a step run alone keeps the others'
        r.update(
            {
                "sessions": n,
                "files": files,
                "entries": entries,
                "bytes": info["bytes"],
                "generate_s": info.get("generate_s"),
            }
        )
        print(f"== {n} sessions: {files} files, {entries} entries", file=sys.stderr)
        for step in a.only:
            t = time.perf_counter()
            if step == "scan":
                r["scan"] = bench_scan(gen, a.work, files, entries)
            elif step == "sweep":
                r["sweep"] = bench_sweep(gen, a.work, a.sweep_reps, baseline=a.baseline)
            elif step == "archive":
                r["archive"] = bench_archive(gen, a.work, a.archive_reps)
            elif step == "sweep-loaded":  # two CPU burners during every timed command, both sides
                r["sweep-loaded"] = bench_sweep(gen, a.work, a.sweep_reps, burners=2, baseline=a.baseline)
            elif step == "tail":
                r["tail"] = bench_tail(a.work)
            elif step == "daemon":
                r["daemon"] = bench_daemon(gen, a.work, info["now"], idle=not a.no_idle)
            elif step == "startup":
                r["startup"] = bench_startup(a.work)
            elif step == "stores":
                r["stores"] = bench_stores(a.work, baseline=a.baseline)
            elif step == "memory":
                r["memory"] = bench_memory(gen, a.work, n, info["now"])
            print(
                f"   {step}: {time.perf_counter() - t:.0f} s  {json.dumps(r.get(step), default=str)[:400]}",
                file=sys.stderr,
            )
            out.write_text(json.dumps(r, indent=2, default=str))
        if a.clean:
            shutil.rmtree(gen)
            meta.unlink()


if __name__ == "__main__":
    main()
