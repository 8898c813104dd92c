"""Each guardrail of the policy pack on passing and failing arguments built directly (never the pack's
entry point, which starts the analyzer server). Real program output is used for the passing cases."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policy.guardrails import (
    DNS_FIREWALL_ASSOCIATION,
    VA_ENDPOINT,
    VA_GROUP,
    VA_INSTANCE,
    policy_names,
    validate_checkin_table_point_in_time_recovery,
    validate_iam_no_wildcard_actions,
    validate_va_policy_no_permit_everyone,
    validate_va_policy_requires_device_posture,
    validate_vpc_has_dns_firewall,
)

from .conftest import ProgramRun

Validation = Callable[[Any, Callable[[str, str | None], None]], None]


def options() -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None, aliases=[],
                                 custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[])


def resource_args(resource_type: str, props: Mapping[str, Any], name: str = "r") -> ResourceValidationArgs:
    return ResourceValidationArgs(resource_type=resource_type, props=props, urn=f"urn:pulumi:s::p::{resource_type}::{name}",
                                  name=name, opts=options(), provider=None)


def stack_resource(resource_type: str, props: Mapping[str, Any], name: str = "r") -> PolicyResource:
    return PolicyResource(resource_type=resource_type, props=props, urn=f"urn:pulumi:s::p::{resource_type}::{name}",
                          name=name, opts=options(), provider=None, parent=None, dependencies=[],
                          property_dependencies={})


def violations(validate: Validation, args: Any) -> list[str]:
    found: list[str] = []
    validate(args, lambda message, urn=None: found.append(message))
    return found


def test_pack_has_the_five_guardrails() -> None:
    assert policy_names() == ["va-policy-requires-device-posture", "va-policy-no-permit-everyone",
                              "vpc-has-dns-firewall", "checkin-table-point-in-time-recovery",
                              "iam-no-wildcard-actions"]


def test_program_output_passes_every_resource_guardrail(site_run: tuple[str, ProgramRun]) -> None:
    _, run = site_run
    for recorded in run.resources:
        args = resource_args(recorded.type, recorded.inputs, recorded.name)
        for validate in (validate_va_policy_requires_device_posture, validate_va_policy_no_permit_everyone,
                         validate_checkin_table_point_in_time_recovery, validate_iam_no_wildcard_actions):
            assert violations(validate, args) == [], (validate.__name__, recorded.name)


def test_program_output_passes_the_dns_firewall_guardrail(site_run: tuple[str, ProgramRun]) -> None:
    _, run = site_run
    stack = StackValidationArgs([stack_resource(r.type, r.inputs, r.name) for r in run.resources])
    assert violations(validate_vpc_has_dns_firewall, stack) == []


@pytest.mark.parametrize("policy", [
    'permit(principal, action, resource) when { context.idc.groups has "g-1" };',
    "// context.crowdstrike.assessment.overall > 50\npermit(principal, action, resource) when { context has idc };",
])
def test_group_policy_without_device_posture_is_refused(policy: str) -> None:
    found = violations(validate_va_policy_requires_device_posture, resource_args(VA_GROUP, {"policyDocument": policy}))
    assert len(found) == 1 and "does not check device posture" in found[0]


def test_group_without_policy_is_refused() -> None:
    found = violations(validate_va_policy_requires_device_posture, resource_args(VA_GROUP, {}))
    assert found and "has no policy" in found[0]


def test_group_policy_with_device_posture_passes() -> None:
    policy = "permit(principal, action, resource) when { context has jamf && context.jamf.risk == \"LOW\" };"
    assert violations(validate_va_policy_requires_device_posture, resource_args(VA_GROUP, {"policyDocument": policy})) == []


@pytest.mark.parametrize("resource_type", [VA_GROUP, VA_ENDPOINT])
@pytest.mark.parametrize("policy", [
    "permit(principal, action, resource);",
    "permit(principal, action, resource) when { true };",
    "forbid(principal, action, resource) when { context has x };\npermit (principal,action,resource) ;",
])
def test_permit_everyone_is_refused(resource_type: str, policy: str) -> None:
    found = violations(validate_va_policy_no_permit_everyone, resource_args(resource_type, {"policyDocument": policy}))
    assert len(found) == 1 and "permits everyone" in found[0]


def test_conditional_permit_passes() -> None:
    policy = "permit(principal, action, resource) when { context has crowdstrike };"
    assert violations(validate_va_policy_no_permit_everyone, resource_args(VA_GROUP, {"policyDocument": policy})) == []


@pytest.mark.parametrize("props", [{}, {"pointInTimeRecovery": {"enabled": False}}])
def test_table_without_point_in_time_recovery_is_refused(props: dict[str, Any]) -> None:
    found = violations(validate_checkin_table_point_in_time_recovery,
                       resource_args("aws:dynamodb/table:Table", props, "checkins"))
    assert found == ["table checkins has no point-in-time recovery: set point_in_time_recovery enabled=True."]


@pytest.mark.parametrize("action", ["*", "ssm:*", "identitystore:Create*", ["ssm:SendCommand", "ssm:Get*"]])
def test_wildcard_action_is_refused(action: str | list[str]) -> None:
    document = json.dumps({"Version": "2012-10-17",
                           "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
    found = violations(validate_iam_no_wildcard_actions,
                       resource_args("aws:iam/rolePolicy:RolePolicy", {"policy": document}, "orchestrator"))
    assert len(found) == 1 and "wildcard actions" in found[0]


def test_not_action_is_refused_and_deny_wildcards_are_allowed() -> None:
    document = json.dumps({"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
                                         {"Effect": "Deny", "Action": "*", "Resource": "*"}]})
    found = violations(validate_iam_no_wildcard_actions,
                       resource_args("aws:iam/rolePolicy:RolePolicy", {"policy": document}))
    assert len(found) == 1 and "NotAction" in found[0]


def test_vpc_without_association_is_refused() -> None:
    stack = StackValidationArgs([
        stack_resource("aws:ec2/securityGroup:SecurityGroup", {"vpcId": "vpc-1"}, "endpoints"),
        stack_resource("aws:ec2/securityGroup:SecurityGroup", {"vpcId": "vpc-2"}, "other"),
        stack_resource(DNS_FIREWALL_ASSOCIATION, {"vpcId": "vpc-1"}),
    ])
    assert violations(validate_vpc_has_dns_firewall, stack) == [
        "VPC vpc-2 (used by other) has no DNS Firewall association."]


def test_site_without_any_association_is_refused() -> None:
    stack = StackValidationArgs([stack_resource(VA_INSTANCE, {})])
    found = violations(validate_vpc_has_dns_firewall, stack)
    assert len(found) == 1 and "no DNS Firewall association" in found[0]
