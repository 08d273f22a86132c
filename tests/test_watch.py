"""The watcher on real inotify: transcript writes, moves and deletions reach the consumer in batches;
overflow and watch limits degrade without crashing."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from claude_janitor.daemon.clock import Clock
from claude_janitor.daemon.watch import Change, Inotify, Watcher, transcript_parts
from claude_janitor.daemon.watchdog_watch import WatchdogWatcher
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="inotify is Linux-only")


class Sink:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.overflows = 0
        self.lock = threading.Lock()

    def __call__(self, batch: list[Change]) -> None:
        with self.lock:
            self.changes += batch

    def overflow(self) -> None:
        self.overflows += 1

    def has(self, kind: str, rel: str) -> bool:
        with self.lock:
            return any(c.kind == kind and c.rel == rel for c in self.changes)


@pytest.fixture
def watched(tmp_path: Path):
    root = tmp_path / "claude"
    (root / "projects" / "p").mkdir(parents=True)
    sink = Sink()
    w = Watcher([str(root)], sink, sink.overflow, debounce=0.05)
    assert w.start() == {}
    yield root, sink, w
    w.stop()


def test_transcript_parts() -> None:
    assert transcript_parts("projects/p/abc.jsonl") == ("p", "abc")
    assert transcript_parts("projects/p/abc/subagents/a.jsonl") is None
    assert transcript_parts("projects/p/.jsonl") is None
    assert transcript_parts("todos/x.jsonl") is None


def test_create_append_move_delete_are_reported(watched) -> None:
    root, sink, w = watched
    t = root / "projects" / "p" / "s1.jsonl"
    t.write_text("{}\n")
    assert wait_for(lambda: sink.has("write", "projects/p/s1.jsonl"))
    with open(t, "a") as f:
        f.write("{}\n")
    (root / "projects" / "q").mkdir()
    os.rename(t, root / "projects" / "q" / "s1.jsonl")
    assert wait_for(lambda: sink.has("gone", "projects/p/s1.jsonl") and sink.has("write", "projects/q/s1.jsonl"))
    (root / "projects" / "q" / "s1.jsonl").unlink()
    assert wait_for(lambda: sink.has("gone", "projects/q/s1.jsonl"))
    # Subagent files and other things are not the index's business.
    (root / "projects" / "q" / "s2").mkdir()
    (root / "projects" / "q" / "s2" / "agent.jsonl").write_text("{}\n")
    (root / "projects" / "q" / "notes.txt").write_text("x")
    (root / "projects" / "q" / "s3.jsonl").write_text("{}\n")
    assert wait_for(lambda: sink.has("write", "projects/q/s3.jsonl"))
    assert not [c for c in sink.changes if "s2" in c.rel or "notes" in c.rel]


def test_a_project_dir_moved_away_is_reported_gone(watched, tmp_path: Path) -> None:
    root, sink, w = watched
    (root / "projects" / "p" / "s1.jsonl").write_text("{}\n")
    assert wait_for(lambda: sink.has("write", "projects/p/s1.jsonl"))
    os.rename(root / "projects" / "p", tmp_path / "elsewhere")
    assert wait_for(lambda: sink.has("dir-gone", "projects/p"))


def test_a_new_project_dir_is_watched_too(watched) -> None:
    root, sink, w = watched
    (root / "projects" / "new").mkdir()
    (root / "projects" / "new" / "s.jsonl").write_text("{}\n")
    assert wait_for(lambda: sink.has("write", "projects/new/s.jsonl"))


def test_a_queue_overflow_calls_back(watched) -> None:
    root, sink, w = watched
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    t = root / "projects" / "p" / "s.jsonl"
    assert w.watch_count == 2
    with w._lock:  # the reader thread cannot take events off the kernel queue meanwhile
        for i in range(limit // 2 + 10):  # IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE each
            (t.parent / f"f{i}").write_text("x")
    assert wait_for(lambda: sink.overflows == 1)
    # Events after the overflow still arrive.
    (root / "projects" / "p" / "after.jsonl").write_text("{}\n")
    assert wait_for(lambda: sink.has("write", "projects/p/after.jsonl"))


def test_only_projects_and_project_dirs_are_watched(watched) -> None:
    root, sink, w = watched
    for i in range(5):
        (root / "projects" / "p" / f"s{i}" / "subagents").mkdir(parents=True)
        (root / "projects" / "p" / f"s{i}" / "subagents" / "a.jsonl").write_text("{}\n")
    (root / "projects" / "p" / "t.jsonl").write_text("{}\n")
    assert wait_for(lambda: sink.has("write", "projects/p/t.jsonl"))
    assert w.watch_count == 2  # projects/ and projects/p: not one per session folder
    shutil.rmtree(root / "projects" / "p" / "s0")
    assert w.ensure() == {} and w.watch_count == 2


def test_a_dir_moved_in_reports_its_transcripts_and_is_watched(watched, tmp_path: Path) -> None:
    root, sink, w = watched
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "m.jsonl").write_text("{}\n")
    os.rename(outside, root / "projects" / "moved")
    assert wait_for(lambda: sink.has("write", "projects/moved/m.jsonl"))
    (root / "projects" / "moved" / "n.jsonl").write_text("{}\n")
    assert wait_for(lambda: sink.has("write", "projects/moved/n.jsonl"))
    # Moved out again: reported gone, and nothing written out there is reported any more.
    os.rename(root / "projects" / "moved", outside)
    assert wait_for(lambda: sink.has("dir-gone", "projects/moved"))
    (outside / "later.jsonl").write_text("{}\n")
    (root / "projects" / "p" / "mark.jsonl").write_text("{}\n")
    assert wait_for(lambda: sink.has("write", "projects/p/mark.jsonl"))
    assert not any("later" in c.rel for c in sink.changes)


def test_elsewhere_watchdog_reports_the_same_changes(tmp_path: Path) -> None:
    root = tmp_path / "claude"
    (root / "projects" / "p").mkdir(parents=True)
    sink = Sink()
    w = WatchdogWatcher([str(root)], sink, sink.overflow, debounce=0.05)
    try:
        assert w.start() == {} and w.healthy
        (root / "projects" / "p" / "s.jsonl").write_text("{}\n")
        (root / "projects" / "p" / "s" / "subagents").mkdir(parents=True)
        (root / "projects" / "p" / "s" / "subagents" / "a.jsonl").write_text("{}\n")
        assert wait_for(lambda: sink.has("write", "projects/p/s.jsonl"))
        (root / "projects" / "p" / "s.jsonl").unlink()
        assert wait_for(lambda: sink.has("gone", "projects/p/s.jsonl"))
        assert not [c for c in sink.changes if "subagents" in c.rel]
        # watchdog handles a queue overflow itself and only logs it, with exactly this message.
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        assert sink.overflows == 1
    finally:
        w.stop()


def test_watchdog_still_logs_the_overflow_we_listen_for() -> None:
    import watchdog.observers.inotify_c as ic

    src = Path(ic.__file__).read_text()
    assert "queue overflowed" in src.lower()


def test_missing_projects_dir_is_a_problem_until_it_appears(tmp_path: Path) -> None:
    root = tmp_path / "claude"
    root.mkdir()
    sink = Sink()
    w = Watcher([str(root)], sink, sink.overflow, debounce=0.05)
    try:
        problems = w.start()
        assert "does not exist" in problems[str(root)] and not w.healthy
        (root / "projects" / "p").mkdir(parents=True)
        assert w.ensure() == {} and w.healthy
        (root / "projects" / "p" / "s.jsonl").write_text("{}\n")
        assert wait_for(lambda: sink.has("write", "projects/p/s.jsonl"))
        # projects/ removed: the emitter stops; ensure() notices and re-watches once it is back.
        shutil.rmtree(root / "projects")
        assert wait_for(lambda: sink.has("dir-gone", "projects"))
        assert wait_for(lambda: "does not exist" in w.ensure().get(str(root), ""))
        (root / "projects").mkdir()
        assert w.ensure() == {}
    finally:
        w.stop()


class LimitedObserver(Inotify):
    """A real inotify instance whose watches fail as at the inotify watch limit (ENOSPC)."""

    def add(self, path: str, mask: int) -> int:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


class NoInstances:
    def __init__(self) -> None:
        raise OSError(errno.EMFILE, "inotify instance limit reached")


@pytest.mark.parametrize("factory", [LimitedObserver, NoInstances])
def test_watch_limits_are_problems_not_crashes(tmp_path: Path, factory) -> None:
    root = tmp_path / "claude"
    (root / "projects").mkdir(parents=True)
    sink = Sink()
    w = Watcher([str(root)], sink, sink.overflow, observer_factory=factory)
    problems = w.start()
    assert "limit reached" in problems[str(root)]
    assert not w.healthy
    w.stop()


class GateClock(Clock):
    """The watcher's debounce lasts until the test opens the gate, instead of a real fraction of a second."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.waiting.set()
        self.gate.wait(300)
        return event.is_set()


def test_a_burst_is_handed_over_once_per_debounce_one_change_per_path(tmp_path: Path) -> None:
    root = tmp_path / "claude"
    (root / "projects" / "p").mkdir(parents=True)
    batches: list[list[Change]] = []
    clock = GateClock()
    w = Watcher([str(root)], batches.append, lambda: None, debounce=60.0, clock=clock)
    assert w.start() == {}
    try:
        with (root / "projects" / "p" / "s.jsonl").open("a") as f:
            for _ in range(50):  # a transcript being appended to: ~100 events
                f.write("{}\n")
                f.flush()
        (tmp_path / "u.jsonl").write_text("{}\n")
        # Moved in last, in one event: once it is collected, everything before it is too.
        (tmp_path / "u.jsonl").rename(root / "projects" / "p" / "u.jsonl")

        def collected() -> set[str]:
            with w.batches.lock:
                return {rel for _, rel in w.batches.pending}

        assert wait_for(lambda: clock.waiting.is_set() and "projects/p/u.jsonl" in collected())
        assert batches == []  # the debounce is not over: nothing handed over yet
        clock.gate.set()
        assert wait_for(lambda: len(batches) >= 1)
        assert sorted((c.kind, c.rel) for c in batches[0]) == [
            ("write", "projects/p/s.jsonl"),
            ("write", "projects/p/u.jsonl"),
        ]
    finally:
        clock.gate.set()
        w.stop()
