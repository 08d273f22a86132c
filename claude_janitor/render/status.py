"""`janitor status`: the daemon's state (daemon.main.status) as lines of text."""

from __future__ import annotations

from typing import Any


def _when(v: Any) -> str:
    return str(v).replace("T", " ").replace("+00:00", " UTC") if v else "-"


def _last_sweep(last: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {last[k]}" for k in ("acted", "failed", "skipped") if last.get(k))
    err = f"; error: {last['error']}" if last.get("error") else ""
    return (
        f"  last sweep: {_when(last.get('finished') or last.get('started'))} ({last.get('kind')}"
        f"{', ' + counts if counts else ''}){err}"
    )


def _running(st: dict[str, Any]) -> list[str]:
    lines = []
    refused = st.get("reload_refused")
    if refused:
        lines.append(
            f"  config reload refused at {_when(refused.get('at'))}: {refused.get('error')} "
            "(running with the previous config)"
        )
    sweeping = st.get("sweeping")
    if sweeping:
        lines.append(f"  sweeping now: {sweeping.get('kind')} sweep since {_when(sweeping.get('since'))}")
    lines.append(f"  next sweep: {_when(st.get('next_sweep'))}")
    due = " (due: acted on when the sweep in progress ends)" if sweeping and st.get("next_expiry") else ""
    lines.append(f"  next expiry: {_when(st.get('next_expiry'))}{due}")
    return lines


def status_lines(st: dict[str, Any]) -> list[str]:
    if st["running"]:
        lines = [f"daemon: running (pid {st.get('pid') or '?'}) since {_when(st.get('started'))}"]
    elif st.get("started"):
        lines = [f"daemon: not running (last ran {_when(st.get('started'))} to {_when(st.get('stopped'))})"]
    else:
        lines = ["daemon: not running (never started; see `janitor daemon` or `janitor service install`)"]
    if st.get("roots"):
        lines.append(f"  watching: {', '.join(st['roots'])}; full sweep {st.get('schedule', '-')}")
    for root, how in (st.get("watching") or {}).items():
        if how != "ok":
            lines.append(f"  not watched: {root}: {how} (full scans only)")
    if st.get("last_sweep"):
        lines.append(_last_sweep(st["last_sweep"]))
    if st.get("last_full_sweep"):
        lines.append(f"  last full sweep: {_when(st['last_full_sweep'])}")
    if st["running"]:
        lines += _running(st)
    n = st.get("index_sessions")
    lines.append(f"  index: {'none yet' if n is None else f'{n} sessions'} ({st['index']})")
    return lines
