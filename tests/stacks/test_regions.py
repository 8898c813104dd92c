"""Regions, by CloudFormation's own registry as cfn-lint ships it (``cfnlint/data/schemas/providers/<region>.json``:
one file per region, whose keys are the resource types that region's registry has).

- ``stacks/regions.py`` (the table the stacks validate config with) equals that registry for every
  region the stacks may use, service by service;
- every resource each example stack creates has its CloudFormation type in the registry of the region
  it is created in (the stack's region, or the region of its explicit provider);
- the IAM Identity Center trust provider, and all of Verified Access with it, is in Identity Center's
  home region ("Your IAM Identity Center instance must be enabled in the same AWS Region that you want
  to create the Verified Access trust provider in": AWS Verified Access User Guide, "Using IAM
  Identity Center as a trust provider");
- a site config whose Verified Access region lacks Verified Access is refused, naming the regions that
  have it.

cfn-lint is a dev dependency: a release whose registry changes makes the first test name the region
and service to update in ``stacks/regions.py``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import pytest

from stacks.config import SiteConfigError, load_site_config
from stacks.regions import SERVICE_REGIONS, SERVICE_TYPES, STACK_REGIONS, VERIFIED_ACCESS

from .conftest import ProgramRun, Recorded, run_program, stack_config

#: The CloudFormation type each Pulumi resource of the program stands for (a Pulumi resource that
#: CloudFormation models as a property of another resource maps to that resource's type).
CFN_TYPE = {
    "aws:verifiedaccess/instance:Instance": "AWS::EC2::VerifiedAccessInstance",
    "aws:verifiedaccess/instanceTrustProviderAttachment:InstanceTrustProviderAttachment":
        "AWS::EC2::VerifiedAccessInstance",  # its VerifiedAccessTrustProviderIds
    "aws:verifiedaccess/instanceLoggingConfiguration:InstanceLoggingConfiguration":
        "AWS::EC2::VerifiedAccessInstance",  # its LoggingConfigurations
    "aws:verifiedaccess/trustProvider:TrustProvider": "AWS::EC2::VerifiedAccessTrustProvider",
    "aws:verifiedaccess/group:Group": "AWS::EC2::VerifiedAccessGroup",
    "aws:verifiedaccess/endpoint:Endpoint": "AWS::EC2::VerifiedAccessEndpoint",
    "aws:identitystore/group:Group": "AWS::IdentityStore::Group",
    "aws:ssm/document:Document": "AWS::SSM::Document",
    "aws:ssm/parameter:Parameter": "AWS::SSM::Parameter",
    "aws:dynamodb/table:Table": "AWS::DynamoDB::Table",
    "aws:iam/role:Role": "AWS::IAM::Role",
    "aws:iam/rolePolicy:RolePolicy": "AWS::IAM::RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "AWS::IAM::Role",  # its ManagedPolicyArns
    "aws:iam/policy:Policy": "AWS::IAM::ManagedPolicy",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "AWS::CloudWatch::Alarm",
    "aws:cloudwatch/dashboard:Dashboard": "AWS::CloudWatch::Dashboard",
    "aws:cloudwatch/logGroup:LogGroup": "AWS::Logs::LogGroup",
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": "AWS::Logs::MetricFilter",
    "aws:ec2/securityGroup:SecurityGroup": "AWS::EC2::SecurityGroup",
    "aws:route53/resolverFirewallRuleGroup:ResolverFirewallRuleGroup": "AWS::Route53Resolver::FirewallRuleGroup",
    "aws:route53/resolverFirewallRule:ResolverFirewallRule": "AWS::Route53Resolver::FirewallRuleGroup",  # FirewallRules
    "aws:route53/resolverFirewallDomainList:ResolverFirewallDomainList": "AWS::Route53Resolver::FirewallDomainList",
    "aws:route53/resolverFirewallRuleGroupAssociation:ResolverFirewallRuleGroupAssociation":
        "AWS::Route53Resolver::FirewallRuleGroupAssociation",
}


@cache
def registry() -> dict[str, frozenset[str]]:
    """region -> the resource types of its CloudFormation registry, as cfn-lint ships them."""
    folder = resources.files("cfnlint").joinpath("data/schemas/providers")
    return {entry.name.removesuffix(".json"): frozenset(json.loads(entry.read_text(encoding="utf-8")))
            for entry in folder.iterdir() if entry.name.endswith(".json") and entry.name != "sam.json"}


def test_the_capability_table_is_cloudformations_registry_for_every_region_the_stacks_may_use() -> None:
    assert STACK_REGIONS <= set(registry()), sorted(STACK_REGIONS - set(registry()))
    differences = []
    for service, types in SERVICE_TYPES.items():
        for region in sorted(STACK_REGIONS):
            has = all(t in registry()[region] for t in types)
            if has != (region in SERVICE_REGIONS[service]):
                differences.append(f"{service} in {region}: CloudFormation {'has' if has else 'lacks'} it")
    assert differences == [], "update stacks/regions.py: " + "; ".join(differences)
    assert "ap-northeast-3" not in SERVICE_REGIONS[VERIFIED_ACCESS] and "ap-northeast-1" in SERVICE_REGIONS[VERIFIED_ACCESS]


def region_of(run: ProgramRun, resource: Recorded, stack_region: str) -> str:
    if not resource.provider:
        return stack_region
    providers = {f"::{p.name}::": str(p.inputs["region"]) for p in run.of_type("pulumi:providers:aws")}
    (region,) = [region for marker, region in providers.items() if marker in resource.provider]
    return region


def placed(run: ProgramRun, stack_region: str) -> list[tuple[Recorded, str]]:
    return [(r, region_of(run, r, stack_region)) for r in run.resources
            if not r.type.startswith(("zt-rollout:", "pulumi:providers:"))]


def test_every_resource_exists_in_the_registry_of_the_region_it_is_created_in(site_run: tuple[str, ProgramRun]) -> None:
    site, run = site_run
    unmapped = sorted({r.type for r, _ in placed(run, run.outputs["region"]) if r.type not in CFN_TYPE})
    assert unmapped == [], f"map these to their CloudFormation types: {unmapped}"
    missing = [f"{r.name} ({CFN_TYPE[r.type]}) in {region}" for r, region in placed(run, run.outputs["region"])
               if CFN_TYPE[r.type] not in registry()[region]]
    assert missing == []


def test_identity_center_trust_provider_and_all_of_verified_access_are_in_identity_centers_region(
        site_run: tuple[str, ProgramRun]) -> None:
    site, run = site_run
    home = run.outputs["identity_store_region"]
    regions = {(r.type, r.name): region for r, region in placed(run, run.outputs["region"])}
    (user,) = [r for r in run.of_type("aws:verifiedaccess/trustProvider:TrustProvider")
               if r.inputs["trustProviderType"] == "user"]
    assert user.inputs["userTrustProviderType"] == "iam-identity-center"
    assert regions[(user.type, user.name)] == home
    verified_access = {key: region for key, region in regions.items() if key[0].startswith("aws:verifiedaccess/")}
    assert set(verified_access.values()) == {home}
    alarm = next(r for r in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
                 if r.inputs["name"].endswith("sign-in-failures"))
    log_filter = run.one("aws:cloudwatch/logMetricFilter:LogMetricFilter")
    assert regions[(alarm.type, alarm.name)] == regions[(log_filter.type, log_filter.name)] == home, \
        "the sign-in alarm watches the metric of Verified Access's logs, in Verified Access's region"


def test_osaka_keeps_its_site_in_osaka_and_its_verified_access_in_tokyo() -> None:
    run = run_program("osaka", stack_config("osaka"))
    regions = {r.type: region for r, region in placed(run, "ap-northeast-3")}
    assert regions["aws:ssm/document:Document"] == regions["aws:dynamodb/table:Table"] == "ap-northeast-3"
    assert regions["aws:verifiedaccess/instance:Instance"] == "ap-northeast-1"
    associations = {r.inputs["vpcId"]: region for r, region in placed(run, "ap-northeast-3")
                    if r.type.endswith("ResolverFirewallRuleGroupAssociation")}
    assert associations == {"vpc-0a11c0ffee0000002": "ap-northeast-3", "vpc-0a11c0ffee0000004": "ap-northeast-1"}


@pytest.mark.parametrize(("changes", "expected"), [
    ({"zt-rollout:identityCenterRegion": None, "zt-rollout:endpointVpcId": None},
     "aws:region: Verified Access is not available in ap-northeast-3 (taken for IAM Identity Center's home region "
     "because zt-rollout:identityCenterRegion is not set)"),
    ({"zt-rollout:identityCenterRegion": "eu-west-3"},
     "zt-rollout:identityCenterRegion: Verified Access is not available in eu-west-3 (IAM Identity Center's home region)"),
    ({"aws:region": "xx-east-9"}, "aws:region: xx-east-9 is not a region these stacks support"),
    ({"zt-rollout:endpointVpcId": None}, "zt-rollout:endpointVpcId: required: the Verified Access endpoints are in "
                                         "ap-northeast-1, not in the site's VPC vpc-0a11c0ffee0000002 in ap-northeast-3"),
])
def test_a_site_whose_verified_access_region_cannot_have_it_is_refused(changes: dict[str, str | None],
                                                                          expected: str) -> None:
    config = stack_config("osaka")
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    with pytest.raises(SiteConfigError) as refused:
        load_site_config(config.get, stack="osaka")
    message = str(refused.value)
    assert expected in message
    if "not available" in expected:
        assert "Regions that have Verified Access: ap-northeast-1, ap-northeast-2, " in message


def test_a_private_app_outside_verified_access_region_is_refused() -> None:
    config = stack_config("tokyo")
    config["zt-rollout:privateApps"] = config["zt-rollout:privateApps"].replace(
        "elasticloadbalancing:ap-northeast-1", "elasticloadbalancing:ap-northeast-3", 1)
    with pytest.raises(SiteConfigError, match=r"privateApps\[0\]\.loadBalancerArn: in ap-northeast-3, but the site's "
                                              "Verified Access is in ap-northeast-1"):
        load_site_config(config.get, stack="tokyo")
