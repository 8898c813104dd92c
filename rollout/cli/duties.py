"""``rollout separation-of-duties waive``: let the starter approve waves too, as a recorded decision.

Separation of duties is on for every rollout from ``rollout start``. Only a person with the
``security`` role who did not start the rollout may waive it, with a reason; ``rollout status``
and the report show who did, and the audit log records it.
"""

from __future__ import annotations

import click

from rollout.cli.common import actor_option, now_utc, open_store, pick_rollout, rollout_option, state_option


@click.group("separation-of-duties")
def duties() -> None:
    """Separation of duties: the starter of a rollout may not approve its waves unless security waives it."""


@duties.command("waive")
@click.option("--role", required=True, help="The role you act in: security.")
@click.option("--reason", required=True, help="Why the starter may approve waves of this rollout.")
@state_option
@rollout_option
@actor_option(True)
def waive(role: str, reason: str, state: str, rollout_id: str | None, actor: str) -> None:
    """Let the rollout's starter approve its waves too (security role; recorded and shown)."""
    from rollout.drive.operations import waive_separation_of_duties

    store = open_store(state)
    rid = pick_rollout(store, rollout_id)
    status = waive_separation_of_duties(store, rid, actor, role, reason, now_utc())
    waived = status.duties_waived or {}
    click.echo(f"Separation of duties waived for rollout {rid} by {waived.get('by', actor)} ({role}): "
               f"{status.started_by} may now approve its waves. `rollout status` shows it.")


COMMANDS = (duties,)
