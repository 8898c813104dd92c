"""``rollout demo --aws-local``: the demo's rehearsal, but through the real AWS code path over HTTP.

AWS is emulated by moto on 127.0.0.1 (``rollout.awslocal``; the ``aws-local`` extra). The demo
creates what every site's stack would create and publishes the contracts as SSM parameters; the
orchestrator reads them from SSM, keeps its state in a DynamoDB table, moves users into the
migrated groups, sends the kitting and rollback documents, and judges the waves from the
check-ins that simulated devices write as the document's last step would (same scenario as the
rehearsal: one laptop model fails kitting, sign-in breaks in wave-4). It ends by counting, in
moto's own state, the commands and membership changes: none may be duplicated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from rollout.backends.factory import aws_settings
from rollout.backends.simulator import load_scenario
from rollout.cli.rehearse_view import print_summary, run_rehearsal
from rollout.core.contract import SiteContract
from rollout.drive.rehearse import Rehearsal
from rollout.plan import api

if TYPE_CHECKING:
    from rollout.awslocal.audit import Mutations

STATE_TABLE = "zt-rollout-state"
# moto has no rate limits, and a rehearsal compresses months: the per-tick reads may go faster
# than the production defaults (rollout.backends.aws.calls.DEFAULT_RATES) that protect real accounts.
LOCAL_RATES = {"cloudwatch": 200.0, "dynamodb": 500.0, "ssm": 200.0, "identitystore": 200.0}


def run_aws_demo(workdir: Path, console: Console, devices: int) -> Rehearsal:
    from rollout.awslocal.audit import mutations
    from rollout.awslocal.devices import local_fleet
    from rollout.awslocal.server import local_aws
    from rollout.awslocal.site import CONTRACTS_SOURCE, HOME_REGION, provision
    from rollout.store.factory import init_store, open_store

    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("*.db*"):
        stale.unlink()
    examples = api.examples_dir()
    scenario_path = examples / "scenario.yaml"
    with local_aws() as aws:
        console.print(Rule(f"1. AWS emulated by moto at {aws.endpoint}"))
        fleet, plan_path = workdir / "fleet.csv", workdir / "plan.json"
        api.generate_fleet_file(fleet, devices, api.EXAMPLE_SEED, managed_nodes=True)
        planned = api.make_plan(fleet, examples / api.EXAMPLE_POLICY)
        api.write_plan(planned.plan, plan_path)
        console.print(f"{fleet}: {devices:,} devices with their managed nodes; {len(planned.plan.waves)} waves planned",
                      markup=False)
        console.print(Rule("2. What each site's stack creates (groups, documents, table, alarms, role, contract)"))
        contracts = provision(planned.inventory.devices)
        console.print(_sites_table(contracts))
        console.print(Rule("3. The team state store: a DynamoDB table"))
        state = f"dynamodb://{STATE_TABLE}?region={HOME_REGION}"
        console.print(init_store(state), markup=False)
        inventory = {d.device_id: d for d in planned.inventory.devices}
        settings = aws_settings(CONTRACTS_SOURCE, inventory, {"concurrency": 16, "rates": LOCAL_RATES},
                                inventory_name=str(fleet))
        console.print(f"contracts read from SSM ({CONTRACTS_SOURCE}) for {len(settings['contracts']['sites'])} sites",
                      markup=False)
        settings["local_fleet"] = {"scenario": load_scenario(scenario_path).model_dump(mode="json"),
                                   "world": str(workdir / "devices.db")}
        console.print(Rule("4. Rehearse through the AWS backend"))
        store = open_store(state)
        result = run_rehearsal(plan_path, fleet, scenario_path, workdir / "unused.db", None, console, store=store,
                               backend=settings, wrap=local_fleet)
        print_summary(result, None, console)
        console.print(f"State: {state} (in the emulated AWS, which stops with the demo; `python -m rollout.awslocal` "
                      "serves one to drive the AWS backend by hand).", markup=False, highlight=False)
        console.print(Rule("5. What moto saw"))
        seen = mutations(contracts)
        _print_mutations(console, seen, contracts, result)
        store.close()
        return result


def _sites_table(contracts: Mapping[str, SiteContract]) -> Table:
    table = Table("site", "region", "migrated group", "kitting document", "check-in table", "role")
    for site, c in contracts.items():
        table.add_row(site, c.region, c.migrated_group_id[:13] + "...", c.kitting_document_name, c.checkin_table_name,
                      c.orchestrator_role_arn.rsplit("/", 1)[-1])
    return table


def _print_mutations(console: Console, seen: Mutations, contracts: Mapping[str, SiteContract],
                     result: Rehearsal) -> None:
    kitting = sum(seen.count(c.kitting_document_name) for c in contracts.values())
    rollback = sum(seen.count(c.rollback_document_name) for c in contracts.values())
    members = sum(len(users) for users in seen.members.values())
    joins = sum(1 for verb, _, _ in seen.membership_changes if verb == "create")
    console.print(f"kitting runs {kitting:,}, rollback runs {rollback:,}; users in the migrated groups now {members:,} "
                  f"(joined {joins:,} times, left {len(seen.membership_changes) - joins:,} times)", markup=False)
    console.print(f"duplicated commands: {seen.duplicate_commands}; repeated membership changes: "
                  f"{seen.duplicate_membership_changes}", markup=False)
    stats = result.call_stats
    if stats is not None:
        calls = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.calls.items()))
        retries = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.retries.items())) or "none"
        console.print(f"AWS calls: {calls}\nretries: {retries}", markup=False, highlight=False)
