"""The commands that drive a rollout: start, replan, run, tick. Each parses, calls the library, prints.

``rollout start --scenario S.yaml`` drives the rollout with the rehearsal simulator;
``rollout start --backend aws --contracts SOURCE`` with AWS, through each site's stack resources
(``SOURCE``: ``ssm[:REGION,...]``, ``pulumi[:DIR]`` or a directory of ``<site>.json``).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from rollout.backends import Backend
    from rollout.drive.loop import DriveOptions
    from rollout.store.api import StateStore

DEFAULT_LEASE_TTL = 60.0  # seconds; the same as rollout.store.lease.DEFAULT_TTL (a test checks)


def parse_rates(values: tuple[str, ...]) -> dict[str, float]:
    rates: dict[str, float] = {}
    for value in values:
        api_name, sep, number = value.partition("=")
        try:
            rate = float(number)
        except ValueError:
            rate = -1.0
        if not sep or not api_name or rate < 0:
            raise click.BadParameter(f"{value!r} is not API=PER_SECOND (e.g. identitystore:CreateGroupMembership=30)",
                                     param_hint="--rate")
        rates[api_name] = rate
    return rates


def _local_fleet(aws: Backend, settings: Mapping[str, Any], store: StateStore, rollout_id: str) -> Backend:
    """A rollout started against the local AWS emulation (``rollout demo --aws-local``, the tests):
    its simulated devices answer the commands. Imported only for such a rollout."""
    from rollout.awslocal.devices import local_fleet

    return local_fleet(aws, settings, store, rollout_id)


@click.command()
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--inventory", type=click.Path(dir_okay=False, path_type=Path), required=True, envvar="ROLLOUT_INVENTORY")
@click.option("--scenario", type=click.Path(dir_okay=False, path_type=Path),
              help="Drive the rollout with the rehearsal simulator and this scenario.")
@click.option("--backend", "backend_kind", type=click.Choice(["simulator", "aws"]),
              help="Who moves the devices (default: simulator with --scenario, else aws).")
@click.option("--contracts", envvar="ROLLOUT_CONTRACTS",
              help="aws: the sites' contracts: ssm[:REGION,...], pulumi[:DIR] or a directory of <site>.json.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True,
              help="aws: calls in flight at once.")
@click.option("--rate", "rates", multiple=True, help="aws: API=PER_SECOND, e.g. ssm:SendCommand=5 (repeatable).")
@click.option("--retry-deadline", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="aws: seconds of backing off from throttling before a call gives up (never a device failure).")
@click.option("--no-assume-role", is_flag=True, help="aws: call as this identity, not each site's orchestrator role.")
@click.option("--world", type=click.Path(dir_okay=False, path_type=Path), help="simulator: where its fleet is kept.")
@click.option("--no-separation-of-duties", is_flag=True, hidden=True,
              help="Refused: separation of duties is waived after start by security (`rollout separation-of-duties waive`).")
@state_option
@actor_option(False)
def start(plan_path: Path, inventory: Path, scenario: Path | None, backend_kind: str | None, contracts: str | None,
          concurrency: int, rates: tuple[str, ...], retry_deadline: float, no_assume_role: bool, world: Path | None,
          no_separation_of_duties: bool, state: str, actor: str) -> None:
    """Record a new rollout from PLAN and the INVENTORY it was made from; nothing moves yet."""
    if no_separation_of_duties:
        raise click.UsageError("--no-separation-of-duties: the starter cannot turn off the rule that binds them. Start "
                               "the rollout, then a person with the security role runs `rollout separation-of-duties "
                               "waive --role security --reason TEXT --as NAME`; status and the report show it.")
    from rollout.backends.factory import aws_settings, simulator_settings, world_for
    from rollout.backends.simulator import load_scenario
    from rollout.drive.loop import begin_rollout
    from rollout.plan import api
    from rollout.plan.planfile import load_plan_file


    load_plan_file(plan_path)
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    devices = api.load_inventory_for_plan(inventory, plan)
    kind = backend_kind or ("simulator" if scenario is not None else "aws")
    if kind == "simulator":
        if scenario is None:
            raise click.UsageError("--backend simulator needs --scenario FILE.")
        settings = simulator_settings(load_scenario(scenario), world or world_for(state, str(plan["rollout"])))
    else:
        if not contracts:
            raise click.UsageError("--backend aws needs --contracts SOURCE (ssm, pulumi or a directory), "
                                   "or --scenario for a rehearsal.")
        settings = aws_settings(contracts, devices, {"concurrency": concurrency, "rates": parse_rates(rates),
                                                     "retry_deadline": retry_deadline,
                                                     "assume_role": not no_assume_role},
                                inventory_name=str(inventory))
    store = open_store(state, create=True)
    begin_rollout(store, plan, devices, actor, True, settings, now_utc())
    click.echo(f"Started rollout {plan['rollout']} ({len(devices):,} devices, plan {plan['plan_hash'][:12]}, "
               f"backend {kind}) in {store.location}. Next: rollout approve {plan['waves'][0]['name']} "
               "--as NAME --role ROLE")


@click.command("replan")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@state_option
@rollout_option
@actor_option(True)
def replan_cmd(plan_path: Path, state: str, rollout_id: str | None, actor: str) -> None:
    """Adopt a new plan for the waves not started yet; changed waves need approving again."""
    from rollout.drive.operations import replan
    from rollout.plan.planfile import load_plan_file


    load_plan_file(plan_path)
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    store = open_store(state)
    voided = replan(store, pick_rollout(store, rollout_id), plan, actor, now_utc())
    click.echo(f"Adopted plan {plan['plan_hash'][:12]}. "
               + (f"Approvals voided for: {', '.join(voided)}." if voided else "No wave changed."))


@contextmanager
def progress_bars() -> Iterator[Callable[[str, str, int, int], None]]:
    """A progress bar per backend call on stderr (when it is a terminal)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )


    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not sys.stderr.isatty()) as bars:
        tasks: dict[tuple[str, str], object] = {}

        def report(verb: str, wave: str, done: int, total: int) -> None:
            key = (verb, wave)
            if key not in tasks:
                tasks[key] = bars.add_task(f"{verb} {wave}", total=total)
            bars.update(tasks[key], completed=done, total=total)  # type: ignore[arg-type]

        yield report


def _drive(state: str, rollout_id: str | None, actor: str, options: DriveOptions) -> None:
    from rollout.backends.factory import open_backend, world_for
    from rollout.drive.loop import drive
    from rollout.store.lease import LeaseHeldError

    store = open_store(state)
    rid = pick_rollout(store, rollout_id)
    backend = open_backend(store, rid, default_world=world_for(store.location, rid), wrap=_local_fleet)
    try:
        with progress_bars() as report:
            phase = drive(store, rid, backend, actor, options, notify=lambda m: click.echo(m, err=True),
                          progress=report)
    except LeaseHeldError as err:
        raise RolloutError(str(err)) from None
    finally:
        backend.close()
    click.echo(f"rollout {rid}: {phase.value}")


@click.command()
@click.option("--until", "until", help="Stop once this wave has passed or is rolled back.")
@click.option("--once", is_flag=True, help="One tick, then stop.")
@click.option("--simulated-time", is_flag=True, help="Compressed time (rehearsals): jump to the next change.")
@click.option("--step", "step_hours", type=float, default=6.0, show_default=True, help="Hours per simulated tick.")
@click.option("--interval", type=float, default=60.0, show_default=True, help="Seconds between real-time ticks.")
@click.option("--lease-ttl", type=click.FloatRange(min=1), default=DEFAULT_LEASE_TTL, envvar="ROLLOUT_LEASE_TTL",
              show_default=True, help="Seconds the driver's lease lasts unless renewed (each tick renews it).")
@state_option
@rollout_option
@actor_option(False)
def run(until: str | None, once: bool, simulated_time: bool, step_hours: float, interval: float, lease_ttl: float,
        state: str, rollout_id: str | None, actor: str) -> None:
    """Drive the rollout until it completes, halts, or needs a human (holds the rollout's lease)."""
    from rollout.drive.loop import DriveOptions

    _drive(state, rollout_id, actor, DriveOptions(once, until, simulated_time, dt.timedelta(hours=step_hours),
                                                  interval, lease_ttl))


@click.command()
@state_option
@rollout_option
@actor_option(False)
def tick(state: str, rollout_id: str | None, actor: str) -> None:
    """One tick of the engine (the same as `rollout run --once`)."""
    from rollout.drive.loop import DriveOptions

    _drive(state, rollout_id, actor, DriveOptions(once=True))


COMMANDS = (start, replan_cmd, run, tick)
