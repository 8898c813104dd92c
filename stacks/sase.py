"""SASE: the Verified Access instance, the site's group and policy, its private apps, and DNS Firewall.

- One Verified Access instance with the site's user and device trust providers attached, access
  logs (OCSF 1.0.0-rc.2, trust context included) to a CloudWatch log group; denied requests become
  the site's ``SignInFailures`` metric.
- One Verified Access group whose Cedar policy (``templates/cedar/``) admits only members of the
  site's migrated group on a device that meets the site's posture threshold.
- One Verified Access endpoint per private application in config, behind a security group of the
  endpoints' VPC (none without private apps).
- Route 53 Resolver DNS Firewall on the site's VPC: the local-breakout allow list (e.g. Microsoft 365
  domains, for a site that keeps its closed network) is answered first; the block list is refused.
  The endpoints' VPC gets the same rules when it is another VPC.

Everything of Verified Access is created in its region (``SiteConfig.verified_access_region``, IAM
Identity Center's home region) through ``access_provider`` when that is not the stack's region; the
site's DNS Firewall stays in the stack's region.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_aws import cloudwatch, ec2, route53, verifiedaccess

from .config import PrivateApp, SiteConfig
from .documents import SIGN_IN_FAILURE_METRIC, metric_namespace, render_group_policy
from .tags import site_tags

#: Verified Access OCSF 1.0.0-rc.2 access logs put the policy decision at actor.authorizations[0].decision.
DENIED_ACCESS_PATTERN = '{ $.actor.authorizations[0].decision = "Deny" }'
ALLOW_PRIORITY = 100
BLOCK_PRIORITY = 200
ASSOCIATION_PRIORITY = 101


@dataclass(frozen=True, slots=True)
class SaseArgs:
    config: SiteConfig
    migrated_group_id: pulumi.Input[str]
    user_trust_provider_id: pulumi.Input[str]
    device_trust_provider_id: pulumi.Input[str]
    access_provider: pulumi.ProviderResource | None = None  # Verified Access's region, when not the stack's


class SaseComponent(pulumi.ComponentResource):
    """Verified Access instance, group, endpoints and logging; DNS Firewall on the site's VPC."""

    verified_access_instance_id: pulumi.Output[str]
    verified_access_group_id: pulumi.Output[str]
    firewall_rule_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: SaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zt-rollout:site:Sase", name, None, opts)
        cfg = args.config
        site_region = pulumi.ResourceOptions(parent=self)
        child = pulumi.ResourceOptions(parent=self, provider=args.access_provider)  # Verified Access's region
        tags = site_tags(cfg.site, cfg.site_kind.value)

        instance = verifiedaccess.Instance(
            f"{name}-instance", description=f"zt-rollout {cfg.site}", tags=tags, opts=child
        )
        attachments = [
            verifiedaccess.InstanceTrustProviderAttachment(
                f"{name}-{kind}-provider",
                verifiedaccess_instance_id=instance.id,
                verifiedaccess_trust_provider_id=provider_id,
                opts=child,
            )
            for kind, provider_id in (("user", args.user_trust_provider_id),
                                      ("device", args.device_trust_provider_id))
        ]
        self._logging(name, cfg, instance, tags, child)
        group = verifiedaccess.Group(
            f"{name}-group",
            verifiedaccess_instance_id=instance.id,
            description=f"Private applications of {cfg.site}",
            policy_document=pulumi.Output.from_input(args.migrated_group_id).apply(
                lambda group_id: render_group_policy(cfg, migrated_group_id=group_id)
            ),
            tags=tags,
            # The policy names the attached providers' reference names: attach them first.
            opts=pulumi.ResourceOptions(parent=self, provider=args.access_provider, depends_on=attachments),
        )
        if cfg.private_apps:
            security_group = ec2.SecurityGroup(
                f"{name}-endpoints",
                vpc_id=cfg.endpoint_vpc,
                description=f"Verified Access endpoints of {cfg.site}",
                ingress=[ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=443, to_port=443,
                                                      cidr_blocks=["0.0.0.0/0"],
                                                      description="HTTPS; Verified Access has checked every request")],
                egress=[ec2.SecurityGroupEgressArgs(protocol="tcp", from_port=app.port, to_port=app.port,
                                                    cidr_blocks=["0.0.0.0/0"], description=f"to {app.name}")
                        for app in cfg.private_apps],
                tags=tags,
                opts=child,
            )
            for app in cfg.private_apps:
                self._endpoint(name, cfg, app, group, security_group, tags, child)
        rule_group = self._dns_firewall(name, f"zt-rollout-{cfg.site}", cfg, cfg.vpc_id, tags, site_region)
        if cfg.private_apps and cfg.endpoint_vpc != cfg.vpc_id:
            self._dns_firewall(f"{name}-endpoints", f"zt-rollout-{cfg.site}-endpoints", cfg, cfg.endpoint_vpc, tags,
                               child)

        self.verified_access_instance_id = instance.id
        self.verified_access_group_id = group.verifiedaccess_group_id
        self.firewall_rule_group_id = rule_group.id
        self.register_outputs(
            {
                "verified_access_instance_id": self.verified_access_instance_id,
                "verified_access_group_id": self.verified_access_group_id,
                "firewall_rule_group_id": self.firewall_rule_group_id,
            }
        )

    @staticmethod
    def _logging(name: str, cfg: SiteConfig, instance: verifiedaccess.Instance, tags: dict[str, str],
                 opts: pulumi.ResourceOptions) -> None:
        """Access logs to CloudWatch Logs, and a metric filter that counts denied requests."""
        log_group = cloudwatch.LogGroup(
            f"{name}-access-logs", name=f"/zt-rollout/{cfg.site}/verified-access",
            retention_in_days=365, tags=tags, opts=opts,
        )
        verifiedaccess.InstanceLoggingConfiguration(
            f"{name}-logging",
            verifiedaccess_instance_id=instance.id,
            access_logs=verifiedaccess.InstanceLoggingConfigurationAccessLogsArgs(
                cloudwatch_logs=verifiedaccess.InstanceLoggingConfigurationAccessLogsCloudwatchLogsArgs(
                    enabled=True, log_group=log_group.name),
                include_trust_context=True,
                log_version="ocsf-1.0.0-rc.2",
            ),
            opts=opts,
        )
        cloudwatch.LogMetricFilter(
            f"{name}-denied-access",
            name=f"zt-rollout-{cfg.site}-denied-access",
            log_group_name=log_group.name,
            pattern=DENIED_ACCESS_PATTERN,
            metric_transformation=cloudwatch.LogMetricFilterMetricTransformationArgs(
                name=SIGN_IN_FAILURE_METRIC, namespace=metric_namespace(cfg.site), value="1", default_value="0"),
            opts=opts,
        )

    @staticmethod
    def _endpoint(name: str, cfg: SiteConfig, app: PrivateApp, group: verifiedaccess.Group,
                  security_group: ec2.SecurityGroup, tags: dict[str, str], opts: pulumi.ResourceOptions) -> None:
        """Publish one private application through the site's group, via its internal load balancer."""
        verifiedaccess.Endpoint(
            f"{name}-app-{app.name}",
            verified_access_group_id=group.verifiedaccess_group_id,
            attachment_type="vpc",
            endpoint_type="load-balancer",
            application_domain=app.domain,
            domain_certificate_arn=app.certificate_arn,
            endpoint_domain_prefix=app.name,
            security_group_ids=[security_group.id],
            load_balancer_options=verifiedaccess.EndpointLoadBalancerOptionsArgs(
                load_balancer_arn=app.load_balancer_arn, port=app.port, protocol="https",
                subnet_ids=list(cfg.subnet_ids)),
            description=f"{app.name} at {cfg.site}",
            tags={**tags, "zt-rollout:app": app.name},
            opts=opts,
        )

    @staticmethod
    def _dns_firewall(name: str, physical: str, cfg: SiteConfig, vpc_id: str, tags: dict[str, str],
                      opts: pulumi.ResourceOptions) -> route53.ResolverFirewallRuleGroup:
        """Rule group with ALLOW (breakout) before BLOCK (block list), associated with ``vpc_id``, in the
        region of ``opts``' provider (a rule group serves VPCs of its own region only)."""
        rule_group = route53.ResolverFirewallRuleGroup(
            f"{name}-dns-firewall", name=physical, tags=tags, opts=opts)
        lists = (("local-breakout", cfg.local_breakout_domains, "ALLOW", ALLOW_PRIORITY),
                 ("blocked", cfg.dns_block_domains, "BLOCK", BLOCK_PRIORITY))
        for label, domains, action, priority in lists:
            if not domains:
                continue
            domain_list = route53.ResolverFirewallDomainList(
                f"{name}-{label}", name=f"{physical}-{label}", domains=list(domains),
                tags=tags, opts=opts)
            route53.ResolverFirewallRule(
                f"{name}-{label}-rule",
                name=f"{physical}-{label}",
                firewall_rule_group_id=rule_group.id,
                firewall_domain_list_id=domain_list.id,
                action=action,
                block_response="NXDOMAIN" if action == "BLOCK" else None,
                priority=priority,
                opts=opts,
            )
        route53.ResolverFirewallRuleGroupAssociation(
            f"{name}-dns-firewall-vpc",
            name=physical,
            firewall_rule_group_id=rule_group.id,
            vpc_id=vpc_id,
            priority=ASSOCIATION_PRIORITY,
            mutation_protection="ENABLED",
            tags=tags,
            opts=opts,
        )
        return rule_group
