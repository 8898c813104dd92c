"""The orchestrator's IAM role for one site, with the least-privilege policy from ``rollout.core.permissions``.

The policy is built by :func:`rollout.core.permissions.orchestrator_policy` from the names this stack
created, so the role grants exactly what the orchestrator's AWS backend calls and nothing more:
identity-store membership changes on the site's store and its two migration groups, SendCommand of
the two migration documents on managed nodes tagged for the site, and reads of the command results,
the contract parameter, the check-in table and the site's alarms.

Who may assume the role: the principals in ``orchestratorPrincipals``, or, when that is empty, the
account. Either way those identities need the grant on their own side too: the managed policy
``zt-rollout-<site>-operator`` (:func:`rollout.core.permissions.operator_policy`) allows exactly what the
operator's own identity calls before and for acting as the role (reading the site's contract,
``sts:AssumeRole`` on the role); attach it to the people and CI that run the orchestrator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi_aws import iam

from rollout.core.permissions import SiteResources, operator_policy, orchestrator_policy

from .config import SiteConfig
from .tags import site_tags


@dataclass(frozen=True, slots=True)
class OrchestratorArgs:
    config: SiteConfig
    pilot_group_id: pulumi.Input[str]
    migrated_group_id: pulumi.Input[str]
    kitting_document_name: pulumi.Input[str]
    rollback_document_name: pulumi.Input[str]
    checkin_table_name: pulumi.Input[str]
    alarm_names: tuple[pulumi.Input[str], ...]
    contract_parameter_name: str


class OrchestratorComponent(pulumi.ComponentResource):
    """Role ``zt-rollout-<site>-orchestrator`` and its inline least-privilege policy."""

    role_arn: pulumi.Output[str]
    operator_policy_arn: pulumi.Output[str]

    def __init__(self, name: str, args: OrchestratorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zt-rollout:site:Orchestrator", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        caller = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))

        role = iam.Role(
            f"{name}-role",
            name=f"zt-rollout-{cfg.site}-orchestrator",
            description=f"zt-rollout orchestrator for {cfg.site}: moves devices, reads their health",
            assume_role_policy=pulumi.Output.all(partition.partition, caller.account_id).apply(
                lambda values: json.dumps(_trust_policy(cfg, str(values[0]), str(values[1])))
            ),
            max_session_duration=3600,
            tags=site_tags(cfg.site, cfg.site_kind.value),
            opts=child,
        )
        resources = pulumi.Output.all(
            partition.partition,
            caller.account_id,
            args.pilot_group_id,
            args.migrated_group_id,
            args.kitting_document_name,
            args.rollback_document_name,
            args.checkin_table_name,
            *args.alarm_names,
        ).apply(lambda values: _site_resources(cfg, args.contract_parameter_name, [str(v) for v in values]))
        iam.RolePolicy(
            f"{name}-policy",
            name="zt-rollout-orchestrator",
            role=role.id,
            policy=resources.apply(lambda site: json.dumps(orchestrator_policy(site), sort_keys=True)),
            opts=child,
        )
        operator = iam.Policy(
            f"{name}-operator",
            name=f"zt-rollout-{cfg.site}-operator",
            description=f"For the people and CI that run the zt-rollout orchestrator on {cfg.site}: read the "
                        "site's contract and assume its orchestrator role",
            policy=pulumi.Output.all(resources, role.arn).apply(
                lambda values: json.dumps(operator_policy(replace(values[0], orchestrator_role_arn=str(values[1]))),
                                          sort_keys=True)),
            tags=site_tags(cfg.site, cfg.site_kind.value),
            opts=child,
        )
        self.role_arn = role.arn
        self.operator_policy_arn = operator.arn
        self.register_outputs({"role_arn": self.role_arn, "operator_policy_arn": self.operator_policy_arn})


def _site_resources(cfg: SiteConfig, parameter_name: str, values: list[str]) -> SiteResources:
    """Assemble the resolved names, in the order :class:`OrchestratorComponent` lists them."""
    partition, account_id, pilot, migrated, kitting, rollback, table, *alarms = values
    return SiteResources(
        partition=partition,
        region=cfg.region,
        account_id=account_id,
        site=cfg.site,
        identity_store_id=cfg.identity_store_id,
        pilot_group_id=pilot,
        migrated_group_id=migrated,
        kitting_document_name=kitting,
        rollback_document_name=rollback,
        checkin_table_name=table,
        alarm_names=tuple(alarms),
        contract_parameter_name=parameter_name,
        verified_access_region=cfg.verified_access_region,
    )


def _trust_policy(cfg: SiteConfig, partition: str, account_id: str) -> dict[str, Any]:
    principals = list(cfg.orchestrator_principals) or [f"arn:{partition}:iam::{account_id}:root"]
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": principals}, "Action": "sts:AssumeRole"}],
    }
