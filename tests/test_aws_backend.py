"""The AWS backend against moto on loopback: what a wave does to the identity store and SSM, what it
costs when AWS throttles and fails, its error budget, its answers to AccessDenied, and its reading
of check-ins and alarms."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import boto3
import pytest

from rollout.awslocal.audit import mutations
from rollout.awslocal.site import IDENTITY_STORE
from rollout.backends import NOT_DISPATCHED
from rollout.backends.aws.backend import ALL_STEPS, IDENTITY
from rollout.core.engine import migration_errors_left
from rollout.core.model import DevicePhase, DeviceState, WavePhase, WaveState
from rollout.errors import PermissionDeniedError
from tests.aws_builders import (
    Faults,
    backend,
    fast_botocore_backoff,
    managed_fleet,
    provisioned,
)
from tests.store_builders import local_aws, local_aws_server

__all__ = ["local_aws", "local_aws_server"]

NOW = dt.datetime(2027, 1, 12, 9, tzinfo=dt.UTC)
pytestmark = pytest.mark.usefixtures("local_aws")


def members(contract: Any) -> set[str]:
    idc = boto3.client("identitystore", region_name=contract.identity_region)
    pages = idc.get_paginator("list_group_memberships").paginate(IdentityStoreId=IDENTITY_STORE,
                                                                 GroupId=contract.migrated_group_id)
    return {m["MemberId"]["UserId"] for page in pages for m in page["GroupMemberships"]}


def user_ids(devices: Any) -> dict[str, str]:
    idc = boto3.client("identitystore", region_name="ap-northeast-1")
    return {d.user: idc.get_user_id(IdentityStoreId=IDENTITY_STORE, AlternateIdentifier={"UniqueAttribute": {
        "AttributePath": "userName", "AttributeValue": d.user}})["UserId"] for d in devices}


def test_a_wave_moves_users_into_the_group_kits_each_node_once_and_rolls_back() -> None:
    devices, contracts = provisioned(120)
    aws = backend(contracts)
    results = aws.migrate("op-migrate", "canary", devices, {}, NOW)
    assert {(r.ok, r.steps_done) for r in results} == {(True, ALL_STEPS)}
    ids = user_ids(devices)
    for site, contract in contracts.items():
        assert members(contract) == {ids[d.user] for d in devices if d.site == site}
    seen = mutations(contracts)
    nodes = {dict(d.attributes)["instance_id"] for d in devices}
    assert {(node, wave) for node, doc, wave in seen.commands if doc.endswith("-kitting")} == \
        {(n, "zt-2027#0") for n in nodes}
    assert seen.duplicate_commands == 0
    tokyo = next(r for r, d in zip(results, sorted(devices, key=lambda d: d.device_id)) if d.site == "tokyo")
    command = boto3.client("ssm", region_name="ap-northeast-1").list_commands(CommandId=tokyo.ref)["Commands"][0]
    assert command["Comment"].startswith("zt-rollout op-migrate kitting ")
    pairs = dict(p.split("=") for p in command["Parameters"]["deviceMap"][0].split(","))
    assert set(pairs.values()) <= {d.device_id for d in devices} and len(pairs) <= 50
    assert all(dict(d.attributes)["instance_id"] == node for node, device in pairs.items() for d in devices
               if d.device_id == device)

    reverted = aws.revert("op-revert", "canary", devices, {r.device_id: r.steps_done for r in results}, NOW)
    assert {(r.ok, r.steps_done) for r in reverted} == {(True, 0)}
    assert all(members(c) == set() for c in contracts.values())
    seen = mutations(contracts)
    assert sum(1 for _, doc, _ in seen.commands if doc.endswith("-rollback")) == len(nodes)
    assert seen.duplicate_commands == 0 and seen.duplicate_membership_changes == 0
    aws.close()


def test_a_replayed_operation_finds_what_it_did_and_does_nothing_twice() -> None:
    devices, contracts = provisioned(80)
    aws = backend(contracts)
    first = aws.migrate("op-1", "canary", devices, {}, NOW)
    before = mutations(contracts)
    again = backend(contracts)  # a new process after a crash: nothing in memory, steps not recorded
    replayed = again.migrate("op-1", "canary", devices, {}, NOW, replay=True)
    assert {(r.device_id, r.ok, r.steps_done, r.ref) for r in replayed} == \
        {(r.device_id, r.ok, r.steps_done, r.ref) for r in first}
    after = mutations(contracts)
    assert after.commands == before.commands and after.membership_changes == before.membership_changes
    aws.close()
    again.close()


def test_a_send_that_timed_out_after_it_happened_is_looked_up_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_botocore_backoff(monkeypatch)
    devices, contracts = provisioned(100)
    faults = Faults(timeout=1.0, seed=3)
    original = faults.hook

    def only_sends(request: Any, event_name: str = "", **kwargs: Any) -> Any:
        return original(request, event_name=event_name) if event_name.endswith("SendCommand") and \
            faults.injected["timeout after the request was done"] < 3 else None

    faults.hook = only_sends  # type: ignore[method-assign]
    aws = backend(contracts, session_factory=faults.session)
    results = aws.migrate("op-1", "canary", devices, {}, NOW)
    assert faults.injected["timeout after the request was done"] >= 3  # batches run at once: a few more
    assert all(r.ok for r in results)
    assert mutations(contracts).duplicate_commands == 0
    aws.close()


def test_throttling_5xx_and_lost_answers_cost_retries_not_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_botocore_backoff(monkeypatch)
    devices, contracts = provisioned(300)
    faults = Faults(throttle=0.3, unavailable=0.05, timeout=0.02)
    aws = backend(contracts, session_factory=faults.session, total_max_attempts=2)
    results = aws.migrate("op-1", "canary", devices, {}, NOW)
    assert [r for r in results if not r.ok] == []
    reverted = aws.revert("op-2", "canary", devices, {r.device_id: r.steps_done for r in results}, NOW)
    assert [r for r in reverted if not r.ok] == []
    seen = mutations(contracts)
    assert seen.duplicate_commands == 0 and seen.duplicate_membership_changes == 0
    assert all(members(c) == set() for c in contracts.values())
    assert faults.injected["throttled"] > 100 and faults.injected["503"] > 10
    assert faults.injected["timeout after the request was done"] > 0
    assert aws.caller.stats.retries["throttled"] > 0  # botocore's quota ran out: the backend's own backoff took over
    aws.close()


@pytest.mark.parametrize(("concurrency", "exact"), [(1, True), (8, False)])
def test_the_error_budget_stops_dispatch_at_failure_n_plus_one(concurrency: int, exact: bool) -> None:
    devices = managed_fleet(50, seed=5)
    missing = {d.user for d in devices[:30:3]}  # 10 users IAM Identity Center does not know
    from rollout.awslocal.site import provision

    contracts = provision([d for d in devices if d.user not in missing])
    aws = backend(contracts, concurrency=concurrency)
    results = aws.migrate("op-1", "canary", devices, {}, NOW, max_errors=5)
    failed = [r for r in results if not r.ok and not r.retriable]
    skipped = [r for r in results if r.error == NOT_DISPATCHED]
    assert all("is not in identity store" in r.error for r in failed)
    if exact:  # one at a time, in device order: the 6th failure is the last thing done
        assert len(failed) == 6
        last = max(devices.index(next(d for d in devices if d.device_id == r.device_id)) for r in failed)
        assert {r.device_id for r in skipped} == {d.device_id for d in devices[last + 1:]}
    else:  # calls in flight when the budget ran out still finish, and count
        assert 6 <= len(failed) <= 6 + concurrency - 1 and skipped
    assert all(r.retriable and r.steps_done == 0 for r in skipped)
    aws.close()


def test_the_wave_budget_is_the_floor_of_its_share() -> None:
    wave = WaveState(0, "wave-1", "h", WavePhase.APPLYING, NOW, ("pm",), 3600, {"max_migration_failures": 0.1})
    fleet = [DeviceState(f"D{i}", 0, DevicePhase.PENDING, NOW) for i in range(50)]
    assert migration_errors_left(wave, fleet) == 5  # 10 % of 50: the 6th failure stops it
    failed = [DeviceState(f"F{i}", 0, DevicePhase.FAILED, NOW) for i in range(2)]
    more = [DeviceState(f"E{i}", 0, DevicePhase.PENDING, NOW) for i in range(3)]
    assert migration_errors_left(wave, fleet + more[:1] + failed) == 3  # 10 % of 53 is 5; 2 spent
    awkward = WaveState(1, "wave-2", "h", WavePhase.APPLYING, NOW, ("pm",), 3600, {"max_migration_failures": 0.29})
    hundred = [DeviceState(f"D{i}", 1, DevicePhase.PENDING, NOW) for i in range(100)]
    assert migration_errors_left(awkward, hundred) == 29  # 0.29 x 100 is 28.999999999999996 in floats


def test_access_denied_names_the_action_and_the_role() -> None:
    devices, contracts = provisioned(20)
    faults = Faults(deny={"CreateGroupMembership"})
    aws = backend(contracts, session_factory=faults.session)
    with pytest.raises(PermissionDeniedError) as raised:
        aws.migrate("op-1", "canary", devices, {}, NOW)
    message = str(raised.value)
    assert "AWS denied identitystore:CreateGroupMembership (AccessDeniedException" in message
    assert ":role/zt-rollout-" in message and "-orchestrator" in message
    assert "stacks/README.md" in message and "Nothing of this call was done" in message
    assert mutations(contracts).commands == Counter()  # nothing was sent to any device
    aws.close()


def test_a_device_without_a_user_or_node_fails_alone() -> None:
    devices, contracts = provisioned(30)
    stranger = devices[0]._replace(user="nobody@example.co.jp")
    nodeless = devices[1]._replace(attributes=(("owner_name", "x"),))
    aws = backend(contracts)
    results = {r.device_id: r for r in aws.migrate("op-1", "canary", [stranger, nodeless, *devices[2:]], {}, NOW)}
    assert "user nobody@example.co.jp is not in identity store" in results[stranger.device_id].error
    assert "no instance_id" in results[nodeless.device_id].error
    assert not results[stranger.device_id].retriable and results[stranger.device_id].steps_done == 0
    assert all(r.ok for d, r in results.items() if d not in (stranger.device_id, nodeless.device_id))
    aws.close()


def checkin(device: str, wave: int, at: str, *, status: str = "succeeded", failed: str = "",
            action: str = "kitting", site: str = "tokyo") -> dict[str, Any]:
    return {"rollout_wave": {"S": f"zt-2027#{wave}"}, "device_id": {"S": device}, "site": {"S": site},
            "action": {"S": action}, "status": {"S": status}, "failed_checks": {"S": failed},
            "checked_in_at": {"S": at}, "expires_at": {"N": "1900000000"}}


def test_signals_come_from_checkins_alarms_and_nothing_from_the_future() -> None:
    devices, contracts = provisioned(60)
    tokyo = [d for d in devices if d.site == "tokyo"][:6]
    aws = backend(contracts)
    refs = {r.device_id: r.ref for r in aws.migrate("op-1", "wave-1", tokyo, {}, NOW)}  # kitting commands SSM knows
    table = contracts["tokyo"].checkin_table_name
    ddb = boto3.client("dynamodb", region_name="ap-northeast-1")
    for item in (checkin(tokyo[0].device_id, 1, "2027-01-12T10:00:00Z"),
                 checkin(tokyo[1].device_id, 1, "2027-01-12T10:00:00Z", status="failed",
                         failed="edr_agent_running,signin_portal_reachable"),
                 checkin(tokyo[2].device_id, 1, "2027-01-13T10:00:00Z"),  # after "now"
                 checkin(tokyo[3].device_id, 1, "2027-01-12T10:00:00Z", action="rollback"),
                 checkin(tokyo[4].device_id, 0, "2027-01-12T10:00:00Z")):  # kitted in the wave before
        ddb.put_item(TableName=table, Item=item)
    ddb.put_item(TableName=table, Item={**checkin(tokyo[5].device_id, 1, "2027-01-12T10:00:00Z"),
                                        "status": {"S": "maybe"}})
    boto3.client("cloudwatch", region_name="ap-northeast-1").set_alarm_state(
        AlarmName=contracts["tokyo"].sign_in_failure_alarm_name, StateValue="ALARM", StateReason="test")
    signals = aws.read_signals("zt-2027", "wave-1", tokyo, NOW + dt.timedelta(hours=12), refs=refs)
    assert sorted(signals.reports) == sorted([tokyo[0].device_id, tokyo[1].device_id, tokyo[4].device_id])
    assert signals.reports[tokyo[0].device_id].checks == {"kitting": True, "ztna": True, "signin": True, "app": True}
    assert signals.reports[tokyo[1].device_id].checks == {"kitting": False, "ztna": True, "signin": False,
                                                          "app": True}
    assert ("zt-rollout-tokyo-sign-in-failures", "ALARM") in {(a.name, a.state) for a in signals.alarms}
    assert len(signals.errors) == 1 and "status" in signals.errors[0] and table in signals.errors[0]
    aws.close()


def fail_on_node(contract: Any, command: str, node: str) -> None:
    """Make moto's record of ``command`` on ``node`` say what a node whose kitting failed reports."""
    from moto.ssm.models import ssm_backends

    from rollout.awslocal.site import ACCOUNT

    found = next(c for c in ssm_backends[ACCOUNT][contract.region]._commands if c.command_id == command)
    next(i for i in found.invocations if i["InstanceId"] == node)["Status"] = "Failed"


def test_a_succeeded_check_in_counts_only_when_ssms_record_of_the_nodes_command_agrees() -> None:
    """Any node of a site can write any device's check-in: one compromised device could report its
    neighbours healthy. The gate takes SSM's own status of each device's kitting command as the witness."""
    devices, contracts = provisioned(60)
    honest, forged, unknown, failed = [d for d in devices if d.site == "tokyo"][:4]
    aws = backend(contracts)
    refs = {r.device_id: r.ref for r in aws.migrate("op-1", "canary", [honest, forged, unknown, failed], {}, NOW)}
    fail_on_node(contracts["tokyo"], refs[forged.device_id], dict(forged.attributes)["instance_id"])
    ddb = boto3.client("dynamodb", region_name="ap-northeast-1")
    at = "2027-01-12T10:00:00Z"
    for item in (checkin(honest.device_id, 0, at), checkin(forged.device_id, 0, at), checkin(unknown.device_id, 0, at),
                 checkin(failed.device_id, 0, at, status="failed", failed="disk_encrypted")):
        ddb.put_item(TableName=contracts["tokyo"].checkin_table_name, Item=item)
    del refs[unknown.device_id]  # no kitting command known for it: nothing to corroborate with
    signals = aws.read_signals("zt-2027", "canary", [honest, forged, unknown, failed], NOW + dt.timedelta(hours=2),
                               refs=refs)
    assert signals.reports[honest.device_id].checks == {"kitting": True, "ztna": True, "signin": True, "app": True}
    assert signals.reports[forged.device_id].checks == {"kitting": False}
    assert unknown.device_id not in signals.reports
    assert signals.reports[failed.device_id].checks["kitting"] is False  # a failure is taken as reported
    assert [e for e in signals.errors if forged.device_id in e] == [
        f"site tokyo: {forged.device_id}'s check-in says its kitting succeeded, but SSM says command "
        f"{refs[forged.device_id]} ended Failed on node {dict(forged.attributes)['instance_id']}: the check-in is "
        "not trusted"]
    aws.close()


def test_signals_name_a_site_whose_alarm_is_missing() -> None:
    devices, contracts = provisioned(40)
    boto3.client("cloudwatch", region_name="ap-northeast-1").delete_alarms(
        AlarmNames=[contracts["tokyo"].kitting_failure_alarm_name])
    aws = backend(contracts)
    signals = aws.read_signals("zt-2027", "canary", [d for d in devices if d.site == "tokyo"], NOW)
    assert signals.errors == (f"site tokyo: alarm {contracts['tokyo'].kitting_failure_alarm_name} does not exist in "
                              "ap-northeast-1 (run `pulumi up` for it)",)
    aws.close()


def test_the_identity_store_lives_in_the_identity_center_region() -> None:
    devices, contracts = provisioned(200)
    assert contracts["osaka"].region == "ap-northeast-3" and contracts["osaka"].identity_region == "ap-northeast-1"
    osaka = [d for d in devices if d.site == "osaka"]
    aws = backend(contracts)
    assert all(r.ok for r in aws.migrate("op-1", "canary", osaka, {}, NOW))
    ids = user_ids(osaka)
    assert members(contracts["osaka"]) == {ids[d.user] for d in osaka}
    aws.close()





def test_the_backend_calls_only_what_the_orchestrator_role_grants() -> None:
    from rollout.core.permissions import OPERATOR_ACTIONS, required_actions

    devices, contracts = provisioned(60)
    aws = backend(contracts)
    results = aws.migrate("op-1", "canary", devices, {}, NOW)
    aws.read_signals("zt-2027", "canary", devices, NOW, refs={r.device_id: r.ref for r in results})
    aws.revert("op-2", "canary", devices, {r.device_id: r.steps_done for r in results}, NOW, replay=True)
    called = set(aws.caller.stats.calls)
    assert {"identitystore:CreateGroupMembership", "ssm:SendCommand", "ssm:ListCommands", "dynamodb:Query",
            "cloudwatch:DescribeAlarms", "identitystore:DeleteGroupMembership", "sts:AssumeRole"} <= called
    assert called <= required_actions() | set(OPERATOR_ACTIONS)
    aws.close()


def test_every_call_is_made_by_an_identity_the_stacks_policies_allow_to_make_it() -> None:
    """Not only the action: the caller. A site's calls run as that site's orchestrator role, whose policy
    names only that site's resources; the operator's own identity reads the contracts (from SSM, in each
    region in turn) and assumes the roles. Sites that share a region (tokyo and fukuoka) must still each
    be read with their own role."""
    from dataclasses import replace

    from rollout.backends.aws.contracts import resolve_contracts
    from rollout.awslocal.site import ACCOUNT, CONTRACTS_SOURCE
    from rollout.core.permissions import operator_policy, orchestrator_policy
    from tests.aws_identity import OPERATOR, CallLog, denials, site_resources

    devices, provisioned_contracts = provisioned(90)
    log = CallLog()  # `--contracts ssm:...`: read with the operator's own identity, before any role
    contracts = resolve_contracts(CONTRACTS_SOURCE, provisioned_contracts, ssm_client=log.client_factory("ssm"))
    assert contracts == provisioned_contracts
    assert len({c.region for c in contracts.values()}) < len(contracts), "two sites share a region"
    aws = backend(contracts, session_factory=log.session)
    results = aws.migrate("op-1", "canary", devices, {}, NOW)
    aws.read_signals("zt-2027", "canary", devices, NOW, refs={r.device_id: r.ref for r in results})
    aws.revert("op-2", "canary", devices, {r.device_id: r.steps_done for r in results}, NOW)
    aws.close()
    policies = {c.orchestrator_role_arn: [orchestrator_policy(site_resources(c, ACCOUNT))] for c in contracts.values()}
    policies[OPERATOR] = [
        operator_policy(replace(site_resources(c, ACCOUNT), orchestrator_role_arn=c.orchestrator_role_arn))
        for c in contracts.values()]
    tags = {dict(d.attributes)["instance_id"]: {"zt-rollout-site": d.site} for d in devices}
    assert {c.identity for c in log.calls} == set(policies)
    assert denials(log, policies, ACCOUNT, tags) == []


def test_one_node_ssm_refuses_fails_only_its_own_device() -> None:
    devices, contracts = provisioned(120)
    tokyo = sorted((d for d in devices if d.site == "tokyo"), key=lambda d: d.device_id)
    bad = dict(tokyo[3].attributes)["instance_id"]

    def refuse_bad_node(request: Any, event_name: str = "", **kwargs: Any) -> Any:
        if event_name.endswith("SendCommand") and bad.encode() in request.body:
            from tests.aws_builders import error_response

            return error_response(request, "json", 400, "InvalidInstanceId", f"{bad} is not a valid node")
        return None

    faults = Faults()
    faults.hook = refuse_bad_node  # type: ignore[method-assign]
    aws = backend(contracts, session_factory=faults.session)
    results = {r.device_id: r for r in aws.migrate("op-1", "canary", tokyo, {}, NOW)}
    failed = [d for d, r in results.items() if not r.ok]
    assert failed == [tokyo[3].device_id]
    assert "InvalidInstanceId" in results[tokyo[3].device_id].error
    assert results[tokyo[3].device_id].steps_done == IDENTITY  # joined; the engine reverts it
    aws.close()


def test_a_user_with_another_device_on_zero_trust_keeps_the_group() -> None:
    devices, contracts = provisioned(40)
    laptop = next(d for d in devices if d.site == "tokyo")
    desktop = laptop._replace(device_id="D9999999", hostname="TKY-PC-9999999",
                              attributes=(("instance_id", "mi-0000000000000099"),))
    aws = backend(contracts)
    done = {r.device_id: r for r in aws.migrate("op-1", "canary", [laptop, desktop], {}, NOW)}
    assert all(r.ok for r in done.values())
    reverted = aws.revert("op-2", "canary", [laptop], {laptop.device_id: done[laptop.device_id].steps_done}, NOW,
                          keep_access={laptop.user})
    assert reverted[0].ok and reverted[0].steps_done == 0
    assert members(contracts["tokyo"]) == {user_ids([laptop])[laptop.user]}  # the desktop still needs it
    aws.revert("op-3", "canary", [desktop], {desktop.device_id: done[desktop.device_id].steps_done}, NOW)
    assert members(contracts["tokyo"]) == set()
    aws.close()
