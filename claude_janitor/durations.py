"""Parse and render durations ("30d", "12h", "forever") and sizes."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
FOREVER = ("forever", "never", "inf")
MAX_SECONDS = 1000 * 365.25 * 86400  # longer than this is no window but a typo (or "forever")


class DurationError(ValueError):
    pass


def parse_duration(text: object, *, allow_forever: bool = True, allow_zero: bool = False) -> float | None:
    """Seconds for "30d"/"12h"/"90m"/"45s"/"2w"; None for "forever". Raises DurationError otherwise."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise DurationError(f'expected a string like "30d", "12h" or "forever", got {text!r}')
    if text.strip().lower() in FOREVER:
        if not allow_forever:
            raise DurationError(f'{text!r} is not allowed here; give a finite duration like "30d"')
        return None
    if text.strip().lstrip("+").startswith("-"):
        raise DurationError(f"negative duration {text!r} is not allowed")
    m = _RE.match(text)
    if not m:
        raise DurationError(
            f'cannot parse duration {text!r}: use a number and a unit s, m, h, d or w (e.g. "30d", "12h")'
            + (' or "forever"' if allow_forever else "")
        )
    seconds = float(m.group(1)) * UNITS[m.group(2)]
    if not seconds <= MAX_SECONDS:  # also inf, from a number with hundreds of digits
        raise DurationError(
            f"duration {text[:40]!r} is longer than 1000 years" + ('; use "forever"' if allow_forever else "")
        )
    if seconds <= 0 and not allow_zero:
        raise DurationError(f"duration {text!r} must be greater than zero")
    return seconds


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "forever"
    neg = seconds < 0
    s = abs(seconds)
    if s < 60:
        out = f"{s:.0f}s"
    elif s < 3600:
        out = f"{s / 60:.0f}m"
    elif s < 86400:
        out = f"{s / 3600:.1f}h".replace(".0h", "h")
    else:
        out = f"{s / 86400:.1f}d".replace(".0d", "d")
    return "-" + out if neg else out


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
