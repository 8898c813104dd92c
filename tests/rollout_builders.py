"""Builders for the durability tests (crash harness, lease, audit, store): small rollouts in real
state files, the rehearsal's input files, and the ``rollout`` CLI as a real subprocess."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rollout.core.device import Device
from rollout.drive.operations import start_rollout
from rollout.plan import api
from rollout.plan.planfile import plan_to_json
from rollout.plan.planner import plan_waves
from rollout.store.sqlite import SqliteStore
from tests.conftest import example_policy_data, make_inventory, make_policy

ROOT = Path(__file__).resolve().parent.parent
T0 = dt.datetime(2027, 1, 12, 9, tzinfo=dt.UTC)

# Small waves and one-day bakes: a 600-device rehearsal runs in well under a second.
SMALL_WAVES: list[dict[str, Any]] = [
    {"name": "canary", "canary": True, "size": 40, "bake": "1d", "approvals": ["pm", "security"]},
    {"name": "wave-1", "size": "15%", "bake": "1d"},
    {"name": "wave-2", "size": "20%", "bake": "1d"},
    {"name": "wave-3", "size": "25%", "bake": "1d"},
    {"name": "final", "size": "rest", "bake": "1d"},
]

# Like examples/scenario.yaml: one laptop model fails kitting (its cohort is quarantined in the
# canary), and sign-in breaks fleet-wide in wave-3 (rolled back automatically); plus a few
# devices whose own migration fails half-way (reverted one by one).
SCENARIO: dict[str, Any] = {
    "seed": 2027,
    "baseline_failure": 0.002,
    "checkin_delay": {"min": "30m", "max": "8h"},
    "offline": 0.003,
    "tickets_per_device": 0.0,
    "faults": [
        {"name": "dynabook kitting driver", "selector": "model=dynabook G83", "check": "kitting",
         "probability": 0.85},
        {"name": "sign-in outage", "waves": ["wave-3"], "check": "signin", "probability": 0.6},
        {"name": "kitting command fails", "check": "migrate", "probability": 0.02},
    ],
}


def small_rollout(n: int = 200, seed: int = 7) -> tuple[dict[str, Any], dict[str, Device]]:
    """A plan file's JSON for ``n`` generated devices in SMALL_WAVES, and its inventory."""
    inventory = make_inventory(n=n, seed=seed)
    plan = plan_waves(inventory, make_policy(waves=SMALL_WAVES))
    return plan_to_json(plan), {d.device_id: d for d in inventory.devices}


def fresh_store(path: Path, n: int = 200) -> tuple[SqliteStore, str]:
    """A state file at ``path`` holding one started rollout (by ``starter``); returns it and its id."""
    plan, inventory = small_rollout(n)
    store = SqliteStore(path)
    start_rollout(store, plan["rollout"], plan, inventory, "starter", True, T0)
    return store, str(plan["rollout"])


@dataclass(frozen=True)
class RehearsalFiles:
    inventory: Path
    policy: Path
    plan: Path
    scenario: Path

    def rehearse_args(self, state: Path) -> list[str]:
        return ["rehearse", "--plan", str(self.plan), "--inventory", str(self.inventory),
                "--scenario", str(self.scenario), "--state", str(state)]


def write_rehearsal_files(directory: Path, n: int = 600, scenario: dict[str, Any] | None = None) -> RehearsalFiles:
    """Fleet CSV, policy (the example's, with SMALL_WAVES), its plan, and a scenario, as real files."""
    directory.mkdir(parents=True, exist_ok=True)
    files = RehearsalFiles(directory / "fleet.csv", directory / "policy.yaml", directory / "plan.json",
                           directory / "scenario.yaml")
    api.generate_fleet_file(files.inventory, n, api.EXAMPLE_SEED)
    policy = example_policy_data()
    policy["waves"] = SMALL_WAVES
    files.policy.write_text(yaml.safe_dump(policy, allow_unicode=True, sort_keys=False), encoding="utf-8")
    api.write_plan(api.make_plan(files.inventory, files.policy).plan, files.plan)
    files.scenario.write_text(yaml.safe_dump(scenario or SCENARIO, allow_unicode=True), encoding="utf-8")
    return files


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a ``rollout`` subprocess: no inherited fault switches, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def rollout_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rollout", *args]


def run_rollout(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``rollout ARGS`` as a real process and wait for it."""
    return subprocess.run(rollout_cmd(*args), env=cli_env(**env), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def integrity(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()
