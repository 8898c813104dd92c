"""``rollout demo``: the main job on embedded defaults, with no AWS account and no Pulumi CLI.

It generates the example 10,000-device fleet, plans it under the example policy, explains a
canary and a VIP device, then rehearses the whole rollout against the example scenario: one laptop
model fails kitting in the canary (that cohort is rolled back and held under a blocker issue, the
rest goes on) and wave-4 breaks sign-in fleet-wide (it is rolled back automatically and the
rollout halts). It ends with where the state file is, for ``rollout status`` and ``audit verify``.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from rollout.cli.rehearse_view import print_summary, run_rehearsal
from rollout.drive.rehearse import world_path
from rollout.plan import api
from rollout.plan.explain import explain_device
from rollout.reports.render import explanation_text, plan_table


def run_demo(workdir: Path, console: Console, devices: int = api.EXAMPLE_FLEET_SIZE) -> Path:
    """Run the demo in ``workdir`` (a fresh rehearsal each time); return the state file's path."""
    fleet = workdir / api.EXAMPLE_FLEET
    examples = api.examples_dir()
    policy, scenario = examples / api.EXAMPLE_POLICY, examples / "scenario.yaml"
    plan_path, state = workdir / "plan.json", workdir / "state.db"
    console.print(Rule("1. Generate the example fleet"))
    api.generate_fleet_file(fleet, devices, api.EXAMPLE_SEED)
    console.print(f"{fleet}: {devices:,} devices (seed {api.EXAMPLE_SEED})", markup=False)
    console.print(Rule("2. Plan the waves"))
    planned = api.make_plan(fleet, policy)
    api.write_plan(planned.plan, plan_path)
    console.print(plan_table(planned.plan, planned.policy.cohorts.min_size))
    console.print(Rule("3. Why is a device where it is?"))
    inventory, plan = planned.inventory, planned.plan
    canary = next(iter(plan.reasons["picks"]))
    vip = next((d.device_id for d in inventory.devices if "vip" in d.tags and plan.wave_of(d.device_id)), None)
    for device_id in (canary, vip):
        if device_id is not None:
            console.print(explanation_text(explain_device(plan, inventory, planned.policy, device_id)),
                          markup=False, highlight=False)
    console.print(Rule(f"4. Rehearse the rollout against {scenario.name}"))
    for stale in (state, world_path(state)):
        for suffix in ("", "-wal", "-shm"):
            Path(str(stale) + suffix).unlink(missing_ok=True)
    result = run_rehearsal(plan_path, fleet, scenario, state, None, console)
    print_summary(result, state, console)
    return state
