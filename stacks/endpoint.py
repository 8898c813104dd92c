"""Endpoint: what a device meets when it is switched — its trust provider, documents, check-in table, alarms.

- A Verified Access device trust provider (CrowdStrike, Jamf or JumpCloud, from config).
- The kitting and rollback SSM Command documents, rendered from ``templates/ssm/``; both end by
  writing the device's check-in to the check-in table.
- The check-in table: partition key ``rollout_wave``, sort key ``device_id``, TTL on ``expires_at``,
  point-in-time recovery on (names from ``rollout.core.contract``, which the orchestrator reads with).
- The managed-node role for the site's hybrid activations: may write check-ins and the site's
  failure metrics, fetch agent installers and enrollment tokens, and nothing else.
- Alarms on kitting failures and sign-in failures, and a dashboard of the site's rollout metrics.

The device trust provider and the sign-in alarm (on the metric of Verified Access's access logs) are
created in Verified Access's region (``SiteConfig.verified_access_region``) through
``access_provider`` when that is not the stack's region; everything else in the stack's region.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws
from pulumi_aws import cloudwatch, dynamodb, iam, ssm, verifiedaccess

from rollout.core.contract import CHECKIN_PARTITION_KEY, CHECKIN_SORT_KEY, CHECKIN_TTL_ATTRIBUTE

from .config import SiteConfig
from .documents import (
    KITTING_FAILURE_METRIC,
    ROLLBACK_FAILURE_METRIC,
    SIGN_IN_FAILURE_METRIC,
    device_policy_reference,
    metric_namespace,
    render_kitting_document,
    render_rollback_document,
)
from .tags import site_tags

ALARM_PERIOD_SECONDS = 900


@dataclass(frozen=True, slots=True)
class EndpointArgs:
    config: SiteConfig
    access_provider: pulumi.ProviderResource | None = None  # Verified Access's region, when not the stack's


class EndpointComponent(pulumi.ComponentResource):
    """Device trust provider, kitting/rollback documents, check-in table, managed-node role, alarms."""

    device_trust_provider_id: pulumi.Output[str]
    kitting_document_name: pulumi.Output[str]
    rollback_document_name: pulumi.Output[str]
    checkin_table_name: pulumi.Output[str]
    kitting_failure_alarm_name: pulumi.Output[str]
    sign_in_failure_alarm_name: pulumi.Output[str]
    device_role_name: pulumi.Output[str]

    def __init__(self, name: str, args: EndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zt-rollout:site:Endpoint", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        access = pulumi.ResourceOptions(parent=self, provider=args.access_provider)
        tags = site_tags(cfg.site, cfg.site_kind.value)

        provider = verifiedaccess.TrustProvider(
            f"{name}-devices",
            trust_provider_type="device",
            device_trust_provider_type=cfg.device_trust_provider.value,
            policy_reference_name=device_policy_reference(cfg.device_trust_provider),
            device_options=(
                verifiedaccess.TrustProviderDeviceOptionsArgs(tenant_id=cfg.device_trust_tenant_id)
                if cfg.device_trust_tenant_id
                else None
            ),
            description=f"{cfg.device_trust_provider.value} device posture for {cfg.site}",
            tags=tags,
            opts=access,
        )
        table = self._checkin_table(name, cfg, tags, child)
        kitting = ssm.Document(
            f"{name}-kitting",
            name=f"zt-rollout-{cfg.site}-kitting",
            document_type="Command",
            document_format="YAML",
            content=table.name.apply(lambda t: render_kitting_document(cfg, checkin_table_name=t)),
            tags=tags,
            opts=child,
        )
        rollback = ssm.Document(
            f"{name}-rollback",
            name=f"zt-rollout-{cfg.site}-rollback",
            document_type="Command",
            document_format="YAML",
            content=table.name.apply(lambda t: render_rollback_document(cfg, checkin_table_name=t)),
            tags=tags,
            opts=child,
        )
        device_role = self._device_role(name, cfg, table, tags, child)
        kitting_alarm = self._alarm(name, cfg, "kitting-failures", KITTING_FAILURE_METRIC,
                                    cfg.kitting_failure_threshold, tags, child)
        sign_in_alarm = self._alarm(name, cfg, "sign-in-failures", SIGN_IN_FAILURE_METRIC,
                                    cfg.sign_in_failure_threshold, tags, access)
        cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"zt-rollout-{cfg.site}",
            dashboard_body=pulumi.Output.all(kitting_alarm.arn, sign_in_alarm.arn).apply(
                lambda arns: json.dumps(_dashboard_body(cfg, list(arns)))
            ),
            opts=child,
        )

        self.device_trust_provider_id = provider.id
        self.kitting_document_name = kitting.name
        self.rollback_document_name = rollback.name
        self.checkin_table_name = table.name
        self.kitting_failure_alarm_name = kitting_alarm.name
        self.sign_in_failure_alarm_name = sign_in_alarm.name
        self.device_role_name = device_role.name
        self.register_outputs(
            {
                "device_trust_provider_id": self.device_trust_provider_id,
                "kitting_document_name": self.kitting_document_name,
                "rollback_document_name": self.rollback_document_name,
                "checkin_table_name": self.checkin_table_name,
                "kitting_failure_alarm_name": self.kitting_failure_alarm_name,
                "sign_in_failure_alarm_name": self.sign_in_failure_alarm_name,
                "device_role_name": self.device_role_name,
            }
        )

    @staticmethod
    def _checkin_table(name: str, cfg: SiteConfig, tags: dict[str, str],
                       opts: pulumi.ResourceOptions) -> dynamodb.Table:
        """Keys (rollout/wave, device), TTL, point-in-time recovery: the guardrails check all three."""
        return dynamodb.Table(
            f"{name}-checkins",
            name=f"zt-rollout-{cfg.site}-checkins",
            billing_mode="PAY_PER_REQUEST",
            hash_key=CHECKIN_PARTITION_KEY,
            range_key=CHECKIN_SORT_KEY,
            attributes=[
                dynamodb.TableAttributeArgs(name=CHECKIN_PARTITION_KEY, type="S"),
                dynamodb.TableAttributeArgs(name=CHECKIN_SORT_KEY, type="S"),
            ],
            ttl=dynamodb.TableTtlArgs(attribute_name=CHECKIN_TTL_ATTRIBUTE, enabled=True),
            point_in_time_recovery=dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=dynamodb.TableServerSideEncryptionArgs(enabled=True),
            tags=tags,
            opts=opts,
        )

    def _device_role(self, name: str, cfg: SiteConfig, table: dynamodb.Table, tags: dict[str, str],
                     opts: pulumi.ResourceOptions) -> iam.Role:
        """Role for the site's hybrid activations (``ssm.amazonaws.com``): check-ins, metrics, installers."""
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = pulumi_aws.get_caller_identity_output(opts=invoke).account_id
        partition = pulumi_aws.get_partition_output(opts=invoke).partition
        role = iam.Role(
            f"{name}-device-role",
            name=f"zt-rollout-{cfg.site}-device",
            description=f"Managed nodes (devices) of {cfg.site}: Systems Manager plus zt-rollout check-ins",
            assume_role_policy=pulumi.Output.all(partition, account).apply(
                lambda values: json.dumps(_device_trust_policy(cfg, str(values[0]), str(values[1])))),
            tags=tags,
            opts=opts,
        )
        iam.RolePolicyAttachment(
            f"{name}-device-ssm-core",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
            opts=opts,
        )
        iam.RolePolicy(
            f"{name}-device-policy",
            name="zt-rollout-device",
            role=role.id,
            policy=pulumi.Output.all(table.arn, partition, account).apply(
                lambda values: json.dumps(_device_policy(cfg, *(str(v) for v in values)))),
            opts=opts,
        )
        return role

    @staticmethod
    def _alarm(name: str, cfg: SiteConfig, what: str, metric: str, threshold: int,
               tags: dict[str, str], opts: pulumi.ResourceOptions) -> cloudwatch.MetricAlarm:
        """Alarm when ``metric`` sums to ``threshold`` or more within 15 minutes; no data is not a breach."""
        actions = [cfg.alarm_topic_arn] if cfg.alarm_topic_arn else []
        return cloudwatch.MetricAlarm(
            f"{name}-{what}",
            name=f"zt-rollout-{cfg.site}-{what}",
            alarm_description=f"{what.replace('-', ' ').capitalize()} at {cfg.site}: read by the rollout gates.",
            namespace=metric_namespace(cfg.site),
            metric_name=metric,
            statistic="Sum",
            period=ALARM_PERIOD_SECONDS,
            evaluation_periods=1,
            threshold=float(threshold),
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
            tags=tags,
            opts=opts,
        )


def _device_trust_policy(cfg: SiteConfig, partition: str, account: str) -> dict[str, Any]:
    """Systems Manager may assume the role for this account's hybrid activations in the site's region only:
    the confused-deputy conditions of the Systems Manager User Guide's hybrid service role."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "ssm.amazonaws.com"}, "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account},
                          "ArnEquals": {"aws:SourceArn": f"arn:{partition}:ssm:{cfg.region}:{account}:*"}},
        }],
    }


def _device_policy(cfg: SiteConfig, table_arn: str, partition: str, account: str) -> dict[str, Any]:
    """Devices may put check-ins, publish the site's failure metrics, read installers and their tokens
    (this account's parameters of this site only)."""
    region = cfg.region
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "WriteCheckIns", "Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": [table_arn]},
            {"Sid": "PublishFailureMetrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"],
             "Resource": ["*"],
             "Condition": {"StringEquals": {"cloudwatch:namespace": metric_namespace(cfg.site)}}},
            {"Sid": "FetchAgentInstallers", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [f"arn:{partition}:s3:::{cfg.agent_bucket}/*"]},
            {"Sid": "ReadEnrollmentTokens", "Effect": "Allow", "Action": ["ssm:GetParameter"],
             "Resource": [f"arn:{partition}:ssm:{region}:{account}:parameter/zt-rollout/{cfg.site}/*-enrollment-token"]},
        ],
    }


def _dashboard_body(cfg: SiteConfig, alarm_arns: list[str]) -> dict[str, Any]:
    """Two widgets: the site's failure metrics over time (each read in its own region), and its alarms' state."""
    namespace = metric_namespace(cfg.site)
    metrics = [[namespace, m, {"region": cfg.region}] for m in (KITTING_FAILURE_METRIC, ROLLBACK_FAILURE_METRIC)]
    metrics.append([namespace, SIGN_IN_FAILURE_METRIC, {"region": cfg.verified_access_region}])  # from the access logs
    return {
        "widgets": [
            {"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6,
             "properties": {"title": f"{cfg.site}: rollout failures", "region": cfg.region, "stat": "Sum",
                            "period": ALARM_PERIOD_SECONDS, "metrics": metrics}},
            {"type": "alarm", "x": 12, "y": 0, "width": 12, "height": 6,
             "properties": {"title": f"{cfg.site}: rollout alarms", "alarms": alarm_arns}},
        ]
    }
