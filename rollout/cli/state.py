"""``rollout state``: create the team store, and move a rollout from one store to another."""

from __future__ import annotations

import click

from rollout.cli.common import rollout_option, state_option
from rollout.store.locations import STATE_HELP


@click.group()
def state() -> None:
    """The state store: create it, or copy a rollout between stores."""


@state.command("init")
@state_option
def state_init(state: str) -> None:
    """Create the DynamoDB table of --state dynamodb://TABLE?region=R (SQLite needs nothing)."""
    from rollout.store.factory import init_store

    click.echo(init_store(state))


@state.command("migrate")
@click.option("--to", "target", required=True, help=f"The store to copy to. {STATE_HELP}")
@state_option
@rollout_option
def state_migrate(target: str, state: str, rollout_id: str | None) -> None:
    """Copy a rollout from --state to --to, with its whole audit log; no driver may hold it."""
    from rollout.store.factory import migrate_rollout

    copied = migrate_rollout(state, target, rollout_id)
    click.echo(f"Copied rollout {copied.rollout_id} ({copied.devices:,} devices, {copied.events:,} events, head "
               f"{copied.head_hash[:12]}) from {copied.source} to {copied.target}; the audit log verifies there. "
               f"Drive it from now on with --state {target}.")


COMMANDS = (state,)
