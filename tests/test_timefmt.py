"""timefmt: every epoch time the janitor writes or shows, in one place.

The formats in files (audit records, archive headers and names, the daemon's state file) must not change:
they are checked here against the code they replaced (time.strftime over time.gmtime, datetime.isoformat)."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_janitor.timefmt import (
    EARLIEST,
    LATEST,
    compact,
    display_minute,
    display_second,
    iso,
    iso_ms,
    iso_offset,
)
from tests.helpers import NOW, lines_matching

T = 1_790_000_000.25  # 2026-09-21T14:13:20.250Z


def test_each_format():
    assert iso(T) == "2026-09-21T14:13:20Z"
    assert iso_ms(T) == "2026-09-21T14:13:20.250Z"
    assert iso_offset(T) == "2026-09-21T14:13:20+00:00"
    assert compact(T) == "20260921T141320Z"
    assert display_minute(T) == "2026-09-21 14:13"
    assert display_second(T) == "2026-09-21 14:13:20"
    assert iso(0) == "1970-01-01T00:00:00Z" and iso_ms(0) == "1970-01-01T00:00:00.000Z"


def test_milliseconds_are_cut_never_rounded_into_a_fourth_digit():
    assert iso_ms(1.9996) == "1970-01-01T00:00:01.999Z"
    assert iso_ms(1.9999999999) == "1970-01-01T00:00:01.999Z"
    assert iso_ms(59.9999) == "1970-01-01T00:00:59.999Z"
    assert iso_ms(2.0) == "1970-01-01T00:00:02.000Z"
    assert iso_ms(-0.5) == "1969-12-31T23:59:59.500Z"
    # (-1e-20) % 1 is 1.0 in floating point: the old code printed "23:59:59.1000Z" here
    assert iso_ms(-1e-20) == "1969-12-31T23:59:59.999Z"


@given(st.floats(min_value=0, max_value=LATEST))
def test_file_formats_are_what_the_replaced_code_wrote(t):
    """Byte for byte, for every time from 1970 on (audit records, archive headers and names)."""
    gm = time.gmtime(t)
    assert iso(t) == time.strftime("%Y-%m-%dT%H:%M:%SZ", gm)
    assert compact(t) == time.strftime("%Y%m%dT%H%M%SZ", gm)
    assert iso_ms(t) == time.strftime("%Y-%m-%dT%H:%M:%S", gm) + f".{int((t % 1) * 1000):03d}Z"
    assert display_minute(t) == time.strftime("%Y-%m-%d %H:%M", gm)
    assert display_second(t) == time.strftime("%Y-%m-%d %H:%M:%S", gm)


@given(st.integers(min_value=int(EARLIEST), max_value=int(LATEST)), st.integers(0, 999_999))
def test_the_state_file_format_is_datetime_isoformat(seconds, micro):
    t = seconds + micro / 1e6
    if abs(t) >= 2**52 / 1e6:  # the float no longer holds the microseconds: datetime may round up a second
        t = float(seconds)
    assert iso_offset(t) == datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@given(st.floats(min_value=EARLIEST, max_value=LATEST))
def test_every_showable_time_keeps_its_shape(t):
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", iso(t) or "")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", iso_ms(t))
    assert iso_ms(t)[:19] == iso(t)[:19]  # type: ignore[index]
    assert re.fullmatch(r"\d{8}T\d{6}Z", compact(t))


def test_the_ends_of_the_range():
    assert iso(LATEST) == "9999-12-31T23:59:59Z" and iso(LATEST + 1) is None
    assert iso(EARLIEST) == "0001-01-01T00:00:00Z" and iso(EARLIEST - 1) is None
    assert iso_offset(EARLIEST) == "0001-01-01T00:00:00+00:00"
    assert iso(-1) == "1969-12-31T23:59:59Z"  # an mtime before 1970 is odd, not impossible


@pytest.mark.parametrize(
    "hostile", [math.nan, math.inf, -math.inf, 1e300, -1e300, 10**400, 1e14, True, False, "2026", [], {}, None]
)
def test_what_is_not_a_time_is_none_or_a_dash_never_an_exception(hostile):
    """Mtimes, trash metadata, the last-sweep record and archive headers are read from files: any value."""
    assert iso(hostile) is None
    assert iso_offset(hostile) is None
    assert display_minute(hostile) == "-"
    assert display_second(hostile) == "-"


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1e300, -1e300])
def test_the_own_clock_formats_refuse_what_is_not_a_time(bad):
    """iso_ms and compact take the janitor's own clock: a value like these is a bug, said plainly."""
    with pytest.raises(ValueError, match="not a time"):
        iso_ms(bad)
    with pytest.raises(ValueError, match="not a time"):
        compact(bad)


def test_now_iso_is_the_audit_records_format():
    from claude_janitor.audit.records import now_iso

    assert now_iso(NOW + 0.0125) == "2026-09-21T14:13:20.012Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now_iso())


# ---- one home ---------------------------------------------------------------------------------------------


def test_epoch_times_become_text_only_in_timefmt():
    """The syslog datagram's RFC 3164 stamp (local time) is that protocol's, and stays with it."""
    found = lines_matching(
        r"strftime\(|\bisoformat\(|time\.(gmtime|localtime|ctime|asctime)\(", {"timefmt.py", "audit/sinks.py"}
    )
    assert found == [], "\n".join(found)
