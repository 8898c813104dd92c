"""Builders shared by the tests: fleets, policies and plans, written to real files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout.core.device import Device
from rollout.plan import api
from rollout.plan.fleet import generate_fleet
from rollout.plan.inventory import Inventory
from rollout.plan.planner import Plan, plan_waves
from rollout.plan.policy import Policy, parse_policy

EXAMPLE_POLICY = api.examples_dir() / api.EXAMPLE_POLICY


def example_policy_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8"))
    return data


def make_policy(**overrides: Any) -> Policy:
    """The example policy with top-level keys replaced (``waves=[...]``, ``constraints={...}``)."""
    data = example_policy_data()
    data.update(overrides)
    return parse_policy(yaml.safe_dump(data, allow_unicode=True), source="policy.yaml")


def make_inventory(devices: list[Device] | None = None, *, n: int = 2000, seed: int = 7) -> Inventory:
    devices = devices if devices is not None else generate_fleet(n, seed)
    return Inventory(tuple(devices), "fleet.csv", "utf-8", "0" * 64)


def make_plan(n: int = 2000, seed: int = 7, **policy_overrides: Any) -> Plan:
    return plan_waves(make_inventory(n=n, seed=seed), make_policy(**policy_overrides))


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[..., Path]:
    """Write the example policy with overrides to a file and return its path."""

    def write(name: str = "policy.yaml", **overrides: Any) -> Path:
        data = example_policy_data()
        data.update(overrides)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def fleet_csv(tmp_path: Path) -> Callable[..., Path]:
    """Generate a fleet CSV file (utf-8 unless told) and return its path."""

    def write(n: int = 2000, seed: int = 7, name: str = "fleet.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        api.generate_fleet_file(path, n, seed, encoding=encoding)
        return path

    return write
