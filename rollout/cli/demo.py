"""``rollout demo``: the main job on embedded defaults, with no AWS account and no Pulumi CLI.

It generates the example 10,000-device fleet, plans it under the example policy, explains a
canary and a VIP device, then rehearses the whole rollout against the example scenario: one laptop
model fails kitting in the canary (that cohort is rolled back and held under a blocker issue, the
rest goes on) and wave-4 breaks sign-in fleet-wide (it is rolled back automatically and the
rollout halts). It ends with where the state file is, for ``rollout status`` and ``audit verify``.

Its folder (``--dir``) is marked with ``DEMO_MARK``; a later demo replaces only a folder it finds
that mark in, or an empty or new one. A folder holding anything else (a real rollout's state, say)
is refused before anything in it is touched.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from rollout.cli.rehearse_view import print_summary, run_rehearsal
from rollout.drive.rehearse import world_path
from rollout.errors import OutputError
from rollout.plan import api
from rollout.plan.explain import explain_device
from rollout.reports.render import explanation_text, plan_table


DEMO_MARK = ".zt-rollout-demo"
MARK_TEXT = b"This folder was written by `rollout demo`; a later demo may replace what is in it.\n"


def claim_demo_dir(workdir: Path) -> None:
    """Make ``workdir`` the demo's (create it, mark it) unless it holds anything but an earlier demo."""
    if workdir.exists() and not workdir.is_dir():
        raise OutputError(f"--dir {workdir}: is not a folder; name a new or empty folder for the demo.")
    mark = workdir / DEMO_MARK
    if workdir.is_dir() and not mark.is_file() and any(workdir.iterdir()):
        raise OutputError(f"--dir {workdir}: holds files that are not a zt-rollout demo's (no {DEMO_MARK} mark), "
                          "and the demo replaces what is in its folder; nothing was touched. Name a new or "
                          "empty folder, e.g. --dir .rollout/demo.")
    workdir.mkdir(parents=True, exist_ok=True)
    if not mark.is_file():
        mark.write_bytes(MARK_TEXT)


def run_demo(workdir: Path, console: Console, devices: int = api.EXAMPLE_FLEET_SIZE) -> Path:
    """Run the demo in ``workdir`` (a fresh rehearsal each time); return the state file's path.

    ``workdir`` must be the demo's own (``claim_demo_dir``)."""
    claim_demo_dir(workdir)
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
