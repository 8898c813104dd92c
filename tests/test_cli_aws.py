"""Starting a rollout on the AWS backend and moving state between stores, as an operator types it."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rollout.cli.main import cli
from rollout.plan import api
from rollout.store.lease import acquire_lease
from rollout.store.sqlite import SqliteStore

CONTRACTS = api.examples_dir() / "contracts"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def planned(tmp_path: Path, write_policy: Callable[..., Path]) -> Callable[[bool], dict[str, Path]]:
    def make(managed_nodes: bool) -> dict[str, Path]:
        inventory = tmp_path / ("nodes.csv" if managed_nodes else "fleet.csv")
        api.generate_fleet_file(inventory, 300, 21, managed_nodes=managed_nodes)
        policy = write_policy()
        plan = tmp_path / f"plan-{managed_nodes}.json"
        result = invoke("plan", "--inventory", str(inventory), "--policy", str(policy), "--out", str(plan))
        assert result.exit_code == 0, result.output
        return {"inventory": inventory, "plan": plan, "state": tmp_path / "state.db"}
    return make


def start(p: dict[str, Path], *extra: str) -> Result:
    return invoke("start", "--plan", str(p["plan"]), "--inventory", str(p["inventory"]), "--as", "tanaka",
                  "--state", f"sqlite:{p['state']}", *extra)


def test_the_aws_backend_needs_contracts(planned: Callable[[bool], dict[str, Path]]) -> None:
    result = start(planned(True), "--backend", "aws")
    assert result.exit_code == 2
    assert "--backend aws needs --contracts SOURCE (ssm, pulumi or a directory)" in result.output


def test_every_device_needs_its_managed_node_and_nothing_is_recorded(planned: Callable[[bool], dict[str, Path]]) -> None:
    p = planned(False)
    result = start(p, "--backend", "aws", "--contracts", str(CONTRACTS))
    assert result.exit_code == 2
    assert "problems in the rollout's AWS setup" in result.output
    assert f"{p['inventory']}: D0000001: instance_id: missing: the device's Systems Manager managed node" in result.output
    assert "... and 250 more devices" in result.output
    assert not p["state"].exists() or SqliteStore(p["state"]).rollout_ids() == []


def test_a_site_without_a_contract_is_named_with_its_file(planned: Callable[[bool], dict[str, Path]],
                                                          tmp_path: Path) -> None:
    partial = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, partial)
    (partial / "sendai.json").unlink()
    result = start(planned(True), "--backend", "aws", "--contracts", str(partial))
    assert result.exit_code == 2
    assert f"contract for site 'sendai' ({partial / 'sendai.json'}): no such file" in result.output


def test_a_contract_missing_a_key_names_the_site_and_key(planned: Callable[[bool], dict[str, Path]],
                                                         tmp_path: Path) -> None:
    broken = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, broken)
    data = json.loads((broken / "nagoya.json").read_text())
    del data["checkin_table_name"]
    (broken / "nagoya.json").write_text(json.dumps(data))
    result = start(planned(True), "--backend", "aws", "--contracts", str(broken))
    assert result.exit_code == 2
    assert "contract for site 'nagoya'" in result.output and "checkin_table_name: Field required" in result.output


def test_a_started_aws_rollout_records_its_contracts_and_settings(planned: Callable[[bool], dict[str, Path]]) -> None:
    p = planned(True)
    result = start(p, "--backend", "aws", "--contracts", str(CONTRACTS), "--concurrency", "8",
                   "--rate", "identitystore:CreateGroupMembership=15", "--no-assume-role")
    assert result.exit_code == 0, result.output
    assert "backend aws" in result.output
    store = SqliteStore(p["state"])
    settings = store.backend_settings(store.rollout_ids()[0])
    assert settings["backend"] == "aws" and settings["contracts"]["source"] == str(CONTRACTS)
    assert settings["contracts"]["sites"]["tokyo"]["checkin_table_name"] == "zt-rollout-tokyo-checkins"
    assert settings["aws"]["concurrency"] == 8 and settings["aws"]["assume_role"] is False
    assert settings["aws"]["rates"] == {"identitystore:CreateGroupMembership": 15.0}
    assert [e.kind for e in store.events(store.rollout_ids()[0])] == ["rollout.started", "rollout.backend"]


def test_a_rate_that_is_not_api_equals_number_is_refused(planned: Callable[[bool], dict[str, Path]]) -> None:
    result = start(planned(True), "--backend", "aws", "--contracts", str(CONTRACTS), "--rate", "fast")
    assert result.exit_code == 2
    assert "'fast' is not API=PER_SECOND" in result.output


def test_a_rollout_moves_between_state_files_unless_a_driver_holds_it(planned: Callable[[bool], dict[str, Path]],
                                                                      tmp_path: Path) -> None:
    p = planned(True)
    assert start(p, "--backend", "aws", "--contracts", str(CONTRACTS)).exit_code == 0
    source, target = f"sqlite:{p['state']}", f"sqlite:{tmp_path / 'copy.db'}"
    store = SqliteStore(p["state"])
    lease = acquire_lease(store, store.rollout_ids()[0], "driver", time.time())
    refused = invoke("state", "migrate", "--state", source, "--to", target)
    assert refused.exit_code == 2 and "is being driven by driver" in refused.output
    from rollout.store.lease import release_lease

    release_lease(store, lease, time.time())
    moved = invoke("state", "migrate", "--state", source, "--to", target)
    assert moved.exit_code == 0, moved.output
    assert moved.output.startswith("Copied rollout zt-2027 (300 devices, ")
    assert "the audit log verifies there" in moved.output
    copy = SqliteStore(tmp_path / "copy.db")
    assert copy.audit_head("zt-2027") == store.audit_head("zt-2027")
    again = invoke("state", "migrate", "--state", source, "--to", target)
    assert again.exit_code == 2 and "already exists" in again.output


def test_state_init_says_sqlite_needs_nothing(tmp_path: Path) -> None:
    result = invoke("state", "init", "--state", f"sqlite:{tmp_path / 's.db'}")
    assert result.exit_code == 0
    assert result.output == f"sqlite:{tmp_path / 's.db'}: ready (SQLite creates its file on first use).\n"
