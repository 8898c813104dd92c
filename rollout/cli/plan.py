"""The planning commands: ``plan``, ``plan explain``, ``lint``, ``diff``, ``fleet generate``. None touches AWS.

``--inventory``, ``--policy`` and ``--encoding`` also come from ``ROLLOUT_INVENTORY``,
``ROLLOUT_POLICY`` and ``ROLLOUT_ENCODING``; a flag wins over the variable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rollout.cli.common import note, stdout
from rollout.plan.fleet import EXAMPLE_FLEET_SIZE, EXAMPLE_SEED

if TYPE_CHECKING:
    from rollout.plan.api import Planned

FORMATS = click.Choice(["table", "json", "markdown"])


def inventory_option(f: Any) -> Any:
    return click.option("--inventory", "inventory", type=click.Path(dir_okay=False, path_type=Path),
                        envvar="ROLLOUT_INVENTORY", help="Inventory file: CSV, JSON or JSON Lines.")(f)


def policy_option(f: Any) -> Any:
    return click.option("--policy", "policy", type=click.Path(dir_okay=False, path_type=Path),
                        envvar="ROLLOUT_POLICY", help="Rollout policy (YAML).")(f)


def encoding_option(f: Any) -> Any:
    return click.option("--encoding", envvar="ROLLOUT_ENCODING", default=None,
                        help="Decode the inventory with this encoding instead of the fixed rule "
                             "(BOM, else UTF-8, else CP932).")(f)


def _require(**values: Any) -> None:
    missing = [f"--{k}" for k, v in values.items() if v is None]
    if missing:
        raise click.UsageError(f"missing {' and '.join(missing)} (or ROLLOUT_{missing[0][2:].upper()}).")


def _planned(inventory: Path, policy: Path, encoding: str | None) -> Planned:
    from rollout.plan import api

    planned = api.make_plan(inventory, policy, encoding=encoding)
    inv = planned.inventory
    note(f"Read {inventory}: {len(inv):,} devices, encoding {inv.encoding}.")
    return planned


@click.group(invoke_without_command=True)
@inventory_option
@policy_option
@encoding_option
@click.option("--out", type=click.Path(path_type=Path), help="Write the plan JSON here (readable by you only).")
@click.option("--force", is_flag=True, help="Replace an existing --out file (never an input, the state or a device).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.pass_context
def plan(ctx: click.Context, inventory: Path | None, policy: Path | None, encoding: str | None,
         out: Path | None, force: bool, fmt: str) -> None:
    """Plan the waves of INVENTORY under POLICY; never touches AWS.

    With `explain DEVICE_ID`: why that device is in its wave.
    """
    if ctx.invoked_subcommand is not None:
        return
    from rollout.plan import api

    _require(inventory=inventory, policy=policy)
    assert inventory is not None and policy is not None
    if out is not None:
        from rollout.files import check_output

        check_output(out, inputs=(inventory, policy), force=force)
    planned = _planned(inventory, policy, encoding)
    if out is not None:
        api.write_plan(planned.plan, out, inputs=(inventory, policy), force=force)
        note(f"Wrote {out} (plan hash {planned.plan.plan_hash}).")
    _print_plan(planned, fmt)


def _print_plan(planned: Planned, fmt: str) -> None:
    from rollout.plan.planfile import plan_to_json
    from rollout.reports.render import plan_markdown, plan_table

    min_size = planned.policy.cohorts.min_size
    if fmt == "json":
        click.echo(json.dumps(plan_to_json(planned.plan), ensure_ascii=False, indent=1))
    elif fmt == "markdown":
        click.echo(plan_markdown(planned.plan, min_size), nl=False)
    else:
        stdout().print(plan_table(planned.plan, min_size))


@plan.command("explain")
@click.argument("device_id")
@inventory_option
@policy_option
@encoding_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan_explain(device_id: str, inventory: Path | None, policy: Path | None, encoding: str | None,
                 fmt: str) -> None:
    """Why DEVICE_ID is in its wave: canary pick, spread order, constraints met."""
    from rollout.plan import api
    from rollout.reports.render import explanation_text

    _require(inventory=inventory, policy=policy)
    assert inventory is not None and policy is not None
    result = api.explain(inventory, policy, device_id, encoding=encoding)
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=1))
    else:
        click.echo(explanation_text(result))


@click.command()
@inventory_option
@policy_option
@encoding_option
def lint(inventory: Path | None, policy: Path | None, encoding: str | None) -> None:
    """Check the policy (and the inventory, and that a plan exists) offline; list every problem."""
    from rollout.plan.policy import load_policy

    _require(policy=policy)
    assert policy is not None
    if inventory is None:
        load_policy(policy)
        click.echo(f"{policy}: ok")
        return
    planned = _planned(inventory, policy, encoding)
    c = planned.plan.coverage
    click.echo(f"{policy}: ok; {inventory}: ok; plan feasible: {len(planned.plan.waves)} waves, "
               f"canary covers {c.cohorts_covered}/{c.cohorts_total} cohorts, "
               f"projected completion {planned.plan.projected_completion}")


@click.command()
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def diff(old: Path, new: Path, fmt: str) -> None:
    """What changes from plan OLD to plan NEW: moved devices, resized waves, voided approvals."""
    from rollout.plan import api
    from rollout.plan.diff import diff_to_json
    from rollout.reports.render import diff_markdown, diff_table

    result = api.diff(old, new)
    if fmt == "json":
        click.echo(json.dumps(diff_to_json(result), ensure_ascii=False, indent=1))
    elif fmt == "markdown":
        click.echo(diff_markdown(result), nl=False)
    else:
        stdout().print(diff_table(result))


@click.group()
def fleet() -> None:
    """Generated fleets for demos, rehearsals and benchmarks."""


@fleet.command("generate")
@click.option("--devices", type=int, default=EXAMPLE_FLEET_SIZE, show_default=True)
@click.option("--seed", type=int, default=EXAMPLE_SEED, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="CSV, or JSON / JSON Lines by suffix (.json, .jsonl); readable by you only.")
@click.option("--force", is_flag=True, help="Replace an existing --out file (never the state or a device).")
@click.option("--encoding", default="utf-8", show_default=True, help="utf-8, utf-8-sig or cp932.")
@click.option("--managed-nodes", is_flag=True, help="Add each device's instance_id (its SSM managed node).")
def fleet_generate(devices: int, seed: int, out: Path, force: bool, encoding: str, managed_nodes: bool) -> None:
    """Write a realistic inventory of DEVICES devices; the same seed gives the same file."""
    from rollout.plan import api

    api.generate_fleet_file(out, devices, seed, encoding=encoding, managed_nodes=managed_nodes, force=force)
    note(f"Wrote {out}: {devices:,} devices, seed {seed}, encoding {encoding}.")


@click.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".rollout/demo"), show_default=True, help="Where the demo writes its files.")
@click.option("--aws-local", is_flag=True,
              help="Run it through the real AWS code path against AWS emulated on 127.0.0.1 (needs the aws-local extra).")
@click.option("--devices", type=click.IntRange(60, 100_000), default=None,
              help="Fleet size (default: 10,000; 2,000 with --aws-local).")
def demo(workdir: Path, aws_local: bool, devices: int | None) -> None:
    """The main job on embedded defaults: generate the example fleet, plan it, rehearse it.

    It refuses a --dir that holds anything but an earlier demo (which it marks as its own)."""
    from rollout.cli.demo import claim_demo_dir

    claim_demo_dir(workdir)
    if aws_local:
        from rollout.cli.demo_aws import run_aws_demo

        run_aws_demo(workdir / "aws-local", stdout(), devices or 2000)
    else:
        from rollout.cli.demo import run_demo

        run_demo(workdir, stdout(), devices or EXAMPLE_FLEET_SIZE)


COMMANDS = (plan, lint, diff, fleet, demo)
