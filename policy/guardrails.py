"""The security guardrails for zt-rollout's site stacks, as pulumi-policy validations.

Each validation is a plain function of the resource (or stack) arguments and a ``report_violation``
callback, so it is unit-tested on arguments built directly; ``policy/__main__.py`` only assembles
:data:`POLICIES` into the pack. Rules:

- ``va-policy-requires-device-posture``: every Verified Access group policy reads a device trust
  provider's claims (``context.crowdstrike``, ``context.jamf`` or ``context.jumpcloud``).
- ``va-policy-no-permit-everyone``: no Verified Access group or endpoint policy has a ``permit``
  without a condition, or with the condition ``true``.
- ``vpc-has-dns-firewall``: every VPC the stack touches has a Route 53 Resolver DNS Firewall rule
  group association, and a stack with a Verified Access instance has at least one.
- ``checkin-table-point-in-time-recovery``: DynamoDB tables have point-in-time recovery enabled.
- ``iam-no-wildcard-actions``: no inline role policy allows an action containing ``*``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

VA_GROUP = "aws:verifiedaccess/group:Group"
VA_ENDPOINT = "aws:verifiedaccess/endpoint:Endpoint"
VA_INSTANCE = "aws:verifiedaccess/instance:Instance"
DNS_FIREWALL_ASSOCIATION = "aws:route53/resolverFirewallRuleGroupAssociation:ResolverFirewallRuleGroupAssociation"
VPC = "aws:ec2/vpc:Vpc"
DYNAMODB_TABLE = "aws:dynamodb/table:Table"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"

DEVICE_PROVIDERS = ("crowdstrike", "jamf", "jumpcloud")
_DEVICE_CLAIM = re.compile(r"\bcontext\s*\.\s*(%s)\b" % "|".join(DEVICE_PROVIDERS))
_COMMENT = re.compile(r"//[^\n]*")
_PERMIT = re.compile(r"\bpermit\s*\([^)]*\)\s*(?P<rest>[^;]*);", re.S)
_WHEN_TRUE = re.compile(r"^\s*when\s*\{\s*true\s*\}\s*$", re.S)


def _policy_text(args: ResourceValidationArgs) -> str | None:
    value = args.props.get("policyDocument")
    return _COMMENT.sub("", value) if isinstance(value, str) else None


def validate_va_policy_requires_device_posture(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A Verified Access group must have a policy, and that policy must test a device provider's claims."""
    if args.resource_type != VA_GROUP:
        return
    text = _policy_text(args)
    if text is None:
        if "policyDocument" not in args.props:
            report_violation(f"Verified Access group {args.name} has no policy; give it one that checks device "
                             "posture.", None)
        return
    if not _DEVICE_CLAIM.search(text):
        report_violation(f"Verified Access group {args.name}'s policy does not check device posture: "
                         f"test context.<{'|'.join(DEVICE_PROVIDERS)}> claims.", None)


def validate_va_policy_no_permit_everyone(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every ``permit`` in a Verified Access group or endpoint policy carries a real condition."""
    if args.resource_type not in (VA_GROUP, VA_ENDPOINT):
        return
    text = _policy_text(args)
    if text is None:
        return
    for match in _PERMIT.finditer(text):
        rest = match.group("rest").strip()
        if not rest or _WHEN_TRUE.match(rest):
            report_violation(f"{args.name}'s policy permits everyone: add a `when` condition on identity and "
                             "device.", None)


def validate_checkin_table_point_in_time_recovery(args: ResourceValidationArgs,
                                                  report_violation: ReportViolation) -> None:
    """DynamoDB tables (the check-in table above all) keep point-in-time recovery on."""
    if args.resource_type != DYNAMODB_TABLE:
        return
    pitr = args.props.get("pointInTimeRecovery")
    if not (isinstance(pitr, Mapping) and pitr.get("enabled") is True):
        report_violation(f"table {args.name} has no point-in-time recovery: set point_in_time_recovery "
                         "enabled=True.", None)


def validate_iam_no_wildcard_actions(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """No Allow statement of an inline role policy names an action with ``*`` (``*``, ``ssm:*``, ``ssm:Get*``)."""
    if args.resource_type != ROLE_POLICY:
        return
    document = args.props.get("policy")
    if not isinstance(document, str):
        return  # not known until apply; checked again on `pulumi up`
    try:
        statements = json.loads(document).get("Statement", [])
    except (json.JSONDecodeError, AttributeError):
        report_violation(f"role policy {args.name} is not a JSON policy document.", None)
        return
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Allow":
            continue
        wildcards = [a for a in _as_list(statement.get("Action", [])) if "*" in a]
        if wildcards or "NotAction" in statement:
            report_violation(f"role policy {args.name} allows wildcard actions {wildcards or ['NotAction']}: "
                             "list the exact actions (see rollout/core/permissions.py).", None)


def validate_vpc_has_dns_firewall(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every VPC referenced by the stack is associated with a DNS Firewall rule group."""
    associated = {r.props.get("vpcId") for r in args.resources if r.resource_type == DNS_FIREWALL_ASSOCIATION}
    has_instance = any(r.resource_type == VA_INSTANCE for r in args.resources)
    if has_instance and not associated:
        report_violation("the site has a Verified Access instance but no DNS Firewall association: associate a "
                         "rule group with the site's VPC.", None)
    for resource in args.resources:
        if resource.resource_type == DNS_FIREWALL_ASSOCIATION:
            continue
        vpc_id = resource.props.get("id") if resource.resource_type == VPC else resource.props.get("vpcId")
        if isinstance(vpc_id, str) and vpc_id not in associated:
            report_violation(f"VPC {vpc_id} (used by {resource.name}) has no DNS Firewall association.",
                             resource.urn)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


POLICIES: tuple[ResourceValidationPolicy | StackValidationPolicy, ...] = (
    ResourceValidationPolicy(
        name="va-policy-requires-device-posture",
        description="Every Verified Access group policy checks device posture.",
        validate=validate_va_policy_requires_device_posture,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="va-policy-no-permit-everyone",
        description="No Verified Access policy permits everyone.",
        validate=validate_va_policy_no_permit_everyone,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="vpc-has-dns-firewall",
        description="Every site VPC has a Route 53 Resolver DNS Firewall association.",
        validate=validate_vpc_has_dns_firewall,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="checkin-table-point-in-time-recovery",
        description="The check-in table (every DynamoDB table) has point-in-time recovery.",
        validate=validate_checkin_table_point_in_time_recovery,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="iam-no-wildcard-actions",
        description="The orchestrator's role (every inline role policy) allows no wildcard actions.",
        validate=validate_iam_no_wildcard_actions,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
)


def policy_names(policies: Iterable[ResourceValidationPolicy | StackValidationPolicy] = POLICIES) -> list[str]:
    """The pack's policy names, in order."""
    return [p.name for p in policies]
