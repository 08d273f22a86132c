"""Epoch seconds as text: every format the janitor writes or shows a time in, all of them UTC.

One home, so that a file format cannot drift between its writers and a report cannot show a time two ways.
Times from files (mtimes, trash and archive metadata, the last-sweep record) are untrusted: NaN, ±inf,
numbers past year 9999 or before year 1 are not a time; ``iso``/``iso_offset`` give None for them and the
``display_*`` forms "-", never an exception. ``iso_ms`` and ``compact`` take the janitor's own clock only
and raise ValueError for such a value.

The one time in another form is the syslog datagram's local "Mmm dd hh:mm:ss" (audit/sinks.py): RFC 3164
asks for it, so it belongs to that protocol, not here.
"""

from __future__ import annotations

import math
import time

EARLIEST = -62135596800.0  # 0001-01-01T00:00:00Z: the first instant a four-digit year can show
LATEST = 253402300799.0  # 9999-12-31T23:59:59Z: the last one


def _usable(t: object) -> float | None:
    """``t`` as a float if it is a time the formats below can show, else None (bool is no time)."""
    if isinstance(t, bool) or not isinstance(t, int | float):
        return None
    try:
        v = float(t)
    except OverflowError:  # an int with hundreds of digits
        return None
    return v if math.isfinite(v) and EARLIEST <= v <= LATEST else None


def _checked(t: float) -> float:
    v = _usable(t)
    if v is None:
        raise ValueError(f"not a time that can be shown: {t!r}")
    return v


def _date_time(seconds: int, date_sep: str, mid: str, time_sep: str) -> str:
    tm = time.gmtime(seconds)
    return (
        f"{tm.tm_year:04d}{date_sep}{tm.tm_mon:02d}{date_sep}{tm.tm_mday:02d}{mid}"
        f"{tm.tm_hour:02d}{time_sep}{tm.tm_min:02d}{time_sep}{tm.tm_sec:02d}"
    )


# ---- in files and JSON: the formats are part of what they are read as --------------------------------


def iso(t: object) -> str | None:
    """2026-12-02T14:53:40Z (seconds, cut not rounded): JSON reports, archive headers. None if not a time."""
    v = _usable(t)
    return None if v is None else _date_time(math.floor(v), "-", "T", ":") + "Z"


def iso_ms(t: float) -> str:
    """2026-12-02T14:53:40.123Z (milliseconds, cut not rounded): the audit log's records."""
    v = _checked(t)
    seconds = math.floor(v)
    # Cut, never rounded: 1.9996 is 1.999, not "1.1000". v - seconds is exact, where v * 1000 would round
    # (now and then up into the next millisecond); it is 1.0 only for a tiny negative v: the cap keeps .999.
    ms = min(int((v - seconds) * 1000), 999)
    return f"{_date_time(seconds, '-', 'T', ':')}.{ms:03d}Z"


def iso_offset(t: object) -> str | None:
    """2026-12-02T14:53:40+00:00: the daemon's state file (datetime.isoformat's form). None if not a time."""
    v = _usable(t)
    return None if v is None else _date_time(math.floor(v), "-", "T", ":") + "+00:00"


def compact(t: float) -> str:
    """20261202T145340Z: in archive file names (no ':' or '-', sorts as it reads)."""
    return _date_time(math.floor(_checked(t)), "", "T", "") + "Z"


# ---- for people ------------------------------------------------------------------------------------------


def display_minute(t: object) -> str:
    """2026-12-02 14:53 (table columns, headings); "-" for None or anything that is not a time."""
    v = _usable(t)
    return "-" if v is None else _date_time(math.floor(v), "-", " ", ":")[:-3]


def display_second(t: object) -> str:
    """2026-12-02 14:53:40 (one session's files in detail); "-" for None or anything that is not a time."""
    v = _usable(t)
    return "-" if v is None else _date_time(math.floor(v), "-", " ", ":")
