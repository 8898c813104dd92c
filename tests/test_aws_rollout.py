"""Whole rollouts through the AWS code path, as an operator runs them: `rollout run` processes that talk
HTTP to AWS emulated on loopback, killed after a mutating call, paused past their DynamoDB lease,
racing each other, run with --debug; and a 10,000-device rehearsal through heavy throttling."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from rollout.awslocal.audit import mutations
from rollout.awslocal.devices import local_fleet
from rollout.awslocal.server import FAKE_KEY, FAKE_SECRET, LocalAws
from rollout.awslocal.site import CONTRACTS_SOURCE, IDENTITY_STORE, provision
from rollout.backends.factory import aws_settings
from rollout.backends.simulator import load_scenario
from rollout.core.model import DevicePhase, RolloutPhase
from rollout.drive.rehearse import rehearse
from rollout.plan import api
from rollout.store.factory import open_store
from rollout.store.sqlite import SqliteStore
from tests.aws_builders import FAST, Faults, fast_botocore_backoff
from tests.aws_rollout_builders import AwsRollout, drive, start_aws_rollout
from tests.rollout_builders import ROOT, cli_env, rollout_cmd, write_rehearsal_files
from tests.store_builders import dynamodb_table, local_aws, local_aws_server

__all__ = ["dynamodb_table", "local_aws", "local_aws_server"]
pytestmark = pytest.mark.slow

ON_ZERO_TRUST = {DevicePhase.MIGRATED, DevicePhase.VERIFIED, DevicePhase.DEFERRED}
SETTLED = {DevicePhase.VERIFIED, DevicePhase.REVERTED, DevicePhase.HELD, DevicePhase.PENDING, DevicePhase.EXCLUDED}


def users_in_groups(rollout: AwsRollout) -> set[str]:
    idc = boto3.client("identitystore", region_name="ap-northeast-1")
    names = {}
    for c in rollout.contracts.values():
        for page in idc.get_paginator("list_group_memberships").paginate(IdentityStoreId=IDENTITY_STORE,
                                                                         GroupId=c.migrated_group_id):
            for m in page["GroupMemberships"]:
                user = idc.describe_user(IdentityStoreId=IDENTITY_STORE, UserId=m["MemberId"]["UserId"])
                names[user["UserName"]] = c.site
    return set(names)


def check_end_state(rollout: AwsRollout) -> None:
    """No command sent twice, no membership change repeated, and AWS agrees with the state store."""
    seen = mutations(rollout.contracts)
    assert seen.duplicate_commands == 0, seen.duplicate_commands
    assert seen.duplicate_membership_changes == 0
    store = open_store(rollout.state)
    devices = store.devices(rollout.rollout_id)
    assert {d.phase for d in devices.values()} <= SETTLED | ON_ZERO_TRUST
    on = {rollout.inventory[d].user for d, s in devices.items() if s.phase in ON_ZERO_TRUST}
    assert users_in_groups(rollout) == on  # exactly the users whose devices are on zero trust
    assert store.verify_audit(rollout.rollout_id).ok
    store.close()


# The n-th call of each kind to die after: every pull request kills after the first and the ninth
# call of each kind; the scheduled workflow also after the fourth.
KILL_CALLS = [pytest.param((1, 9), 6, id="pr"), pytest.param((1, 4, 9), 8, id="exhaustive", marks=pytest.mark.nightly)]


@pytest.mark.parametrize(("calls", "min_kills"), KILL_CALLS)
def test_killed_after_each_kind_of_mutating_call_resumes_with_one_effective_mutation_each(
        tmp_path: Path, local_aws: LocalAws, calls: tuple[int, ...], min_kills: int) -> None:
    rollout = start_aws_rollout(tmp_path, local_aws, f"sqlite:{tmp_path / 'state.db'}", n=200)
    kills = [f"after_call:{action}:{n}" for action in ("identitystore:CreateGroupMembership", "ssm:SendCommand",
                                                      "identitystore:DeleteGroupMembership")
             for n in calls] + ["after_backend:1", "after_intent:2"]
    killed = 0
    for point in kills:
        done = drive(rollout, ROLLOUT_FAULT_KILL_AT=point)
        if done.returncode == -signal.SIGKILL:
            killed += 1
        else:
            assert done.returncode == 0, done.stderr
    finished = drive(rollout)
    assert finished.returncode == 0, finished.stderr
    assert killed >= min_kills, f"only {killed} of {len(kills)} kills happened"
    check_end_state(rollout)
    store = open_store(rollout.state)
    waves = {w.name: w.phase.value for w in store.waves(rollout.rollout_id)}
    assert waves["canary"] == "passed" and waves["wave-3"] == "rolled_back"  # the scenario's outcome
    store.close()


def test_a_whole_rollout_through_dynamodb_state_and_aws(tmp_path: Path, local_aws: LocalAws,
                                                        dynamodb_table: str) -> None:
    rollout = start_aws_rollout(tmp_path, local_aws, dynamodb_table, n=150)
    done = drive(rollout)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("rollout zt-2027: halted")
    check_end_state(rollout)


def wait_stopped(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        if state == "T":
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not stop")


def test_a_driver_paused_past_its_dynamodb_lease_has_every_later_write_refused(
        tmp_path: Path, dynamodb_table: str, local_aws: LocalAws) -> None:
    files = write_rehearsal_files(tmp_path, n=120)
    env = cli_env(**local_aws.env())
    started = subprocess.run(rollout_cmd("start", "--plan", str(files.plan), "--inventory", str(files.inventory),
                                         "--scenario", str(files.scenario), "--world", str(tmp_path / "world.db"),
                                         "--as", "starter", "--state", dynamodb_table),
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert started.returncode == 0, started.stderr
    for role in ("pm", "security"):
        subprocess.run(rollout_cmd("approve", "canary", "--role", role, "--as", f"approver-{role}", "--state",
                                   dynamodb_table), env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
    run = ["run", "--interval", "0.5", "--lease-ttl", "3", "--state", dynamodb_table]
    alice = subprocess.Popen(rollout_cmd(*run, "--as", "alice"), env={**env, "ROLLOUT_FAULT_STOP_AT": "after_backend:1"},
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bob: subprocess.Popen[str] | None = None
    try:
        wait_stopped(alice.pid)  # it ran its first backend call, and has not recorded the result
        time.sleep(4)  # past its 3 s lease
        bob = subprocess.Popen(rollout_cmd(*run, "--as", "bob"), env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        store = open_store(dynamodb_table)
        rid = store.rollout_ids()[0]
        deadline = time.monotonic() + 60
        while not any(e.kind == "call.migrate.done" and e.actor == "bob" for e in store.events(rid)):
            assert time.monotonic() < deadline, "bob did not take over"
            time.sleep(0.2)
        os.kill(alice.pid, signal.SIGCONT)
        out, err = alice.communicate(timeout=60)
        assert alice.returncode == 1, err
        assert "this driver's lease (fence 1) is no longer valid; it is now held by bob" in err
        assert "Nothing was written; stop this driver." in err
        events = list(store.events(rid))
        takeover = next(i for i, e in enumerate(events) if e.kind == "lease.acquired" and e.actor == "bob")
        assert [e for e in events[takeover:] if e.actor == "alice"] == []
        assert events[takeover].data["took_over"] == "alice"
        assert store.verify_audit(rid).ok
    finally:
        for proc in (alice, bob):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                proc.communicate(timeout=30)


def test_two_drivers_on_one_table_one_drives_the_other_names_it(tmp_path: Path, dynamodb_table: str,
                                                                local_aws: LocalAws) -> None:
    files = write_rehearsal_files(tmp_path, n=120)
    env = cli_env(**local_aws.env())
    subprocess.run(rollout_cmd("start", "--plan", str(files.plan), "--inventory", str(files.inventory), "--scenario",
                               str(files.scenario), "--world", str(tmp_path / "world.db"), "--as", "starter",
                               "--state", dynamodb_table), env=env, cwd=ROOT, check=True, capture_output=True,
                   timeout=120)
    runs = {who: subprocess.Popen(rollout_cmd("run", "--interval", "30", "--state", dynamodb_table, "--as", who),
                                  env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for who in ("alice", "bob")}
    try:
        deadline = time.monotonic() + 60
        while all(p.poll() is None for p in runs.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        losers = [who for who, p in runs.items() if p.poll() is not None]
        assert len(losers) == 1
        loser = losers[0]
        winner = next(who for who in runs if who != loser)
        err = runs[loser].communicate()[1]
        assert runs[loser].returncode == 1
        assert f"is being driven by {winner} on " in err and "rollout unlock --lease-id" in err
    finally:
        for p in runs.values():
            if p.poll() is None:
                p.terminate()
                p.communicate(timeout=30)


def test_debug_output_and_state_hold_no_credentials_headers_or_command_parameters(
        tmp_path: Path, local_aws: LocalAws) -> None:
    rollout = start_aws_rollout(tmp_path, local_aws, f"sqlite:{tmp_path / 'state.db'}", n=80)
    done = drive(rollout, "--debug")
    assert done.returncode == 0, done.stderr
    assert "identitystore:CreateGroupMembership ok in" in done.stderr  # it did log the calls
    sent: list[str] = []
    for region in ("ap-northeast-1", "ap-northeast-3"):
        for command in boto3.client("ssm", region_name=region).list_commands()["Commands"]:
            sent += command["Parameters"]["deviceMap"]
    assert sent
    state = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*")).decode("utf-8", "replace")
    for where, text in (("stdout", done.stdout), ("stderr", done.stderr), ("state", state)):
        for secret in (FAKE_SECRET, FAKE_KEY, "Authorization:", "X-Amz-Security-Token", "deviceMap", *sent):
            assert secret not in text, f"{secret[:30]!r} in the {where}"
        assert not re.search(r"\bASIA[A-Z0-9]{16}\b", text), f"an assumed role's access key in the {where}"


@pytest.mark.parametrize("devices", [pytest.param(2_000, id="pr"),
                                     pytest.param(10_000, id="exhaustive", marks=pytest.mark.nightly)])
def test_a_fleet_through_throttling_5xx_and_timeouts_loses_and_repeats_nothing(
        tmp_path: Path, local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch, devices: int) -> None:
    fast_botocore_backoff(monkeypatch)
    examples = api.examples_dir()
    fleet = tmp_path / "fleet.csv"
    api.generate_fleet_file(fleet, devices, api.EXAMPLE_SEED, managed_nodes=True)
    planned = api.make_plan(fleet, examples / api.EXAMPLE_POLICY)
    inventory = {d.device_id: d for d in planned.inventory.devices}
    contracts = provision(planned.inventory.devices)
    settings = aws_settings(CONTRACTS_SOURCE, inventory, {**FAST, "concurrency": 16}, inventory_name=str(fleet))
    scenario = load_scenario(examples / "scenario.yaml")
    settings["local_fleet"] = {"scenario": scenario.model_dump(mode="json"), "world": str(tmp_path / "devices.db")}
    faults = Faults(throttle=0.30, unavailable=0.05, timeout=0.02, seed=2027)
    store = SqliteStore(tmp_path / "state.db")
    from rollout.plan.planfile import plan_to_json

    result = rehearse(tmp_path / "state.db", plan_to_json(planned.plan), inventory, scenario,
                      start=dt.datetime(2027, 1, 12, 9, tzinfo=dt.UTC), store=store, backend=settings,
                      session_factory=faults.session, wrap=local_fleet)
    assert result.phase == RolloutPhase.HALTED  # wave-4's sign-in outage, as in the demo
    requests = faults.injected["requests"]
    assert requests > 2 * devices
    assert 0.28 < faults.injected["throttled"] / requests < 0.32 and 0.04 < faults.injected["503"] / requests < 0.06
    assert 0.015 < faults.injected["timeout after the request was done"] / requests < 0.025
    store = SqliteStore(tmp_path / "state.db")
    errors = [d.error for d in store.devices(result.rollout_id).values() if d.error]
    assert not [e for e in errors if "kept failing" in e or "Throttl" in e or "may or may not" in e]
    seen = mutations(contracts)
    assert seen.duplicate_commands == 0 and seen.duplicate_membership_changes == 0
    assert result.call_stats.retries["throttled"] > 0





def test_the_aws_local_demo_runs_through_the_aws_code_path(tmp_path: Path) -> None:
    done = subprocess.run(rollout_cmd("demo", "--aws-local", "--devices", "300", "--dir", str(tmp_path)),
                          env={k: v for k, v in cli_env().items() if not k.startswith("AWS_")}, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "contracts read from SSM (ssm:ap-northeast-1,ap-northeast-3) for 7 sites" in out
    assert "dynamodb://zt-rollout-state?region=ap-northeast-1: table created." in out
    assert "Rehearsal of zt-2027: HALTED" in out and "wave-4   rolled_back" in out
    assert "duplicated commands: 0; repeated membership changes: 0" in out
    assert re.search(r"AWS calls: .*identitystore:CreateGroupMembership \d+.*ssm:SendCommand \d+", out)
