"""claude-janitor: retention and local-cache janitor for Claude Code."""

__version__ = "0.1.0"
