"""The verbs of the CLI as library functions, for the CLI, CI jobs, a web page or a chat bot.

Each function takes paths and options, returns values, and raises ``rollout.errors`` exceptions;
none of them prints or exits.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rollout
from rollout.core.device import COLUMNS, Device
from rollout.errors import InputError
from rollout.files import write_output
from rollout.plan.diff import PlanDiff, diff_plans
from rollout.plan.explain import Explanation, explain_device
from rollout.plan.fleet import EXAMPLE_FLEET_SIZE as EXAMPLE_FLEET_SIZE
from rollout.plan.fleet import EXAMPLE_SEED as EXAMPLE_SEED
from rollout.plan.fleet import EXTRA_COLUMNS, MANAGED_NODE_COLUMNS, iter_fleet
from rollout.plan.inventory import Inventory, load_inventory
from rollout.plan.planfile import load_plan_file, plan_to_json
from rollout.plan.planner import Plan, plan_waves
from rollout.plan.policy import Policy, load_policy

EXAMPLE_POLICY = "policy.yaml"
EXAMPLE_FLEET = "fleet-10000.csv"


def examples_dir() -> Path:
    """The example files: ``rollout/_examples`` in an installed wheel, else the checkout's ``examples/``."""
    package_dir = Path(rollout.__file__).resolve().parent
    for candidate in (package_dir / "_examples", package_dir.parent / "examples"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no examples directory next to {package_dir}: reinstall zt-rollout")


@dataclass(frozen=True)
class Planned:
    inventory: Inventory
    policy: Policy
    plan: Plan


def make_plan(inventory_path: str | Path, policy_path: str | Path, *, encoding: str | None = None) -> Planned:
    """Load and validate both inputs, then plan. Raises InputError subclasses listing every problem."""
    policy = load_policy(policy_path)
    inventory = load_inventory(inventory_path, encoding=encoding, known_sites=policy.sites)
    return Planned(inventory, policy, plan_waves(inventory, policy))


def load_inventory_for_plan(path: str | Path, plan: dict[str, Any], *, encoding: str | None = None) -> dict[str, Device]:
    """The inventory a plan was made from, checked by its SHA-256 against the plan's inputs."""
    inventory = load_inventory(path, encoding=encoding)
    expected = plan.get("inputs", {}).get("inventory_sha256")
    if expected and expected != inventory.sha256:
        raise InputError(f"{path} is not the inventory this plan was made from (its SHA-256 differs from the plan's "
                         "inputs.inventory_sha256); plan it again with `rollout plan --out`.")
    return {d.device_id: d for d in inventory.devices}


def write_plan(plan: Plan, path: str | Path, *, inputs: Sequence[str | Path] = (), force: bool = True) -> None:
    """Write the plan JSON (it lists devices and users: mode 0600) through ``rollout.files.write_output``:
    never over ``inputs``, a state store or a device; over an existing file only with ``force``."""
    text = json.dumps(plan_to_json(plan), ensure_ascii=False, indent=1) + "\n"
    write_output(path, text.encode("utf-8"), inputs=inputs, force=force)


def explain(inventory_path: str | Path, policy_path: str | Path, device_id: str, *,
            encoding: str | None = None) -> Explanation:
    planned = make_plan(inventory_path, policy_path, encoding=encoding)
    return explain_device(planned.plan, planned.inventory, planned.policy, device_id)


def diff(old_path: str | Path, new_path: str | Path) -> PlanDiff:
    return diff_plans(load_plan_file(old_path), load_plan_file(new_path))


def generate_fleet_file(path: str | Path, devices: int, seed: int, *, encoding: str = "utf-8",
                        managed_nodes: bool = False, force: bool = True) -> None:
    """Write a generated fleet to ``path`` (CSV, or JSON / JSON Lines by suffix), atomically;
    ``managed_nodes`` adds each device's ``instance_id`` (for the AWS backend)."""
    if devices < 1:
        raise InputError("--devices must be at least 1.")
    columns = list(COLUMNS) + list(MANAGED_NODE_COLUMNS if managed_nodes else EXTRA_COLUMNS)
    path = Path(path)
    suffix = path.suffix.lower()
    buffer = io.StringIO()
    if suffix == ".json":
        json.dump([d.to_record() for d in iter_fleet(devices, seed, managed_nodes=managed_nodes)], buffer,
                  ensure_ascii=False, indent=1)
    elif suffix in (".jsonl", ".ndjson"):
        for d in iter_fleet(devices, seed, managed_nodes=managed_nodes):
            buffer.write(json.dumps(d.to_record(), ensure_ascii=False) + "\n")
    else:
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(d.to_record() for d in iter_fleet(devices, seed, managed_nodes=managed_nodes))
    try:
        data = buffer.getvalue().encode(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}; use utf-8, utf-8-sig or cp932.") from None
    except UnicodeEncodeError as err:
        raise InputError(f"the fleet has {err.object[err.start]!r}, which {encoding} cannot encode; "
                         "use utf-8.") from None
    write_output(path, data, force=force)
