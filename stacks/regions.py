"""Which regions offer the services a site's stack uses: pure data, checked against CloudFormation's registry.

A site's resources live in two regions (see ``stacks/README.md``, "Regions"):

- the site's region (``aws:region``): documents, check-in table, kitting alarm, roles' regional
  names, the contract parameter, and Route 53 Resolver DNS Firewall on the site's VPC;
- Verified Access's region, which is IAM Identity Center's home region: the IAM Identity Center
  trust provider must be created where Identity Center is enabled (AWS Verified Access User Guide,
  "Using IAM Identity Center as a trust provider"), a Verified Access instance attaches trust
  providers of its own region only, and its endpoints, access logs and the sign-in alarm on those
  logs follow it. The identity store groups are there too.

:data:`SERVICE_REGIONS` lists, for each service, the regions of :data:`STACK_REGIONS` whose
CloudFormation registry has every resource type of :data:`SERVICE_TYPES`. It is written out here,
so the stacks need nothing at run time; ``tests/stacks/test_regions.py`` proves it equal to the
registry cfn-lint ships (``cfnlint/data/schemas/providers/<region>.json``), so a cfn-lint release
that adds a region to a service fails that test until this table says so too.
"""

from __future__ import annotations

from typing import Final

VERIFIED_ACCESS: Final = "Verified Access"
DNS_FIREWALL: Final = "Route 53 Resolver DNS Firewall"
IDENTITY_CENTER: Final = "IAM Identity Center"

#: The CloudFormation resource types that stand for each service the stacks use.
SERVICE_TYPES: Final[dict[str, tuple[str, ...]]] = {
    VERIFIED_ACCESS: ("AWS::EC2::VerifiedAccessInstance", "AWS::EC2::VerifiedAccessTrustProvider",
                      "AWS::EC2::VerifiedAccessGroup", "AWS::EC2::VerifiedAccessEndpoint"),
    DNS_FIREWALL: ("AWS::Route53Resolver::FirewallRuleGroup", "AWS::Route53Resolver::FirewallRuleGroupAssociation",
                   "AWS::Route53Resolver::FirewallDomainList"),
    IDENTITY_CENTER: ("AWS::IdentityStore::Group",),
}

#: The regions a stack may use: the commercial ``aws`` partition (the stacks write ``arn:aws:`` ARNs).
STACK_REGIONS: Final[frozenset[str]] = frozenset({
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
    "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1",
    "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1",
    "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
})

SERVICE_REGIONS: Final[dict[str, frozenset[str]]] = {
    VERIFIED_ACCESS: frozenset({
        "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
        "ca-central-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-west-1", "eu-west-2", "il-central-1",
        "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
    }),
    DNS_FIREWALL: STACK_REGIONS,
    IDENTITY_CENTER: STACK_REGIONS,
}


def offers(region: str, service: str) -> bool:
    return region in SERVICE_REGIONS[service]


def regions_with(service: str) -> str:
    """The regions that offer ``service``, sorted and comma-separated, for messages."""
    return ", ".join(sorted(SERVICE_REGIONS[service]))


def region_of_arn(arn: str) -> str:
    """The region field of an ARN (``arn:aws:acm:ap-northeast-1:...`` -> ``ap-northeast-1``)."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""
