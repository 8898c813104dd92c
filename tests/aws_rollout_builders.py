"""Whole rollouts through the AWS backend against the test session's local AWS: inventory files with
managed nodes, the sites provisioned, the rollout started and its waves approved, and ``rollout``
driving it as a real process that talks to the local AWS over HTTP."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rollout.awslocal.server import LocalAws
from rollout.awslocal.site import CONTRACTS_SOURCE, provision
from rollout.backends.factory import aws_settings
from rollout.core.contract import SiteContract
from rollout.core.device import Device
from rollout.drive.loop import begin_rollout
from rollout.drive.operations import approve
from rollout.plan import api
from rollout.plan.planfile import plan_to_json
from rollout.store.factory import open_store
from tests.aws_builders import FAST
from tests.conftest import example_policy_data
from tests.rollout_builders import ROOT, SCENARIO, SMALL_WAVES, T0, cli_env, rollout_cmd


@dataclass(frozen=True)
class AwsRollout:
    rollout_id: str
    state: str
    inventory: dict[str, Device]
    contracts: dict[str, SiteContract]
    env: dict[str, str]
    directory: Path


def start_aws_rollout(directory: Path, aws: LocalAws, state: str, *, n: int = 200,
                      scenario: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                      approve_all: bool = True) -> AwsRollout:
    """A rollout of ``n`` generated devices in SMALL_WAVES, driven by the AWS backend with the
    local fleet answering, every wave approved up front (by people other than the starter)."""
    directory.mkdir(parents=True, exist_ok=True)
    fleet, policy = directory / "fleet.csv", directory / "policy.yaml"
    api.generate_fleet_file(fleet, n, api.EXAMPLE_SEED, managed_nodes=True)
    data = example_policy_data()
    data["waves"] = SMALL_WAVES
    policy.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    planned = api.make_plan(fleet, policy)
    plan = plan_to_json(planned.plan)
    inventory = {d.device_id: d for d in planned.inventory.devices}
    contracts = provision(planned.inventory.devices)
    backend = aws_settings(CONTRACTS_SOURCE, inventory, {**FAST, **(settings or {})}, inventory_name=str(fleet))
    backend["local_fleet"] = {"scenario": scenario or SCENARIO, "world": str(directory / "devices.db")}
    store = open_store(state)
    begin_rollout(store, plan, inventory, "starter", True, backend, T0)
    if approve_all:
        for wave in plan["waves"]:
            for role in wave["approvals"]:
                approve(store, str(plan["rollout"]), wave["name"], f"approver-{role}", role, "", T0)
    store.close()
    return AwsRollout(str(plan["rollout"]), state, inventory, contracts, cli_env(**aws.env()), directory)


def drive(rollout: AwsRollout, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    """``rollout run --simulated-time`` (plus ``args``) on the rollout, as a process of its own."""
    return subprocess.run(rollout_cmd(*args, "run", "--simulated-time", "--step", "6", "--state", rollout.state,
                                      "--as", "driver"),
                          env={**rollout.env, **env}, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)

