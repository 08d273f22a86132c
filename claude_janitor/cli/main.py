"""The `janitor` command line: the group and its commands, one module per family (sweep, report and du;
archive, restore and undo; pins; daemon, status and service; audit; doctor and show). Commands parse,
call the core and render; the core is imported when a command runs, so that `janitor --help` starts fast."""

from __future__ import annotations

import click

from claude_janitor.cli import archive, audit, doctor, pins, service, sweep


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.version_option(package_name="claude-janitor", prog_name="janitor")
def cli(debug: bool) -> None:
    """Retention and cache janitor for Claude Code transcripts.

    Finds every session under ~/.claude (or $CLAUDE_CONFIG_DIR), decides from the retention policy
    which have expired, and deletes or archives them, recording every action in a tamper-evident
    audit log. `janitor report` shows what a sweep would do without changing anything.

    Exit codes: 0 ok, 1 some actions failed, 2 usage or config error, 3 another sweep is running.
    """


for _family in (sweep, archive, pins, service, audit, doctor):
    for _command in _family.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="janitor")


if __name__ == "__main__":  # pragma: no cover
    main()
