"""The commands that drive a rollout: start, run, tick, status, approve, triage, pause, resume,
rollback, unlock, audit verify, rehearse. Each parses, calls one library function, prints.

``--state sqlite:PATH`` (or a plain path; ``ROLLOUT_STATE``) picks the state file, default
``.rollout/state.db``. ``--rollout ID`` picks the rollout when the file holds several.
``--as NAME`` (``ROLLOUT_ACTOR``) is who acts; approvals and triage record it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from rollout import api
from rollout.backends.simulator import Scenario, Simulator, load_scenario
from rollout.driver import Driver, SimulatedClock, last_event_time
from rollout.approvals import missing_roles
from rollout.errors import AwaitingHumanError, InputError, RolloutError
from rollout.lease import LeaseHeldError, force_unlock
from rollout.operations import (
    add_issue,
    approve,
    pause,
    replan,
    request_rollback,
    resume,
    set_issue,
    start_rollout,
)
from rollout.planfile import load_plan_file
from rollout.rehearse import world_path
from rollout.rehearse_view import print_summary, run_rehearsal
from rollout.status import status_json, status_table
from rollout.store import DEFAULT_STATE, SqliteStore

def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def open_store(state: str) -> SqliteStore:
    kind, sep, rest = state.partition(":")
    if sep and kind == "sqlite":
        return SqliteStore(rest)
    if sep and "/" not in kind and kind not in ("", "."):
        raise InputError(f"--state {state!r}: unknown store {kind!r}; use sqlite:PATH (or a plain path).")
    return SqliteStore(state)


def pick_rollout(store: SqliteStore, rollout: str | None) -> str:
    if rollout:
        store.status(rollout)
        return rollout
    ids = store.rollout_ids()
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise InputError(f"{store.path} holds no rollout; start one with `rollout start --plan plan.json`.")
    raise InputError(f"{store.path} holds several rollouts ({', '.join(ids)}); pass --rollout ID.")


def state_option(f: Any) -> Any:
    return click.option("--state", default=f"sqlite:{DEFAULT_STATE}", envvar="ROLLOUT_STATE", show_default=True,
                        help="State store: sqlite:PATH.")(f)


def rollout_option(f: Any) -> Any:
    return click.option("--rollout", "rollout_id", envvar="ROLLOUT_ID", help="Rollout id (default: the only one).")(f)


def actor_option(required: bool) -> Callable[[Any], Any]:
    def wrap(f: Any) -> Any:
        return click.option("--as", "actor", envvar="ROLLOUT_ACTOR", required=required,
                            default=None if required else getpass.getuser(),
                            help="Who acts (recorded in the audit log).")(f)
    return wrap


def _backend(store: SqliteStore, rollout_id: str, state: Path) -> Simulator:
    settings = store.backend_settings(rollout_id)
    if settings.get("backend") != "simulator":
        raise InputError(f"rollout {rollout_id} has no backend this command can drive "
                         f"({settings.get('backend') or 'none recorded'}); start it with --scenario for a rehearsal.")
    return Simulator(world_path(state), Scenario.model_validate(settings["scenario"]))


def register(cli: click.Group) -> None:
    for command in (start, replan_cmd, run, tick, status, approve_cmd, triage, pause_cmd, resume_cmd, rollback, unlock, audit,
                    rehearse_cmd):
        cli.add_command(command)


@click.command()
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--inventory", type=click.Path(dir_okay=False, path_type=Path), required=True, envvar="ROLLOUT_INVENTORY")
@click.option("--scenario", type=click.Path(dir_okay=False, path_type=Path),
              help="Drive the rollout with the rehearsal simulator and this scenario.")
@click.option("--no-separation-of-duties", is_flag=True, help="Let the starter approve waves too.")
@state_option
@actor_option(False)
def start(plan_path: Path, inventory: Path, scenario: Path | None, no_separation_of_duties: bool, state: str,
          actor: str) -> None:
    """Record a new rollout from PLAN and the INVENTORY it was made from; nothing moves yet."""
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    load_plan_file(plan_path)
    devices = api.load_inventory_for_plan(inventory, plan)
    store = open_store(state)
    now = now_utc()
    start_rollout(store, plan["rollout"], plan, devices, actor, not no_separation_of_duties, now)
    if scenario is not None:
        store.set_backend_settings(plan["rollout"], {"backend": "simulator",
                                                     "scenario": load_scenario(scenario).model_dump(mode="json")},
                                   actor, now)
    click.echo(f"Started rollout {plan['rollout']} ({len(devices):,} devices, plan {plan['plan_hash'][:12]}) in "
               f"{store.path}. Next: rollout approve {plan['waves'][0]['name']} --as NAME --role ROLE")


@click.command("replan")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@state_option
@rollout_option
@actor_option(True)
def replan_cmd(plan_path: Path, state: str, rollout_id: str | None, actor: str) -> None:
    """Adopt a new plan for the waves not started yet; changed waves need approving again."""
    load_plan_file(plan_path)
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    store = open_store(state)
    voided = replan(store, pick_rollout(store, rollout_id), plan, actor, now_utc())
    click.echo(f"Adopted plan {plan['plan_hash'][:12]}. "
               + (f"Approvals voided for: {', '.join(voided)}." if voided else "No wave changed."))


def _drive(state: str, rollout_id: str | None, actor: str, *, once: bool, until: str | None, simulated: bool,
           step_hours: float, interval: float) -> None:
    store = open_store(state)
    rid = pick_rollout(store, rollout_id)
    backend = _backend(store, rid, store.path)
    clock = SimulatedClock(last_event_time(store, rid)) if simulated else now_utc
    try:
        with Driver(store, rid, backend, actor, clock, notify=lambda m: click.echo(m, err=True)) as driver:
            while True:
                decision = driver.tick()
                waves = {w.name: w for w in store.waves(rid)}
                if once or driver.is_settled() or (until and until in waves and waves[until].phase.is_terminal):
                    break
                if driver.phase().value == "paused" and not decision.calls:
                    click.echo("The rollout is paused or a wave is held for a human; see `rollout status`.", err=True)
                    break
                waiting = _waiting_for(store, rid) if decision.empty else ""
                if waiting and simulated:
                    raise AwaitingHumanError(f"rollout {rid}: {waiting}.")
                if isinstance(clock, SimulatedClock):
                    clock.advance(decision.wake_at, dt.timedelta(hours=step_hours))
                elif not decision.calls:
                    time.sleep(interval)
    except LeaseHeldError as err:
        raise RolloutError(str(err)) from None
    finally:
        backend.close()
    click.echo(f"rollout {rid}: {driver.phase().value}")


def _waiting_for(store: SqliteStore, rollout_id: str) -> str:
    """What the next wave waits for when only a person can unblock it ('' if nothing)."""
    status = store.status(rollout_id)
    waves = store.waves(rollout_id)
    active = next((w for w in waves if not w.phase.is_terminal), None)
    if active is None or active.phase.is_started:
        return ""
    missing = missing_roles(active, store.approvals(rollout_id), status)
    if missing:
        return f"wave {active.name} waits for approval by {', '.join(missing)} (rollout approve {active.name} --role ROLE)"
    previous = waves[active.index - 1].name if active.index else None
    untriaged = [i.id for i in store.issues(rollout_id) if i.severity is None and i.reported_during == previous]
    if untriaged:
        return f"wave {active.name} waits for the triage of issue(s) {', '.join(f'#{i}' for i in untriaged)}"
    return ""


@click.command()
@click.option("--until", "until", help="Stop once this wave has passed or is rolled back.")
@click.option("--once", is_flag=True, help="One tick, then stop.")
@click.option("--simulated-time", is_flag=True, help="Compressed time (rehearsals): jump to the next change.")
@click.option("--step", "step_hours", type=float, default=6.0, show_default=True, help="Hours per simulated tick.")
@click.option("--interval", type=float, default=60.0, show_default=True, help="Seconds between real-time ticks.")
@state_option
@rollout_option
@actor_option(False)
def run(until: str | None, once: bool, simulated_time: bool, step_hours: float, interval: float, state: str,
        rollout_id: str | None, actor: str) -> None:
    """Drive the rollout until it completes, halts, or needs a human (holds the rollout's lease)."""
    _drive(state, rollout_id, actor, once=once, until=until, simulated=simulated_time, step_hours=step_hours,
           interval=interval)


@click.command()
@state_option
@rollout_option
@actor_option(False)
def tick(state: str, rollout_id: str | None, actor: str) -> None:
    """One tick of the engine (the same as `rollout run --once`)."""
    _drive(state, rollout_id, actor, once=True, until=None, simulated=False, step_hours=0, interval=0)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@state_option
@rollout_option
def status(fmt: str, state: str, rollout_id: str | None) -> None:
    """The rollout, its waves, gate decisions with their evidence, approvals and issues."""
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
    store = open_store(state)
    issue_id = add_issue(store, pick_rollout(store, rollout_id), title, selector, severity, actor, now_utc())
    click.echo(f"Issue #{issue_id} recorded{'' if severity else ' (untriaged: the next wave waits for its triage)'}.")


@triage.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@state_option
@rollout_option
def triage_list(fmt: str, state: str, rollout_id: str | None) -> None:
    """List issues with severity, status, and the devices each holds."""
    store = open_store(state)
    issues = status_json(store, pick_rollout(store, rollout_id))["issues"]
    if fmt == "json":
        click.echo(json.dumps(issues, ensure_ascii=False, indent=1))
        return
    for i in issues:
        click.echo(f"#{i['id']} {i['severity'] or 'untriaged'} {i['status']} {i['selector']} "
                   f"holds {i['holds_devices']}: {i['title']}")


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
    store = open_store(state)
    pause(store, pick_rollout(store, rollout_id), actor, reason, now_utc())
    click.echo("Paused.")


@click.command("resume")
@state_option
@rollout_option
@actor_option(True)
def resume_cmd(state: str, rollout_id: str | None, actor: str) -> None:
    """Clear a pause or halt; held waves are judged again."""
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
    store = open_store(state)
    holder = force_unlock(store, pick_rollout(store, rollout_id), lease_id, actor, time.time())
    click.echo(f"Lease of {holder} removed by {actor}.")


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
        raise RolloutError(f"audit log of {rid} is BROKEN at event {report.first_broken}: {report.problem}.")
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
    result = run_rehearsal(plan_path, inventory, scenario, state_path, start_date, Console())
    print_summary(result, state_path, Console())
