"""The site program under Pulumi's mocks: each example site creates what it should and exports the contract."""

from __future__ import annotations

import json

import pytest

from rollout.core.contract import (
    CHECKIN_PARTITION_KEY,
    CHECKIN_SORT_KEY,
    CHECKIN_TTL_ATTRIBUTE,
    OUTPUT_NAMES,
    load_contract,
)
from stacks.config import SiteConfigError

from .conftest import ProgramRun, run_program, stack_config, unsecret

VA_GROUP = "aws:verifiedaccess/group:Group"
TRUST_PROVIDER = "aws:verifiedaccess/trustProvider:TrustProvider"


def test_outputs_are_exactly_the_contract_and_validate(site_run: tuple[str, ProgramRun]) -> None:
    site, run = site_run
    assert tuple(run.outputs) == OUTPUT_NAMES
    contract = load_contract(run.outputs, site=site)
    assert contract.contract_parameter_name == f"/zt-rollout/{site}/contract"
    assert contract.migrated_group_id != contract.pilot_group_id


def test_contract_parameter_holds_the_same_contract_as_the_outputs(site_run: tuple[str, ProgramRun]) -> None:
    site, run = site_run
    parameter = run.one("aws:ssm/parameter:Parameter")
    assert parameter.inputs["name"] == f"/zt-rollout/{site}/contract"
    assert parameter.inputs["type"] == "String"
    assert json.loads(unsecret(parameter.inputs["value"])) == run.outputs


def test_identity_groups_and_user_trust_provider(site_run: tuple[str, ProgramRun]) -> None:
    site, run = site_run
    groups = {g.inputs["displayName"]: g.inputs for g in run.of_type("aws:identitystore/group:Group")}
    assert set(groups) == {f"zt-rollout-{site}-pilot", f"zt-rollout-{site}-migrated"}
    assert {g["identityStoreId"] for g in groups.values()} == {"d-95671d3a1f"}
    providers = {p.inputs["trustProviderType"]: p.inputs for p in run.of_type(TRUST_PROVIDER)}
    assert providers["user"]["userTrustProviderType"] == "iam-identity-center"
    assert providers["user"]["policyReferenceName"] == "idc"


def test_groups_live_in_identity_centers_home_region_when_the_site_is_elsewhere() -> None:
    run = run_program("osaka", stack_config("osaka"))  # ap-northeast-3, with Identity Center in Tokyo
    (home,) = [p for p in run.of_type("pulumi:providers:aws") if p.inputs.get("region") == "ap-northeast-1"]
    groups = run.of_type("aws:identitystore/group:Group")
    assert groups and all(home.name in g.provider for g in groups)
    assert run.outputs["identity_store_region"] == "ap-northeast-1" and run.outputs["region"] == "ap-northeast-3"
    tokyo = run_program("tokyo", stack_config("tokyo"))
    assert tokyo.of_type("pulumi:providers:aws") == [] or all(
        "identity-center" not in g.provider for g in tokyo.of_type("aws:identitystore/group:Group"))
    assert tokyo.outputs["identity_store_region"] == tokyo.outputs["region"]


def test_device_trust_provider_follows_config() -> None:
    config = {**stack_config("fukuoka"), "zt-rollout:deviceTrustProvider": "jumpcloud",
              "zt-rollout:deviceTrustTenantId": "fukuoka-org-1"}
    run = run_program("fukuoka", config)
    device = next(p.inputs for p in run.of_type(TRUST_PROVIDER) if p.inputs["trustProviderType"] == "device")
    assert device["deviceTrustProviderType"] == "jumpcloud"
    assert device["policyReferenceName"] == "jumpcloud"
    assert device["deviceOptions"] == {"tenantId": "fukuoka-org-1"}
    assert "'jumpcloud-agent.msi'" in next(d.inputs["content"] for d in run.of_type("aws:ssm/document:Document")
                                           if d.inputs["name"].endswith("-kitting"))


def test_checkin_table_has_contract_keys_ttl_and_point_in_time_recovery(site_run: tuple[str, ProgramRun]) -> None:
    _, run = site_run
    table = run.one("aws:dynamodb/table:Table").inputs
    assert (table["hashKey"], table["rangeKey"]) == (CHECKIN_PARTITION_KEY, CHECKIN_SORT_KEY)
    assert table["ttl"] == {"attributeName": CHECKIN_TTL_ATTRIBUTE, "enabled": True}
    assert table["pointInTimeRecovery"]["enabled"] is True


def test_documents_are_yaml_commands_that_write_to_the_sites_table(site_run: tuple[str, ProgramRun]) -> None:
    site, run = site_run
    documents = {d.inputs["name"]: d.inputs for d in run.of_type("aws:ssm/document:Document")}
    assert set(documents) == {f"zt-rollout-{site}-kitting", f"zt-rollout-{site}-rollback"}
    for document in documents.values():
        assert (document["documentType"], document["documentFormat"]) == ("Command", "YAML")
        assert f"--table-name zt-rollout-{site}-checkins" in document["content"]


def test_alarms_per_site_on_the_sites_metrics(site_run: tuple[str, ProgramRun]) -> None:
    site, run = site_run
    alarms = {a.inputs["name"]: a.inputs for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert set(alarms) == {f"zt-rollout-{site}-kitting-failures", f"zt-rollout-{site}-sign-in-failures"}
    assert {a["namespace"] for a in alarms.values()} == {f"ZtRollout/{site}"}
    dashboard = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    alarm_widget = next(w for w in dashboard["widgets"] if w["type"] == "alarm")
    assert len(alarm_widget["properties"]["alarms"]) == 2


def test_verified_access_group_policy_names_the_migrated_group(site_run: tuple[str, ProgramRun]) -> None:
    _, run = site_run
    policy = run.one(VA_GROUP).inputs["policyDocument"]
    assert f'.groups has "{run.outputs["migrated_group_id"]}"' in policy
    assert run.outputs["pilot_group_id"] not in policy
    attachments = run.of_type("aws:verifiedaccess/instanceTrustProviderAttachment:InstanceTrustProviderAttachment")
    assert len(attachments) == 2
    logging = run.one("aws:verifiedaccess/instanceLoggingConfiguration:InstanceLoggingConfiguration").inputs
    assert logging["accessLogs"]["cloudwatchLogs"]["enabled"] is True


def test_one_endpoint_per_private_app() -> None:
    run = run_program("tokyo", stack_config("tokyo"))
    endpoints = {e.inputs["endpointDomainPrefix"]: e.inputs for e in run.of_type("aws:verifiedaccess/endpoint:Endpoint")}
    assert set(endpoints) == {"keiri", "kintai"}
    assert endpoints["kintai"]["loadBalancerOptions"]["port"] == 8443
    assert {e["verifiedAccessGroupId"] for e in endpoints.values()} == {run.outputs["verified_access_group_id"]}


def test_branch_part_way_to_sase_keeps_closed_network_and_breaks_out_microsoft_365() -> None:
    run = run_program("fukuoka", stack_config("fukuoka"))
    assert run.of_type("aws:verifiedaccess/endpoint:Endpoint") == []
    lists = {d.inputs["name"]: d.inputs["domains"] for d in
             run.of_type("aws:route53/resolverFirewallDomainList:ResolverFirewallDomainList")}
    assert "outlook.office365.com" in lists["zt-rollout-fukuoka-local-breakout"]
    rules = {r.inputs["action"]: r.inputs["priority"] for r in
             run.of_type("aws:route53/resolverFirewallRule:ResolverFirewallRule")}
    assert rules["ALLOW"] < rules["BLOCK"], "the breakout allow list must be evaluated before the block list"
    association = run.one(
        "aws:route53/resolverFirewallRuleGroupAssociation:ResolverFirewallRuleGroupAssociation").inputs
    assert association["vpcId"] == "vpc-0a11c0ffee0000003"
    kitting = next(d.inputs["content"] for d in run.of_type("aws:ssm/document:Document")
                   if d.inputs["name"].endswith("-kitting"))
    assert "ProxyOverride -Value 'outlook.office365.com;" in kitting


def test_head_office_retires_the_closed_network_in_kitting() -> None:
    run = run_program("tokyo", stack_config("tokyo"))
    kitting = next(d.inputs["content"] for d in run.of_type("aws:ssm/document:Document")
                   if d.inputs["name"].endswith("-kitting"))
    assert "ProxyEnable -Value 0" in kitting and "Remove-VpnConnection" in kitting


def test_components_parent_their_resources() -> None:
    run = run_program("fukuoka", stack_config("fukuoka"))
    components = {r.type for r in run.resources if r.type.startswith("zt-rollout:site:")}
    assert components == {f"zt-rollout:site:{c}" for c in ("Identity", "Endpoint", "Sase", "Orchestrator", "Contract")}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"zt-rollout:minPostureScore": "140"}, "zt-rollout:minPostureScore: Input should be less than or equal to 100"),
        ({"zt-rollout:vpcId": None}, "zt-rollout:vpcId: Field required"),
        ({"zt-rollout:deviceTrustProvider": "okta"}, "zt-rollout:deviceTrustProvider: Input should be 'crowdstrike'"),
        ({"zt-rollout:subnetIds": "subnet-1"}, "zt-rollout:subnetIds: 'subnet-1' is not a valid value for this key"),
        ({"aws:region": None}, "aws:region: Field required"),
        ({"zt-rollout:privateApps": json.dumps([{"name": "Bad Name"}])}, "zt-rollout:privateApps[0].name:"),
    ],
)
def test_broken_site_config_fails_with_the_key_and_the_stack(change: dict[str, str | None], expected: str) -> None:
    config = stack_config("fukuoka")
    for key, value in change.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    with pytest.raises(SiteConfigError) as raised:
        run_program("fukuoka", config)
    message = str(raised.value)
    assert message.startswith("stack 'fukuoka': ")
    assert expected in message
    assert "Pulumi.fukuoka.yaml" in message


def test_device_role_serves_only_this_accounts_activations_and_reads_only_its_tokens(
        site_run: tuple[str, ProgramRun]) -> None:
    """The hybrid service role's confused-deputy conditions, as the Systems Manager User Guide writes them
    (aws:SourceAccount, aws:SourceArn of the account's SSM in the region), and no account wildcard."""
    from .conftest import ACCOUNT_ID

    site, run = site_run
    region = run.outputs["region"]
    role = next(r for r in run.of_type("aws:iam/role:Role") if r.inputs["name"] == f"zt-rollout-{site}-device")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "ssm.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
                                  "ArnEquals": {"aws:SourceArn": f"arn:aws:ssm:{region}:{ACCOUNT_ID}:*"}}
    policy = next(p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["name"] == "zt-rollout-device")
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert statements["ReadEnrollmentTokens"]["Resource"] == [
        f"arn:aws:ssm:{region}:{ACCOUNT_ID}:parameter/zt-rollout/{site}/*-enrollment-token"]
    assert all(":*:" not in r for s in statements.values() for r in s["Resource"])
