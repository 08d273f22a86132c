"""Exit statuses and the errors that carry them: the one place the process exit codes are named.

Every error the user must fix is a ``JanitorError``; the CLI prints its message on one line and exits
with its ``exit_code``. Nothing here does I/O, so every layer may import it."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """The process exit codes (README, `janitor --help`): 0 ok, 1 some actions failed, 2 usage or config
    error (nothing changed), 3 busy (another sweep or daemon holds the lock)."""

    OK = 0
    ACTIONS_FAILED = 1
    USAGE = 2
    BUSY = 3

    @staticmethod
    def for_signal(signum: int) -> int:
        """Stopped by a signal (SIGTERM, SIGINT): 128 + its number, as a shell reports it."""
        return 128 + signum


class JanitorError(Exception):
    """An error the user must fix; carries the process exit code."""

    exit_code: ExitStatus = ExitStatus.USAGE

    def __init__(self, message: str, exit_code: ExitStatus | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(JanitorError):
    """Broken config, settings or usage: exit 2, nothing changed."""


class GuardTripped(ConfigError):
    """The mass-removal guard refused the run (exit 2, nothing changed)."""


class LockBusy(JanitorError):
    """Another sweep holds the lock."""

    exit_code = ExitStatus.BUSY
