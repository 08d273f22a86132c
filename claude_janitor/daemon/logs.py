"""The daemon's log: to the journal under systemd ("<prio>message"), else timestamped lines on stderr, or
to a file of its own rotated by size (``--log-file``, for launchd, which has no journal)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings


class JournalFormatter(logging.Formatter):
    """Under systemd: "<prio>message" (journald reads the priority); elsewhere a timestamped line."""

    PRIO = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def __init__(self, journal: bool) -> None:
        super().__init__("%(message)s" if journal else "%(asctime)s janitor[%(process)d] %(levelname)s %(message)s")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"<{self.PRIO.get(record.levelno, 6)}>{text}" if self.journal else text


LOG_MAX_BYTES = 1024 * 1024  # --log-file: rotated at this size
LOG_KEEP = 3  # --log-file: this many rotated files are kept (daemon.log.1 … .3): at most ~4 MiB in all


class RotatingStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """The daemon's log in a file of its own (launchd has no journal: ``--log-file``): the file is this
    process's stdout and stderr (so a traceback or a warning lands there too), and it is rotated once it
    reaches ``max_bytes``: PATH → PATH.1 → … → PATH.<keep>, the oldest dropped, a new PATH opened in place."""

    def __init__(self, path: str, max_bytes: int = LOG_MAX_BYTES, keep: int = LOG_KEEP) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self._reopen()
        super().__init__(sys.stderr)

    def _reopen(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        sys.stdout.flush()
        sys.stderr.flush()
        for target in (1, 2):
            os.dup2(fd, target)  # inheritable copies: the full-sweep process writes there too
        os.close(fd)

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        try:
            if os.fstat(2).st_size >= self.max_bytes:
                self.rotate()
        except OSError:
            pass  # a log that cannot be rotated must not stop the daemon: it grows instead

    def rotate(self) -> None:
        for n in range(self.keep, 0, -1):
            src = self.path if n == 1 else f"{self.path}.{n - 1}"
            with contextlib.suppress(FileNotFoundError):
                os.replace(src, f"{self.path}.{n}")
        self._reopen()


def setup_logging(verbose: bool, log_file: str | None = None, log_max_bytes: int = LOG_MAX_BYTES) -> None:
    handler = RotatingStderr(log_file, log_max_bytes) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter(bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("watchdog").setLevel(logging.WARNING)
    # watchdog re-adds a watch when a dir is renamed quickly (e.g. a restore's temp dir); harmless.
    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
