"""The pure policy: decide(sessions, policy, now) -> Plan, exhaustively, without disk."""

from __future__ import annotations

import pytest

from claude_janitor.model import Action, Piece, Policy, Rule, Session, Window
from claude_janitor.policy import decide, guard, match_rule, next_expiry

NOW = 1_790_000_000.0
DAY = 86400.0


def sess(age: float | None, *, sid: str = "s", project: str = "-p", path: str | None = "/p", **kw) -> Session:
    pieces = [] if age is None else [Piece(f"projects/{project}/{sid}.jsonl", "transcript", False, 10, NOW - age)]
    return Session(session_id=sid, root="/r", project=project, project_path=path, pieces=pieces, **kw)


def one(s: Session, pol: Policy | None = None, now: float = NOW):
    return decide([s], pol or Policy(), now).decisions[0]


def test_default_window_is_claude_default_30_days():
    assert one(sess(31 * DAY)).action is Action.DELETE
    d = one(sess(29 * DAY))
    assert d.action is Action.KEEP and "30d" in d.reason


def test_cutoff_exactly_at_window_is_kept_one_second_later_expires():
    pol = Policy(retention=Window(10 * DAY, "test"))
    assert one(sess(10 * DAY), pol).action is Action.KEEP
    assert one(sess(10 * DAY + 1), pol).action is Action.DELETE
    assert one(sess(10 * DAY - 1), pol).action is Action.KEEP


def test_grace_protects_recent_sessions_even_with_tiny_retention():
    pol = Policy(retention=Window(60.0, "test"), grace=3600.0)
    d = one(sess(1800.0), pol)
    assert d.action is Action.KEEP and "grace" in d.reason
    assert d.expires_at == pytest.approx(NOW - 1800 + 3600)
    assert one(sess(3601.0), pol).action is Action.DELETE


def test_future_activity_is_kept_as_clock_skew():
    d = one(sess(-5 * DAY), Policy(retention=Window(1.0, "t"), grace=0))
    assert d.action is Action.KEEP and "clock skew" in d.reason


def test_unreadable_pinned_and_unknown_time_are_kept_with_reasons():
    assert "unreadable" in one(sess(100 * DAY, unreadable="EACCES")).reason
    d = one(sess(100 * DAY, pinned=True))
    assert d.action is Action.KEEP and d.reason == "pinned"
    d = one(sess(None))
    assert d.action is Action.KEEP and "no activity" in d.reason


def test_last_activity_is_max_of_mtime_and_record_time():
    s = sess(100 * DAY)
    s.last_record_time = NOW - DAY
    assert one(s).action is Action.KEEP
    s2 = sess(DAY)
    s2.last_record_time = NOW - 100 * DAY
    assert one(s2).action is Action.KEEP


def test_forever_keeps_and_rules_match_by_glob_first_wins():
    rules = [
        Rule("/home/*/secret*", 1 * DAY, Action.DELETE, retention_set=True, index=0),
        Rule("/home/*", None, retention_set=True, index=1),
    ]
    pol = Policy(rules=rules)
    d = one(sess(2 * DAY, path="/home/a/secret-proj"), pol)
    assert d.action is Action.DELETE and d.rule == "rule #1 (/home/*/secret*)"
    d = one(sess(400 * DAY, path="/home/a/other"), pol)
    assert d.action is Action.KEEP and "forever" in d.reason
    # no rule: default window
    assert one(sess(40 * DAY, path="/srv/x"), pol).action is Action.DELETE


def test_rule_matches_encoded_name_when_path_unknown():
    rule = Rule("-home-a-*", 1 * DAY, retention_set=True)
    s = sess(2 * DAY, project="-home-a-b", path=None)
    assert match_rule(s, [rule]) is rule
    assert one(s, Policy(rules=[rule])).action is Action.DELETE


def test_rule_action_overrides_default_action():
    pol = Policy(action=Action.DELETE, rules=[Rule("/p", None, Action.ARCHIVE, index=0)])
    assert one(sess(40 * DAY), pol).action is Action.ARCHIVE


def test_keep_last_per_project():
    sessions = [sess(a * DAY, sid=f"s{a}") for a in (40, 50, 60, 70)] + [
        sess(45 * DAY, sid="other", project="-q", path="/q")
    ]
    plan = decide(sessions, Policy(keep_last=2), NOW)
    got = {d.session.session_id: d.action for d in plan.decisions}
    assert got == {
        "s40": Action.KEEP,
        "s50": Action.KEEP,
        "s60": Action.DELETE,
        "s70": Action.DELETE,
        "other": Action.KEEP,
    }
    assert "keep_last" in next(d.reason for d in plan.decisions if d.session.session_id == "s50")


def test_rule_keep_last_overrides_global():
    sessions = [sess(a * DAY, sid=f"s{a}") for a in (40, 50, 60)]
    pol = Policy(keep_last=0, rules=[Rule("/p", 30 * DAY, keep_last=1, retention_set=True)])
    got = {d.session.session_id: d.action for d in decide(sessions, pol, NOW).decisions}
    assert got == {"s40": Action.KEEP, "s50": Action.DELETE, "s60": Action.DELETE}


def test_project_window_from_claude_settings_applies_to_that_project_only():
    pol = Policy(
        claude_root_windows={"/r": Window(30 * DAY, "user")},
        claude_windows={("/r", "-p"): Window(5 * DAY, "project settings")},
    )
    assert one(sess(6 * DAY), pol).action is Action.DELETE
    assert one(sess(6 * DAY, project="-q", path="/q"), pol).action is Action.KEEP


def test_project_settings_in_doubt_keeps():
    pol = Policy(project_doubts={("/r", "-p"): "project settings unreadable, kept: bad"})
    d = one(sess(400 * DAY), pol)
    assert d.action is Action.KEEP and "unreadable" in d.reason


def test_janitor_retention_beats_claude_windows():
    pol = Policy(retention=Window(100 * DAY, "config"), claude_root_windows={"/r": Window(30 * DAY, "u")})
    assert one(sess(40 * DAY), pol).action is Action.KEEP


def test_next_expiry_is_earliest_kept_expiry():
    pol = Policy(retention=Window(10 * DAY, "t"), grace=0)
    plan = decide([sess(3 * DAY, sid="a"), sess(8 * DAY, sid="b"), sess(20 * DAY, sid="c")], pol, NOW)
    assert next_expiry(plan) == pytest.approx(NOW - 8 * DAY + 10 * DAY)


def test_guard_trips_on_count_and_percent():
    pol = Policy(retention=Window(DAY, "t"), max_delete_count=2)
    plan = decide([sess(5 * DAY, sid=str(i)) for i in range(3)], pol, NOW)
    msg = guard(plan, pol, 3)
    assert msg and "max_delete_count" in msg and "--force" in msg
    pol2 = Policy(retention=Window(DAY, "t"), max_delete_percent=50)
    plan2 = decide([sess(5 * DAY, sid="a"), sess(0.5 * DAY, sid="b"), sess(5 * DAY, sid="c")], pol2, NOW)
    assert "67%" in (guard(plan2, pol2, 3) or "")
    assert guard(plan2, Policy(max_delete_percent=70), 3) is None


def test_decide_is_pure_and_deterministic():
    sessions = [sess(a * DAY, sid=f"s{a}") for a in range(0, 90, 7)]
    a = [(d.session.session_id, d.action, d.reason) for d in decide(sessions, Policy(), NOW).decisions]
    b = [(d.session.session_id, d.action, d.reason) for d in decide(sessions, Policy(), NOW).decisions]
    assert a == b and len(a) == len(sessions)


def test_guard_trips_when_every_session_would_go_like_after_a_clock_jump():
    sessions = [sess(a * DAY, sid=f"s{a}") for a in (1, 5, 10, 20, 25)]
    later = NOW + 365 * DAY
    plan = decide(sessions, Policy(), later)
    assert len(plan.to_act) == 5
    msg = guard(plan, Policy(), 5)
    assert msg and "clock" in msg and "--force" in msg and "366d" in msg
    # the same cache today: nothing near all of it goes
    assert guard(decide(sessions, Policy(), NOW), Policy(), 5) is None
    # fewer than 5: a tiny cache is not guarded by this rule
    plan4 = decide(sessions[:4], Policy(), later)
    assert guard(plan4, Policy(), 4) is None
