"""The planning commands as a user runs them: exact output, files written, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from rollout.cli.main import cli
from tests.conftest import EXAMPLE_POLICY

GOLDEN = Path(__file__).parent / "golden"


def run(*args: str) -> tuple[int, str]:
    """Exit code and everything printed (stdout and stderr, as a terminal shows them)."""
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def run_stdout(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_plan_markdown_is_exactly_the_reviewed_one(fleet_csv: Callable[..., Path]) -> None:
    inventory = fleet_csv(400, 1)
    result = CliRunner().invoke(cli, ["plan", "--inventory", str(inventory), "--policy", str(EXAMPLE_POLICY),
                                      "--format", "markdown"])
    assert result.exit_code == 0
    assert result.stderr == f"Read {inventory}: 400 devices, encoding utf-8.\n"
    assert result.stdout == (GOLDEN / "plan-400.md").read_text(encoding="utf-8")


def test_plan_json_has_the_documented_schema(tmp_path: Path, fleet_csv: Callable[..., Path]) -> None:
    inventory = fleet_csv(1200, 2)
    out_file = tmp_path / "plans" / "plan.json"
    code, _ = run("plan", "--inventory", str(inventory), "--policy", str(EXAMPLE_POLICY), "--out", str(out_file))
    assert code == 0
    plan = json.loads(out_file.read_text(encoding="utf-8"))
    assert plan["schema"] == "zt-rollout/plan/v1"
    assert len(plan["plan_hash"]) == 64
    assert {"cohorts_total", "cohorts_covered", "fleet_share_covered", "uncovered"} <= set(plan["coverage"])
    assert [w["name"] for w in plan["waves"]] == ["canary", "wave-1", "wave-2", "wave-3", "wave-4", "wave-5", "final"]
    wave = plan["waves"][0]
    assert wave["canary"] is True and len(wave["hash"]) == 64 and wave["approvals"] == ["pm", "security"]
    assert wave["devices"] == sorted(wave["devices"])
    every = [d for w in plan["waves"] for d in w["devices"]]
    assert len(every) == len(set(every)) == 1200
    assert plan["schedule"]["projected_completion"] == plan["waves"][-1]["bake_until"]


def test_table_output_lists_every_wave(fleet_csv: Callable[..., Path]) -> None:
    code, out = run("plan", "--inventory", str(fleet_csv(600, 3)), "--policy", str(EXAMPLE_POLICY))
    assert code == 0
    for name in ("canary", "wave-1", "wave-5", "final"):
        assert name in out
    assert "Projected completion 2027-" in out


def test_explain_a_canary_a_vip_and_an_unknown_device(fleet_csv: Callable[..., Path]) -> None:
    inventory = str(fleet_csv(2000, 5))
    plan = json.loads(run_stdout("plan", "--inventory", inventory, "--policy", str(EXAMPLE_POLICY), "--format", "json"))
    canary = plan["waves"][0]["devices"]
    explained = json.loads(run_stdout("plan", "explain", canary[0], "--inventory", inventory, "--policy",
                                      str(EXAMPLE_POLICY), "--format", "json"))
    assert explained["wave"] == "canary"
    assert explained["reasons"][0].startswith(("canary pick", "fills the canary"))
    assert all(c["canary"] for c in explained["cohorts"] if c["eligible"])

    vips = [line.split(",")[0] for line in Path(inventory).read_text(encoding="utf-8").splitlines() if ",vip" in line]
    code, out = run("plan", "explain", vips[0], "--inventory", inventory, "--policy", str(EXAMPLE_POLICY))
    assert code == 0
    assert "tagged vip, which goes last: placed in the latest wave with room (final)" in out

    code, out = run("plan", "explain", "D9999999", "--inventory", inventory, "--policy", str(EXAMPLE_POLICY))
    assert code == 1
    assert "error: device 'D9999999' is not in fleet.csv" in out


def test_plan_without_inputs_is_a_usage_error() -> None:
    code, out = run("plan")
    assert code == 2
    assert "missing --inventory and --policy" in out


def test_inputs_come_from_the_environment_when_no_flag(fleet_csv: Callable[..., Path]) -> None:
    env = {"ROLLOUT_INVENTORY": str(fleet_csv(300, 1)), "ROLLOUT_POLICY": str(EXAMPLE_POLICY)}
    result = CliRunner().invoke(cli, ["lint"], env=env)
    assert result.exit_code == 0, result.output
    assert "plan feasible: 7 waves" in result.output


def test_fleet_generate_is_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    for path, seed in ((a, "9"), (b, "9"), (c, "10")):
        assert run("fleet", "generate", "--devices", "500", "--seed", seed, "--out", str(path))[0] == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    text = a.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ("device_id,hostname,serial,user,site,department,model,os,os_version,apps,tags,"
                                    "owner_name")
    assert len(text.splitlines()) == 501


def test_a_generated_cp932_fleet_loads_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "sjis.csv"
    assert run("fleet", "generate", "--devices", "300", "--seed", "4", "--encoding", "cp932", "--out", str(path))[0] == 0
    assert "髙橋".encode("cp932") in path.read_bytes() or "山﨑".encode("cp932") in path.read_bytes()
    code, out = run("lint", "--inventory", str(path), "--policy", str(EXAMPLE_POLICY))
    assert code == 0
    assert f"Read {path}: 300 devices, encoding cp932." in out


def _plan_in_subprocess(inventory: Path, hashseed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    done = subprocess.run([sys.executable, "-m", "rollout", "plan", "--inventory", str(inventory), "--policy",
                           str(EXAMPLE_POLICY), "--format", "json"], capture_output=True, env=env, check=True)
    return done.stdout.decode("utf-8")


@pytest.mark.slow
def test_the_same_plan_in_processes_with_different_hash_seeds(fleet_csv: Callable[..., Path]) -> None:
    inventory = fleet_csv(3000, 12)
    first, second = _plan_in_subprocess(inventory, "1"), _plan_in_subprocess(inventory, "2024")
    assert json.loads(first)["plan_hash"] == json.loads(second)["plan_hash"]
    assert first == second


@pytest.mark.slow
def test_demo_runs_on_embedded_defaults(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "rollout", "demo", "--dir", str(tmp_path / "demo")],
                          capture_output=True, check=False, cwd=tmp_path)
    out = done.stdout.decode("utf-8")
    assert done.returncode == 0, done.stderr.decode()
    assert "Canary covers 121 of 121 cohorts" in out
    plan = json.loads((tmp_path / "demo" / "plan.json").read_text(encoding="utf-8"))
    assert sum(len(w["devices"]) for w in plan["waves"]) == 10_000
