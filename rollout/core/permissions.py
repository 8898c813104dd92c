"""The IAM actions the orchestrator's AWS backend needs, and on which resources: the single source of truth.

``stacks/orchestrator.py`` builds each site's orchestrator role policy from :data:`ORCHESTRATOR_GRANTS`
through :func:`orchestrator_policy`; the tests check that the deployed policy grants exactly
:func:`required_actions`, and the backend may call nothing else. Add an action here, with its scope,
before the backend uses it.

The rule: every write is pinned to named resources of one site; only reads that carry ids minted at
run time are granted more widely. Resource ARN formats (Service Authorization Reference):

- identity store ``arn:${Partition}:identitystore::${Account}:identitystore/${IdentityStoreId}``;
  group ``arn:${Partition}:identitystore:::group/${GroupId}``; user
  ``arn:${Partition}:identitystore:::user/${UserId}``; membership
  ``arn:${Partition}:identitystore:::membership/${MembershipId}`` (users, groups and memberships
  carry no account or region). ``CreateGroupMembership`` requires the store, group and user;
  ``DeleteGroupMembership`` also the membership. Users and memberships are minted at run time, so
  they are granted as ``user/*`` and ``membership/*``; the groups are named exactly.
- SSM document ``arn:${Partition}:ssm:${Region}:${Account}:document/${DocumentName}``; hybrid
  managed node ``arn:${Partition}:ssm:${Region}:${Account}:managed-instance/${InstanceId}``; EC2
  instance ``arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId}``. ``SendCommand``
  authorises the document and every target node separately, so the nodes get their own statement
  with the condition ``ssm:resourceTag/zt-rollout-site == <site>``.
- SSM parameter ``arn:${Partition}:ssm:${Region}:${Account}:parameter/${Name}`` (a name that
  starts with ``/`` loses that slash in the ARN).
- DynamoDB table ``arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}``.
- CloudWatch alarm ``arn:${Partition}:cloudwatch:${Region}:${Account}:alarm:${AlarmName}``: the
  kitting alarm in the site's region, the sign-in alarm in Verified Access's (IAM Identity Center's).
- IAM role ``arn:${Partition}:iam::${Account}:role/${RoleName}`` (``sts:AssumeRole``).

The operator's (or CI's) own identity needs :data:`OPERATOR_GRANTS` for each site: reading the
site's contract (``--contracts ssm`` does that before any role is assumed: the contract names the
role) and assuming the site's orchestrator role. Each site's stack creates them as the managed policy
``zt-rollout-<site>-operator`` (:func:`operator_policy`), to attach to the people and CI that run
the orchestrator.

This module is pure (standard library only) so the orchestrator and the tests import it freely.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from rollout.core.contract import DEVICE_SITE_TAG_KEY


class Scope(StrEnum):
    """Which of a site's resources a grant applies to."""

    IDENTITY_STORE_MIGRATION_GROUPS = "identity-store-migration-groups"
    MIGRATION_DOCUMENTS = "migration-documents"
    SITE_MANAGED_NODES = "site-managed-nodes"
    COMMAND_RESULTS = "command-results"
    CONTRACT_PARAMETER = "contract-parameter"
    CHECKIN_TABLE = "checkin-table"
    SITE_ALARMS = "site-alarms"
    ORCHESTRATOR_ROLE = "orchestrator-role"
    CONTRACT_PARAMETER_ANY_REGION = "contract-parameter-any-region"


@dataclass(frozen=True, slots=True)
class Grant:
    """Actions allowed on one scope; ``writes`` marks grants that change state."""

    sid: str
    actions: tuple[str, ...]
    scope: Scope
    writes: bool


ORCHESTRATOR_GRANTS: Final[tuple[Grant, ...]] = (
    Grant(
        "MoveUsersBetweenMigrationGroups",
        ("identitystore:CreateGroupMembership", "identitystore:DeleteGroupMembership"),
        Scope.IDENTITY_STORE_MIGRATION_GROUPS,
        writes=True,
    ),
    Grant(
        "LookUpUsersAndMemberships",
        ("identitystore:GetUserId", "identitystore:GetGroupMembershipId"),
        Scope.IDENTITY_STORE_MIGRATION_GROUPS,
        writes=False,
    ),
    Grant("RunMigrationDocuments", ("ssm:SendCommand",), Scope.MIGRATION_DOCUMENTS, writes=True),
    Grant("OnSiteDevicesOnly", ("ssm:SendCommand",), Scope.SITE_MANAGED_NODES, writes=True),
    Grant(
        "ReadCommandResults",
        ("ssm:ListCommands", "ssm:ListCommandInvocations", "ssm:GetCommandInvocation"),
        Scope.COMMAND_RESULTS,
        writes=False,
    ),
    Grant("ReadSiteContract", ("ssm:GetParameter",), Scope.CONTRACT_PARAMETER, writes=False),
    Grant("ReadDeviceCheckIns", ("dynamodb:GetItem", "dynamodb:Query"), Scope.CHECKIN_TABLE, writes=False),
    Grant("ReadSiteAlarms", ("cloudwatch:DescribeAlarms",), Scope.SITE_ALARMS, writes=False),
)


@dataclass(frozen=True, slots=True)
class SiteResources:
    """The concrete names a site's stack created, from which the policy's ARNs are built."""

    partition: str
    region: str
    account_id: str
    site: str
    identity_store_id: str
    pilot_group_id: str
    migrated_group_id: str
    kitting_document_name: str
    rollback_document_name: str
    checkin_table_name: str
    alarm_names: tuple[str, ...]
    contract_parameter_name: str
    orchestrator_role_arn: str = ""  # needed by the operator's grants only
    verified_access_region: str = ""  # where the sign-in alarm is ('': region)


def required_actions(grants: Iterable[Grant] = ORCHESTRATOR_GRANTS) -> frozenset[str]:
    """Every action the orchestrator's AWS backend may call."""
    return frozenset(action for grant in grants for action in grant.actions)


def write_actions(grants: Iterable[Grant] = ORCHESTRATOR_GRANTS) -> frozenset[str]:
    """The actions that change state; none of them may be granted on ``*``."""
    return frozenset(action for grant in grants if grant.writes for action in grant.actions)


def scope_resources(scope: Scope, site: SiteResources) -> tuple[str, ...]:
    """Return the ARNs a scope stands for at ``site`` (see the module docstring for the formats)."""
    p, region, account = site.partition, site.region, site.account_id
    if scope is Scope.IDENTITY_STORE_MIGRATION_GROUPS:
        return (
            f"arn:{p}:identitystore::{account}:identitystore/{site.identity_store_id}",
            f"arn:{p}:identitystore:::group/{site.pilot_group_id}",
            f"arn:{p}:identitystore:::group/{site.migrated_group_id}",
            f"arn:{p}:identitystore:::user/*",
            f"arn:{p}:identitystore:::membership/*",
        )
    if scope is Scope.MIGRATION_DOCUMENTS:
        return tuple(
            f"arn:{p}:ssm:{region}:{account}:document/{name}"
            for name in (site.kitting_document_name, site.rollback_document_name)
        )
    if scope is Scope.SITE_MANAGED_NODES:
        return (
            f"arn:{p}:ssm:{region}:{account}:managed-instance/*",
            f"arn:{p}:ec2:{region}:{account}:instance/*",
        )
    if scope is Scope.COMMAND_RESULTS:
        return ("*",)
    if scope is Scope.CONTRACT_PARAMETER:
        return (f"arn:{p}:ssm:{region}:{account}:parameter/{site.contract_parameter_name.lstrip('/')}",)
    if scope is Scope.CHECKIN_TABLE:
        return (f"arn:{p}:dynamodb:{region}:{account}:table/{site.checkin_table_name}",)
    if scope is Scope.CONTRACT_PARAMETER_ANY_REGION:
        # `--contracts ssm:REGION,REGION` looks for the parameter in each region in turn: a region
        # without it must answer ParameterNotFound, not AccessDenied. Read-only, one parameter name.
        return (f"arn:{p}:ssm:*:{account}:parameter/{site.contract_parameter_name.lstrip('/')}",)
    if scope is Scope.ORCHESTRATOR_ROLE:
        if not site.orchestrator_role_arn:
            raise ValueError(f"site {site.site}: the orchestrator role's ARN is needed for the operator's grants")
        return (site.orchestrator_role_arn,)
    # (kitting, sign-in): the sign-in alarm watches Verified Access's logs, in Verified Access's region.
    regions = (region, site.verified_access_region or region)
    return tuple(f"arn:{p}:cloudwatch:{r}:{account}:alarm:{name}"
                 for r, name in zip(regions, site.alarm_names, strict=True))


def scope_condition(scope: Scope, site: SiteResources) -> dict[str, Any] | None:
    """Return the IAM condition a scope carries: managed nodes must be tagged for the site."""
    if scope is Scope.SITE_MANAGED_NODES:
        return {"StringEquals": {f"ssm:resourceTag/{DEVICE_SITE_TAG_KEY}": site.site}}
    return None


def orchestrator_policy(site: SiteResources, grants: Iterable[Grant] = ORCHESTRATOR_GRANTS) -> dict[str, Any]:
    """Build the orchestrator's IAM policy document for ``site``: one Allow statement per grant
    (:func:`operator_policy` with :data:`OPERATOR_GRANTS` builds the operator's)."""
    statements: list[dict[str, Any]] = []
    for grant in grants:
        statement: dict[str, Any] = {
            "Sid": grant.sid,
            "Effect": "Allow",
            "Action": sorted(grant.actions),
            "Resource": list(scope_resources(grant.scope, site)),
        }
        condition = scope_condition(grant.scope, site)
        if condition is not None:
            statement["Condition"] = condition
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


#: The team state store (``--state dynamodb://TABLE``): what every operator and driver needs on the
#: table, and what ``rollout state init`` needs once to create it. Not per site: one table for all.
STATE_STORE_ACTIONS: Final[tuple[str, ...]] = (
    "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
    "dynamodb:Query", "dynamodb:BatchWriteItem",
)
STATE_STORE_INIT_ACTIONS: Final[tuple[str, ...]] = ("dynamodb:CreateTable", "dynamodb:UpdateContinuousBackups",
                                                   "dynamodb:TagResource")
#: What the operator's own identity needs for each site: read its contract, act as its orchestrator role.
OPERATOR_GRANTS: Final[tuple[Grant, ...]] = (
    Grant("ReadSiteContract", ("ssm:GetParameter",), Scope.CONTRACT_PARAMETER_ANY_REGION, writes=False),
    Grant("ActAsSiteOrchestrator", ("sts:AssumeRole",), Scope.ORCHESTRATOR_ROLE, writes=False),
)
OPERATOR_ACTIONS: Final[tuple[str, ...]] = tuple(sorted(required_actions(OPERATOR_GRANTS)))


def operator_policy(site: SiteResources) -> dict[str, Any]:
    """The operator's IAM policy document for ``site`` (``site.orchestrator_role_arn`` must be set)."""
    return orchestrator_policy(site, OPERATOR_GRANTS)

