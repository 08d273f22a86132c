"""Session ids: the one normalisation used wherever an id is compared (pins, restore, archive lookup).

Claude Code generates lower-case UUIDs, but a transcript named with upper-case hex (copied from another
tool, renamed by hand) is still a session and must be protectable. So ids are *compared* in canonical
lower case everywhere; on disk they keep whatever case their file has (paths are built from the name the
scan found, never from a normalised id).
"""

from __future__ import annotations


def canonical_id(session_id: str) -> str:
    """The form an id is compared (and pinned) in: lower case, surrounding whitespace dropped. An id already
    in that form is given back as it is, not copied: sets of every session's id (a sweep makes several) then
    hold no second string for each (~85 B a session)."""
    c = session_id.strip().lower()
    return session_id if c == session_id else c


def same_id(a: str, b: str) -> bool:
    return canonical_id(a) == canonical_id(b)
