"""`janitor doctor`'s text: the report doctor_checks.collect makes, rendered for a terminal."""

from __future__ import annotations

from typing import Any

from claude_janitor.durations import human_duration
from claude_janitor.timefmt import display_minute


def fmt_window(seconds: float | None) -> str:
    """A retention window as doctor shows it: "forever" for none."""
    return "forever" if seconds is None else human_duration(seconds)


def _short(error: str | None, file: str) -> str | None:
    """A settings error without the file name the line already shows."""
    if error and error.startswith(f"settings file {file}: "):
        return error[len(f"settings file {file}: ") :]
    return error


def _when(t: float | None) -> str:
    return "-" if t is None else f"{display_minute(t)} UTC"


def _janitor_lines(rep: dict[str, Any]) -> list[str]:
    j = rep["janitor"]
    L = ["Janitor"]
    L.append(f"  config file      {j['config_file']}{'' if j['config_exists'] else '  (none: defaults)'}")
    L.append(f"  managed policy   {j['managed_policy']}{'  (in force)' if j['managed_policy_exists'] else '  (none)'}")
    L.append(f"  audit log        {j['audit_log']}")
    pins = j.get("pinned_sessions", [])
    L.append(
        f"  pinned sessions  {len(pins)}" + (f": {', '.join(pins[:5])}{' …' if len(pins) > 5 else ''}" if pins else "")
    )
    if "policy" in rep:
        L += ["", "Effective policy (value, then where it came from)"]
        w = max(len(r["key"]) for r in rep["policy"])
        v = min(40, max(len(r["value"]) for r in rep["policy"]))
        for r in rep["policy"]:
            L.append(f"  {r['key'].ljust(w)}  {r['value'].ljust(v)}  {r['source']}")
        for r in rep.get("rules", []):
            L.append(
                f"  {r['label']}  retention {r['retention']}, action {r['action']}"
                + (f", keep_last {r['keep_last']}" if r["keep_last"] is not None else "")
                + f"  ({r['source']})"
            )
    return L


def _settings_lines(c: dict[str, Any]) -> list[str]:
    from claude_janitor.render.report import shown

    L: list[str] = []
    if "cleanup_window" in c:
        L.append(f"  cleanupPeriodDays  {c['cleanup_window']}  from {c['cleanup_source']}")
    else:
        L.append(f"  cleanupPeriodDays  unknown: {shown(c['cleanup_unknown'])}")
    for s in c["settings"]:
        state = (
            "missing"
            if not s["exists"]
            else _short(s.get("error"), s["file"])
            or (
                f"cleanupPeriodDays = {s['cleanupPeriodDays']}"
                if s.get("cleanupPeriodDays") is not None
                else "no cleanupPeriodDays"
            )
        )
        L.append(f"    {'managed' if s['managed'] else 'user   '}  {s['file']}: {state}")
    for o in c["project_overrides"]:
        if "error" in o:
            L.append(f"    project  {shown(o['error'])}")
            L += [f"      {shown(x['why'])} ({x['reason']})" for x in o.get("own_sweep_skips", [])]
        else:
            L.append(
                f"    project  {o['file']}: cleanupPeriodDays = {o['cleanupPeriodDays']} "
                "(when Claude Code starts there, its sweep applies this to every project)"
            )
    return L


def _own_sweep_lines(c: dict[str, Any]) -> list[str]:
    from claude_janitor.render.report import shown

    lc = c["last_cleanup"]
    L = [f"  own sweep          {lc['status']}" + (f" (last: {_when(lc['last_run'])})" if lc["last_run"] else "")]
    for x in c.get("own_sweep_skips", []):
        if x.get("conditional"):
            L.append(f"    note: {x['why']} ({x['reason']})")
        else:
            L.append(
                f"    SKIPPED: {shown(x['why'])} ({x['reason']}); nothing is cleaned by Claude Code "
                "while this lasts (image-cache is still wiped)"
            )
    return L


def _stores_lines(c: dict[str, Any]) -> list[str]:
    L: list[str] = []
    if c.get("stores"):
        L.append("  stores beyond sessions (delete only; [stores] in the janitor config overrides)")
        for st in c["stores"]:
            where = "" if st["place"] in (None, c["dir"]) else f"  in {st['place']}"
            if st["place"] is None:
                where = "  (only with the user's own Claude dir)"
            win = " / ".join(fmt_window(w) for w in st["windows"])
            L.append(f"    {st['store'].ljust(17)} {win.ljust(8)} {st['what']}  ({'; '.join(st['sources'])}){where}")
    if "history" in c:
        h = c["history"]
        hs = (
            "not pruned (opt in with [history])"
            if not h["removed_sessions"] and h["retention"] is None
            else ", ".join(
                x
                for x in (
                    "lines of removed sessions dropped" if h["removed_sessions"] else "",
                    f"lines older than {fmt_window(h['retention'])} dropped" if h["retention"] is not None else "",
                )
                if x
            )
            + f" ({h['source']})"
        )
        L.append(f"  history.jsonl      {hs}")
    return L


def _privacy_lines(c: dict[str, Any]) -> list[str]:
    from claude_janitor.render.report import shown

    L = ["  privacy (settings Claude Code honours)"]
    for p in c["privacy"]:
        if p["state"] == "not set":
            val = "not set"
        elif p.get("implied_by"):
            val = f"on (implied by {p['implied_by']}" + (
                f"; {p['name']}={shown(p['value'])} from {p['source']} does not turn it back on)"
                if p["value"] is not None
                else ")"
            )
        else:
            val = f"{p['state']} ({p['name']}={shown(p['value'])} from {p['source']})"
        L.append(f"    {p['name'].ljust(41)}  {val}")
    return L


def _problem_lines(rep: dict[str, Any]) -> list[str]:
    from claude_janitor.render.report import shown

    L: list[str] = []
    if rep["problems"]:
        L += [
            "",
            "Problems (janitor config, managed policy or pins: sweeps and reports stop, exit 2, nothing changed)",
        ] + [f"  {shown(p)}" for p in rep["problems"]]
    if rep.get("settings_problems"):
        L += [
            "",
            "Claude Code settings problems (sweeps go on: sessions whose window would come from these "
            "files are kept; janitor retention, rules and --older-than still apply)",
        ]
        L += [f"  {shown(p)}" for p in rep["settings_problems"]]
    if not rep["problems"] and not rep.get("settings_problems"):
        L += ["", "No problems found."]
    return L


def render(rep: dict[str, Any]) -> str:
    L: list[str] = [f"claude-janitor {rep['version']}", ""]
    L += _janitor_lines(rep)
    for c in rep["claude"]:
        L += ["", f"Claude Code: {c['dir']}" + ("" if c["exists"] else "  (does not exist)")]
        L += _settings_lines(c) + _own_sweep_lines(c) + _stores_lines(c) + _privacy_lines(c)
    L += _problem_lines(rep)
    return "\n".join(L)
