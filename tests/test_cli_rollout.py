"""The rollout lifecycle as an operator and a PM meet it through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rollout.cli.main import cli

WAVES = [
    {"name": "canary", "canary": True, "size": 40, "bake": "1d", "approvals": ["pm", "security"]},
    {"name": "wave-1", "size": "30%", "bake": "1d"},
    {"name": "final", "size": "rest", "bake": "1d"},
]
SCENARIO = """
seed: 3
checkin_delay: {min: 30m, max: 4h}
offline: 0
faults:
  - selector: model=dynabook G83
    check: kitting
    probability: 0.9
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def planned(tmp_path: Path, fleet_csv: Callable[..., Path], write_policy: Callable[..., Path]) -> dict[str, Path]:
    inventory = fleet_csv(600, 21)
    policy = write_policy(waves=WAVES, constraints={"last_tags": ["vip"]})
    plan = tmp_path / "plan.json"
    assert invoke("plan", "--inventory", str(inventory), "--policy", str(policy), "--out", str(plan)).exit_code == 0
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    return {"inventory": inventory, "plan": plan, "scenario": scenario, "state": tmp_path / "state.db"}


def started(p: dict[str, Path]) -> list[str]:
    state = ["--state", f"sqlite:{p['state']}"]
    result = invoke("start", "--plan", str(p["plan"]), "--inventory", str(p["inventory"]), "--scenario",
                    str(p["scenario"]), "--as", "tanaka", *state)
    assert result.exit_code == 0, result.output
    return state


def status(state: list[str]) -> dict[str, Any]:
    result = invoke("status", "--format", "json", *state)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_start_refuses_an_inventory_the_plan_was_not_made_from(planned: dict[str, Path],
                                                              fleet_csv: Callable[..., Path]) -> None:
    other = fleet_csv(600, 22, name="other.csv")
    result = invoke("start", "--plan", str(planned["plan"]), "--inventory", str(other),
                    "--state", f"sqlite:{planned['state']}")
    assert result.exit_code == 2
    assert "is not the inventory this plan was made from" in result.output


def test_approvals_need_the_right_people_and_roles(planned: dict[str, Path]) -> None:
    state = started(planned)
    refused = invoke("approve", "canary", "--as", "tanaka", "--role", "pm", *state)
    assert refused.exit_code == 2
    assert "tanaka started rollout" in refused.output and "separation of duties" in refused.output
    wrong_role = invoke("approve", "wave-1", "--as", "sato", "--role", "security", *state)
    assert wrong_role.exit_code == 2 and "needs approvals from pm, not 'security'" in wrong_role.output
    assert invoke("approve", "canary", "--as", "sato", "--role", "pm", *state).exit_code == 0
    canary = status(state)["waves"][0]
    assert [a["by"] for a in canary["approvals"]["valid"]] == ["sato"]
    assert canary["approvals"]["missing"] == ["security"]
    assert invoke("approve", "canary", "--as", "suzuki", "--role", "security", *state).exit_code == 0
    assert status(state)["waves"][0]["approvals"]["missing"] == []


def test_a_driven_rollout_holds_the_failing_cohort_and_records_why(planned: dict[str, Path]) -> None:
    state = started(planned)
    for who, role in (("sato", "pm"), ("suzuki", "security")):
        invoke("approve", "canary", "--as", who, "--role", role, *state)
    result = invoke("run", "--simulated-time", "--until", "canary", "--as", "driver", *state)
    assert result.exit_code == 0, result.output
    data = status(state)
    canary = data["waves"][0]
    assert canary["phase"] == "passed"
    assert canary["gate"]["wave_hash"] == canary["hash"]
    assert {a["by"] for a in canary["gate"]["approvals"]} == {"sato", "suzuki"}
    blockers = [i for i in data["issues"] if i["auto"]]
    assert [i["selector"] for i in blockers] == ["model=dynabook G83"]
    assert blockers[0]["severity"] == "blocker" and blockers[0]["holds_devices"] > 0
    assert data["waves"][1]["devices"].get("held", 0) > 0
    # The next wave waits for its approval: the PM approves, an operator reports an untriaged issue.
    assert invoke("approve", "wave-1", "--as", "sato", *state).exit_code == 0
    added = invoke("triage", "add", "--title", "印刷できない", "--selector", "app=帳票印刷ツール", "--as", "yamada", *state)
    assert added.exit_code == 0 and "untriaged" in added.output
    issue_id = next(i["id"] for i in status(state)["issues"] if i["title"] == "印刷できない")
    assert invoke("triage", "set", str(issue_id), "--severity", "minor", "--as", "sato", *state).exit_code == 0
    listed = invoke("triage", "list", *state)
    assert f"#{issue_id} minor open app=帳票印刷ツール" in listed.output
    verify = invoke("audit", "verify", *state)
    assert verify.exit_code == 0 and "events verified" in verify.output


def test_rollback_on_demand_reverts_the_wave_once(planned: dict[str, Path]) -> None:
    state = started(planned)
    for who, role in (("sato", "pm"), ("suzuki", "security")):
        invoke("approve", "canary", "--as", who, "--role", role, *state)
    invoke("run", "--simulated-time", "--until", "canary", "--as", "driver", *state)
    result = invoke("rollback", "canary", "--as", "sato", "--reason", "printer driver", *state)
    assert result.exit_code == 0 and "rollback recorded" in result.output
    assert status(state)["phase"] == "halted"
    invoke("run", "--simulated-time", "--as", "driver", *state)
    data = status(state)
    assert data["waves"][0]["phase"] == "rolled_back"
    assert set(data["waves"][0]["devices"]) == {"reverted"}
    again = invoke("rollback", "canary", "--as", "sato", *state)
    assert again.exit_code == 2 and "already rolled_back" in again.output and "nothing new was recorded" in again.output
    events_before = status(state)["audit"]["events"]
    invoke("run", "--simulated-time", "--as", "driver", *state)
    assert status(state)["waves"][0]["devices"] == data["waves"][0]["devices"]
    assert status(state)["audit"]["events"] - events_before <= 2  # lease taken and released, no new revert


def test_rehearse_runs_a_whole_rollout(planned: dict[str, Path]) -> None:
    result = invoke("rehearse", "--plan", str(planned["plan"]), "--inventory", str(planned["inventory"]),
                    "--scenario", str(planned["scenario"]), "--state", str(planned["state"]))
    assert result.exit_code == 0, result.output
    assert "Rehearsal of zt-2027: COMPLETED" in result.output
    assert "duplicate actions: 0" in result.output
    data = status(["--state", f"sqlite:{planned['state']}"])
    assert data["phase"] == "completed"
    assert all(w["phase"] == "passed" for w in data["waves"])
    assert set(data["devices"]) <= {"verified", "held", "reverted", "deferred"}


def test_unknown_state_store_is_refused(tmp_path: Path) -> None:
    result = invoke("status", "--state", "postgres://x")
    assert result.exit_code == 2
    assert "unknown store 'postgres'" in result.output


def test_a_new_plan_voids_only_the_approvals_of_the_waves_it_changes(
        planned: dict[str, Path], write_policy: Callable[..., Path], tmp_path: Path) -> None:
    state = started(planned)
    for who, role in (("sato", "pm"), ("suzuki", "security")):
        invoke("approve", "canary", "--as", who, "--role", role, *state)
    invoke("approve", "wave-1", "--as", "sato", *state)
    waves = [dict(w) for w in WAVES]
    waves[1]["bake"] = "3d"
    new_plan = tmp_path / "new.json"
    policy = write_policy("new.yaml", waves=waves, constraints={"last_tags": ["vip"]})
    assert invoke("plan", "--inventory", str(planned["inventory"]), "--policy", str(policy), "--out",
                  str(new_plan)).exit_code == 0
    result = invoke("replan", "--plan", str(new_plan), "--as", "tanaka", *state)
    assert result.exit_code == 0, result.output
    assert "Approvals voided for: wave-1." in result.output
    data = status(state)
    assert data["waves"][0]["approvals"]["missing"] == []
    assert data["waves"][1]["approvals"]["missing"] == ["pm"]
    assert data["waves"][1]["hash"] == json.loads(new_plan.read_text(encoding="utf-8"))["waves"][1]["hash"]
    # Once the canary has started, a plan that changes it is refused whole.
    invoke("run", "--simulated-time", "--until", "canary", "--as", "driver", *state)
    waves[0]["bake"] = "2d"
    policy = write_policy("newer.yaml", waves=waves, constraints={"last_tags": ["vip"]})
    assert invoke("plan", "--inventory", str(planned["inventory"]), "--policy", str(policy), "--out", str(new_plan),
                  "--force").exit_code == 0
    refused = invoke("replan", "--plan", str(new_plan), "--as", "tanaka", *state)
    assert refused.exit_code == 2
    assert "wave canary is passed and cannot change" in refused.output


def test_a_simulated_run_stops_with_code_3_when_a_wave_waits_for_approval(planned: dict[str, Path]) -> None:
    state = started(planned)
    result = invoke("run", "--simulated-time", "--as", "driver", *state)
    assert result.exit_code == 3
    assert "wave canary waits for approval by pm, security" in result.output


def test_triage_selectors_are_checked_against_the_inventory_columns(planned: dict[str, Path]) -> None:
    state = started(planned)
    bad = invoke("triage", "add", "--title", "x", "--selector", "modle=X", "--as", "yamada", *state)
    assert bad.exit_code == 2
    assert "--selector: unknown key 'modle'" in bad.output
    extra = invoke("triage", "add", "--title", "y", "--selector", "owner_name=山﨑 翔", "--severity", "minor",
                   "--as", "yamada", *state)
    assert extra.exit_code == 0, extra.output
