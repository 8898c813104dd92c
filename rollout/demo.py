"""``rollout demo``: the main job on embedded defaults, with no AWS account and no Pulumi CLI.

It generates the example 10,000-device fleet, plans it under the example policy, writes the plan,
and explains a canary and a VIP device, then prints the commands to explore further.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from rollout import api
from rollout.explain import explain_device
from rollout.render import explanation_text, plan_table


def run_demo(workdir: Path, console: Console) -> Path:
    """Run the demo in ``workdir``; return the plan file's path."""
    fleet = workdir / api.EXAMPLE_FLEET
    policy = api.examples_dir() / api.EXAMPLE_POLICY
    plan_path = workdir / "plan.json"
    console.print(Rule("1. Generate the example fleet"))
    api.generate_fleet_file(fleet, api.EXAMPLE_FLEET_SIZE, api.EXAMPLE_SEED)
    console.print(f"{fleet}: {api.EXAMPLE_FLEET_SIZE:,} devices (seed {api.EXAMPLE_SEED})")
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
    console.print(Rule("Next"))
    console.print(
        f"Plan written to {plan_path}. Try:\n"
        f"  rollout plan --inventory {fleet} --policy {policy} --format markdown\n"
        f"  rollout plan explain {canary} --inventory {fleet} --policy {policy}\n"
        f"  rollout diff {plan_path} OTHER_PLAN.json",
        markup=False, highlight=False,
    )
    return plan_path
