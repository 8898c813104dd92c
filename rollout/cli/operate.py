"""The commands people use on a running rollout: status, approve, triage, pause, resume, rollback,
unlock, audit verify, and rehearse. Each parses, calls one library function, prints. The driving
commands (start, replan, run, tick) are in ``rollout.cli.drive``, the state store's in
``rollout.cli.state``; the options they share in ``rollout.cli.common``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import click

from rollout.cli.common import (
    actor_option,
    now_utc,
    open_store,
    pick_rollout,
    rollout_option,
    state_option,
)
from rollout.errors import RolloutError


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@state_option
@rollout_option
def status(fmt: str, state: str, rollout_id: str | None) -> None:
    """The rollout, its waves, gate decisions with their evidence, approvals and issues."""
    from rich.console import Console

    from rollout.reports.status import status_json, status_table

    store = open_store(state)
    data = status_json(store, pick_rollout(store, rollout_id))
    if fmt == "json":
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
    else:
        Console(soft_wrap=True).print(status_table(data))


@click.command("approve")
@click.argument("wave")
@click.option("--role", default="pm", show_default=True)
@click.option("--comment", default="")
@state_option
@rollout_option
@actor_option(True)
def approve_cmd(wave: str, role: str, comment: str, state: str, rollout_id: str | None, actor: str) -> None:
    """Approve WAVE for its current content hash."""
    from rollout.drive.operations import approve

    store = open_store(state)
    w = approve(store, pick_rollout(store, rollout_id), wave, actor, role, comment, now_utc())
    click.echo(f"{actor} approved {w.name} as {role} for hash {w.hash[:12]}.")


@click.group()
def triage() -> None:
    """Report and classify issues; an open blocker holds the devices its selector matches."""


@triage.command("add")
@click.option("--title", required=True)
@click.option("--selector", required=True, help="Cohort, e.g. model=FMV-U9 or department=経理部,app=会計システム.")
@click.option("--severity", type=click.Choice(["blocker", "major", "minor"]), help="Leave out: untriaged.")
@state_option
@rollout_option
@actor_option(True)
def triage_add(title: str, selector: str, severity: str | None, state: str, rollout_id: str | None,
               actor: str) -> None:
    """Report an issue."""
    from rollout.drive.operations import add_issue

    store = open_store(state)
    issue_id = add_issue(store, pick_rollout(store, rollout_id), title, selector, severity, actor, now_utc())
    click.echo(f"Issue #{issue_id} recorded{'' if severity else ' (untriaged: the next wave waits for its triage)'}.")


@triage.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@state_option
@rollout_option
def triage_list(fmt: str, state: str, rollout_id: str | None) -> None:
    """List issues with severity, status, and the devices each holds."""
    from rollout.reports.status import status_json

    store = open_store(state)
    issues = status_json(store, pick_rollout(store, rollout_id))["issues"]
    if fmt == "json":
        click.echo(json.dumps(issues, ensure_ascii=False, indent=1))
        return
    from rollout.templating import terminal_safe

    for i in issues:
        click.echo(terminal_safe(f"#{i['id']} {i['severity'] or 'untriaged'} {i['status']} {i['selector']} "
                                 f"holds {i['holds_devices']}: {i['title']}", one_line=True))


@triage.command("set")
@click.argument("issue_id", type=int)
@click.option("--severity", type=click.Choice(["blocker", "major", "minor"]))
@click.option("--status", "status_", type=click.Choice(["open", "workaround", "resolved", "accepted"]))
@state_option
@rollout_option
@actor_option(True)
def triage_set(issue_id: int, severity: str | None, status_: str | None, state: str, rollout_id: str | None,
               actor: str) -> None:
    """Triage an issue: its severity and/or status."""
    from rollout.drive.operations import set_issue

    store = open_store(state)
    set_issue(store, pick_rollout(store, rollout_id), issue_id, actor, now_utc(), severity=severity, status=status_)
    click.echo(f"Issue #{issue_id} updated by {actor}.")


@click.command("pause")
@click.option("--reason", default="paused by an operator")
@state_option
@rollout_option
@actor_option(True)
def pause_cmd(reason: str, state: str, rollout_id: str | None, actor: str) -> None:
    """No new wave starts until `rollout resume`; rollbacks and gates go on."""
    from rollout.drive.operations import pause

    store = open_store(state)
    pause(store, pick_rollout(store, rollout_id), actor, reason, now_utc())
    click.echo("Paused.")


@click.command("resume")
@state_option
@rollout_option
@actor_option(True)
def resume_cmd(state: str, rollout_id: str | None, actor: str) -> None:
    """Clear a pause or halt; held waves are judged again."""
    from rollout.drive.operations import resume

    store = open_store(state)
    waves = resume(store, pick_rollout(store, rollout_id), actor, now_utc())
    click.echo("Resumed." + (f" Judging again: {', '.join(waves)}." if waves else ""))


@click.command()
@click.argument("wave")
@click.option("--reason", default="on demand")
@state_option
@rollout_option
@actor_option(True)
def rollback(wave: str, reason: str, state: str, rollout_id: str | None, actor: str) -> None:
    """Roll WAVE back: recorded now, carried out by the driver (`rollout run`) on its next tick."""
    from rollout.drive.operations import request_rollback

    store = open_store(state)
    w = request_rollback(store, pick_rollout(store, rollout_id), wave, actor, reason, now_utc())
    click.echo(f"Wave {w.name}: rollback recorded; the rollout is halted. `rollout run` reverts its devices.")


@click.command()
@click.option("--lease-id", required=True, help="The exact id of the lease to break (from the driver's message).")
@state_option
@rollout_option
@actor_option(True)
def unlock(lease_id: str, state: str, rollout_id: str | None, actor: str) -> None:
    """Break a dead driver's lease (audited)."""
    from rollout.store.lease import force_unlock

    store = open_store(state)
    from rollout.templating import terminal_safe

    holder = force_unlock(store, pick_rollout(store, rollout_id), lease_id, actor, time.time())
    click.echo(terminal_safe(f"Lease of {holder} removed by {actor}.", one_line=True))


@click.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@state_option
@rollout_option
def audit_verify(state: str, rollout_id: str | None) -> None:
    """Check every event's hash and link; name the first broken entry."""
    store = open_store(state)
    rid = pick_rollout(store, rollout_id)
    report = store.verify_audit(rid)
    if not report.ok:
        from rollout.templating import terminal_safe

        where = f" at event {report.first_broken}" if report.first_broken is not None else ""
        raise RolloutError(terminal_safe(f"audit log of {rid} is BROKEN{where}: {report.problem}. "
                                         "Compare it with a backup of the state store."))
    click.echo(f"audit log of {rid}: {report.events:,} events verified; head {report.head_hash}")


@click.command("rehearse")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--inventory", type=click.Path(dir_okay=False, path_type=Path), required=True, envvar="ROLLOUT_INVENTORY")
@click.option("--scenario", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(".rollout/rehearsal.db"), show_default=True)
@click.option("--start", "start_date", type=click.DateTime(["%Y-%m-%d"]), help="Start of the rehearsal (default: plan's).")
def rehearse_cmd(plan_path: Path, inventory: Path, scenario: Path, state_path: Path,
                 start_date: dt.datetime | None) -> None:
    """A whole rollout against the simulator in compressed time; resumable on the same --state."""
    from rich.console import Console
    
    from rollout.cli.rehearse_view import print_summary, run_rehearsal

    result = run_rehearsal(plan_path, inventory, scenario, state_path, start_date, Console())
    print_summary(result, state_path, Console())


COMMANDS = (status, approve_cmd, triage, pause_cmd, resume_cmd, rollback, unlock, audit, rehearse_cmd)
