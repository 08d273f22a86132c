"""Prometheus metrics after every sweep (``metrics_file = PATH``), for node_exporter's textfile collector.

The file is replaced whole (atomicfile.write_atomic: temp file, fsync, rename), so the collector never reads
half a file; mode 0644, since node_exporter usually runs as another user. Everything is a gauge about the
last sweep, except ``claude_janitor_last_success_timestamp_seconds``, carried over from the previous file
when a sweep fails, so "no successful sweep in 2 days" can be alerted on. Counts and sizes only: no
session ids, paths of sessions or titles.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("janitor.metrics")

PREFIX = "claude_janitor"
MAX_PREVIOUS = 1 << 20


@dataclass
class Sample:
    """What one sweep did (plain data; metrics.from_run fills it from a run)."""

    finished: float
    duration: float
    success: bool
    decisions: dict[str, int] = field(default_factory=dict)  # keep / delete / archive → sessions
    results: dict[str, int] = field(default_factory=dict)  # ok / failed / skipped / vanished … → sessions
    reclaimed_bytes: int = 0
    failures: int = 0
    guard_tripped: bool = False
    store_bytes: dict[tuple[str, str], int] = field(default_factory=dict)  # (root, store) → bytes
    trash_bytes: int | None = None
    daemon_up: bool | None = None  # None: a one-shot sweep (the metric is left out)
    kind: str = "oneshot"  # oneshot | full | incremental


def from_run(
    plan: Any,
    outcomes: list[Any],
    *,
    started: float,
    finished: float,
    guard: str | None,
    error: str | None = None,
    kind: str = "oneshot",
) -> Sample:
    """A Sample from a plan and the outcomes of acting on it."""
    decisions = {"keep": 0, "delete": 0, "archive": 0}
    store_bytes: dict[tuple[str, str], int] = {}
    gone = {o.decision.session.key for o in outcomes if o.result == "ok"}
    for d in plan.decisions if plan is not None else ():
        decisions[d.action.value] = decisions.get(d.action.value, 0) + 1
        key = (d.session.root, "sessions")
        store_bytes[key] = store_bytes.get(key, 0) + (0 if d.session.key in gone else d.session.bytes)
    for sd in getattr(plan, "stores", None) or ():  # what is left in each store after the sweep
        key = (sd.root, sd.key)
        store_bytes[key] = store_bytes.get(key, 0) + max(0, sd.bytes - (getattr(sd, "removed_bytes", 0) or 0))
    results: dict[str, int] = {}
    reclaimed = 0
    for o in outcomes:
        results[o.result] = results.get(o.result, 0) + 1
        if o.result == "ok" and not getattr(o, "trash", None):  # trashed bytes are freed when purged
            reclaimed += o.decision.session.bytes
    for sd in getattr(plan, "stores", None) or ():
        reclaimed += getattr(sd, "removed_bytes", 0) or 0
    failures = results.get("failed", 0) + sum(
        1 for sd in getattr(plan, "stores", None) or () if getattr(sd, "result", None) == "failed"
    )
    return Sample(
        finished=finished,
        duration=max(0.0, finished - started),
        success=error is None and guard is None and failures == 0,
        decisions=decisions,
        results=results,
        reclaimed_bytes=reclaimed,
        failures=failures + (1 if error else 0),
        guard_tripped=guard is not None,
        store_bytes=store_bytes,
        kind=kind,
    )


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(v: float | int) -> str:
    return str(int(v)) if isinstance(v, bool | int) or float(v).is_integer() else repr(float(v))


def render(s: Sample, last_success: float | None) -> str:
    lines: list[str] = []

    def metric(name: str, help_: str, values: list[tuple[dict[str, str], float | int]]) -> None:
        full = f"{PREFIX}_{name}"
        lines.append(f"# HELP {full} {help_}")
        lines.append(f"# TYPE {full} gauge")
        for labels, v in values:
            lab = ",".join(f'{k}="{_label(x)}"' for k, x in sorted(labels.items()))
            lines.append(f"{full}{{{lab}}} {_num(v)}" if lab else f"{full} {_num(v)}")

    if s.daemon_up is not None:
        metric("daemon_up", "1 while janitor daemon runs, 0 once it has stopped", [({}, int(s.daemon_up))])
    metric("last_sweep_timestamp_seconds", "When the last sweep ended (Unix time)", [({}, round(s.finished, 3))])
    metric("last_sweep_duration_seconds", "How long the last sweep took", [({}, round(s.duration, 3))])
    metric(
        "last_sweep_success",
        "1 if the last sweep acted on everything it meant to, else 0",
        [({"kind": s.kind}, int(s.success))],
    )
    if last_success is not None:
        metric(
            "last_success_timestamp_seconds",
            "When the last successful sweep ended (Unix time)",
            [({}, round(last_success, 3))],
        )
    metric(
        "sessions",
        "Sessions by the last sweep's decision",
        [({"decision": k}, v) for k, v in sorted(s.decisions.items())],
    )
    metric(
        "sessions_acted",
        "Sessions the last sweep acted on, by result",
        [({"result": k}, v) for k, v in sorted(s.results.items())],
    )
    metric(
        "last_sweep_reclaimed_bytes",
        "Bytes the last sweep removed (sessions and stores; trash not counted until purged)",
        [({}, s.reclaimed_bytes)],
    )
    metric(
        "last_sweep_failures",
        "Sessions or stores the last sweep failed to act on (and 1 for a failed run)",
        [({}, s.failures)],
    )
    metric("guard_tripped", "1 if the mass-removal guard refused the last sweep", [({}, int(s.guard_tripped))])
    metric(
        "store_bytes",
        "Bytes left in each store of each Claude dir after the last sweep (sessions, and the stores beyond sessions)",
        [({"root": r, "store": k}, v) for (r, k), v in sorted(s.store_bytes.items())],
    )
    if s.trash_bytes is not None:
        metric("trash_bytes", "Bytes in the janitor's trash (removed sessions not yet purged)", [({}, s.trash_bytes)])
    return "\n".join(lines) + "\n"


_SUCCESS_RE = re.compile(rb"^" + PREFIX.encode() + rb"_last_success_timestamp_seconds ([0-9.e+]+)$", re.M)


def previous_success(path: Path) -> float | None:
    from claude_janitor.fs.saferead import InputError, read_input

    try:
        raw = read_input(path, what="metrics file", limit=MAX_PREVIOUS, follow=True)
    except (InputError, OSError):
        return None
    m = _SUCCESS_RE.search(raw or b"")
    try:
        return float(m.group(1)) if m else None
    except ValueError:
        return None


def write(path: str | Path, s: Sample) -> str | None:
    """Write the metrics file; None, or why it could not be written (the sweep goes on either way)."""
    from claude_janitor.fs.atomicfile import write_atomic

    p = Path(path)
    if not p.parent.is_dir():  # the collector's dir: never made here (write_atomic would make it 0700)
        return f"metrics file {p}: its dir does not exist; not written"
    last = s.finished if s.success else previous_success(p)
    try:
        write_atomic(p, render(s, last), mode=0o644)
    except OSError as e:
        return f"metrics file {p}: {e.strerror or e}"
    return None


def to_json(s: Sample) -> dict[str, Any]:
    """A Sample as JSON-able data (the daemon's full sweep sends it from its own process)."""
    from dataclasses import asdict

    d = asdict(s)
    d["store_bytes"] = [[r, k, v] for (r, k), v in s.store_bytes.items()]
    return d


def from_json(d: dict[str, Any]) -> Sample:
    d = dict(d)
    d["store_bytes"] = {(r, k): v for r, k, v in d.get("store_bytes", [])}
    return Sample(**d)
