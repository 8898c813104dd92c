"""The ``rollout`` command. Each command parses, calls one library function, prints.

Exit codes: 0 success; 1 failure; 2 bad input or usage (every problem is listed on stderr); 3
waiting for a person. Option values come from, in order: the flag, then a ``ROLLOUT_*``
environment variable (``ROLLOUT_INVENTORY``, ``ROLLOUT_POLICY``, ``ROLLOUT_STATE``, ...), then the
default.

The command modules import only click and ``rollout.cli.common`` at module level; the library a
command needs is imported when it runs (``bench/bench_startup.py`` measures the start).
"""

from __future__ import annotations

from typing import Any

import click

from rollout.cli import drive, duties, operate, plan, report, state
from rollout.errors import RolloutError


class RolloutGroup(click.Group):
    """Turns RolloutError into its message on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RolloutError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=RolloutGroup)
@click.version_option(package_name="zt-rollout")
@click.option("--debug", is_flag=True, envvar="ROLLOUT_DEBUG",
              help="Debug lines on stderr: each AWS call's API, outcome and time (never parameters or credentials).")
def cli(debug: bool) -> None:
    """Stage a device fleet's move to zero trust in waves."""
    from rollout.logs import configure as configure_logging

    configure_logging(debug)


for _module in (plan, drive, operate, duties, report, state):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="rollout")
