"""Create, in the local AWS emulation, what each site's stack would create, and publish its contract.

Per site: the pilot and migrated groups in the (one, organisation-wide) identity store, the kitting
and rollback documents rendered by the stack's own code (``stacks.documents``), the check-in table,
the two alarms, the orchestrator role with the least-privilege policy from ``rollout.core.permissions``,
and the contract as the SSM parameter ``/zt-rollout/<site>/contract``. The directory's users (which
IAM Identity Center would sync from the company's IdP) are seeded straight into moto.
Osaka lives in ap-northeast-3, like the real disaster-recovery data centre, with its Verified Access and
sign-in alarm in IAM Identity Center's region, Tokyo; the rest in Tokyo.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import boto3

from rollout.core.contract import (
    CHECKIN_PARTITION_KEY,
    CHECKIN_SORT_KEY,
    DEVICE_SITE_TAG_KEY,
    SCHEMA_VERSION,
    SiteContract,
    contract_parameter_name,
    contract_to_json,
)
from rollout.core.device import Device
from rollout.core.permissions import SiteResources, orchestrator_policy

ACCOUNT = "123456789012"  # moto's account
IDENTITY_STORE = "d-0a11c0ffee"
HOME_REGION = "ap-northeast-1"
SITE_REGIONS = {"osaka": "ap-northeast-3"}
CONTRACTS_SOURCE = f"ssm:{HOME_REGION},{SITE_REGIONS['osaka']}"


def site_region(site: str) -> str:
    return SITE_REGIONS.get(site, HOME_REGION)


def seed_users(users: Iterable[str]) -> int:
    """Users of the identity store, as SCIM would have synced them: straight into moto when it runs
    in this process, else through the API (CreateUser)."""
    from rollout.awslocal.server import serving_here

    if not serving_here():
        return _create_users_by_api(sorted(set(users)))
    from moto.identitystore.models import identitystore_backends

    backend = identitystore_backends[ACCOUNT][HOME_REGION]
    existing = {u.UserName for u in backend.identity_stores.get(IDENTITY_STORE, _NoStore()).users.values()}
    created = 0
    for user in sorted(set(users) - existing):
        given, _, family = user.split("@")[0].partition(".")
        backend.create_user(IDENTITY_STORE, user, {"GivenName": given, "FamilyName": family or given},
                            f"{given} {family}", "", "", [{"Value": user, "Type": "work", "Primary": True}], [], [],
                            "", "", "", "", "")
        created += 1
    return created


def _create_users_by_api(users: list[str]) -> int:
    idc = boto3.session.Session().client("identitystore", region_name=HOME_REGION)
    for user in users:
        given, _, family = user.split("@")[0].partition(".")
        idc.create_user(IdentityStoreId=IDENTITY_STORE, UserName=user, DisplayName=f"{given} {family}",
                        Name={"GivenName": given, "FamilyName": family or given},
                        Emails=[{"Value": user, "Type": "work", "Primary": True}])
    return len(users)


class _NoStore:
    users: dict[str, Any] = {}


def provision(devices: Sequence[Device]) -> dict[str, SiteContract]:
    """Everything of every site of ``devices``; returns the contracts it published."""
    seed_users(d.user for d in devices)
    idc = boto3.session.Session().client("identitystore", region_name=HOME_REGION)
    return {site: _provision_site(site, idc) for site in sorted({d.site for d in devices})}


def _provision_site(site: str, idc: Any) -> SiteContract:
    from stacks.config import SiteConfig
    from stacks.documents import render_kitting_document, render_rollback_document

    region = site_region(site)
    session = boto3.session.Session()
    ssm, ddb = session.client("ssm", region_name=region), session.client("dynamodb", region_name=region)
    groups = {kind: idc.create_group(IdentityStoreId=IDENTITY_STORE, DisplayName=f"zt-rollout-{site}-{kind}",
                                     Description=f"zt-rollout {kind} users of {site}")["GroupId"]
              for kind in ("pilot", "migrated")}
    table = f"zt-rollout-{site}-checkins"
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": CHECKIN_PARTITION_KEY, "KeyType": "HASH"},
                                {"AttributeName": CHECKIN_SORT_KEY, "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": CHECKIN_PARTITION_KEY, "AttributeType": "S"},
                                           {"AttributeName": CHECKIN_SORT_KEY, "AttributeType": "S"}])
    config = SiteConfig.model_validate({
        "site": site, "region": region, "siteKind": "head-office" if site == "tokyo" else "branch",
        "identityStoreId": IDENTITY_STORE, "identityCenterRegion": HOME_REGION, "vpcId": "vpc-0a11c0ffee0000001", "subnetIds": ["subnet-0a11c0ffee000001"],
        "legacyProxy": f"proxy.{site}.corp.example.jp:8080", "legacyVpnServer": f"vpn.{site}.corp.example.jp",
        "agentBucket": f"zt-rollout-agents-{ACCOUNT}", "browserExtensionId": "aaaabbbbccccddddeeeeffffgggghhhh"})
    for kind, render in (("kitting", render_kitting_document), ("rollback", render_rollback_document)):
        ssm.create_document(Name=f"zt-rollout-{site}-{kind}", DocumentType="Command", DocumentFormat="YAML",
                            Content=render(config, checkin_table_name=table))
    # The sign-in alarm watches Verified Access's logs, in IAM Identity Center's region like Verified Access.
    alarms = [_alarm(session, site, region, "kitting-failures"), _alarm(session, site, HOME_REGION, "sign-in-failures")]
    contract = SiteContract(
        schema_version=SCHEMA_VERSION, site=site, region=region, identity_store_id=IDENTITY_STORE,
        identity_store_region=HOME_REGION,
        pilot_group_id=groups["pilot"], migrated_group_id=groups["migrated"],
        kitting_document_name=f"zt-rollout-{site}-kitting", rollback_document_name=f"zt-rollout-{site}-rollback",
        checkin_table_name=table, kitting_failure_alarm_name=alarms[0], sign_in_failure_alarm_name=alarms[1],
        verified_access_group_id=f"vagr-0a11c0ffee{zlib.crc32(site.encode()) % 10**7:07d}",
        orchestrator_role_arn=_role(session, site, region, groups, table, alarms),
        contract_parameter_name=contract_parameter_name(site), device_tag_key=DEVICE_SITE_TAG_KEY)
    ssm.put_parameter(Name=contract.contract_parameter_name, Type="String", Value=contract_to_json(contract),
                      Overwrite=True)
    return contract


def _alarm(session: boto3.session.Session, site: str, region: str, what: str) -> str:
    name = f"zt-rollout-{site}-{what}"
    session.client("cloudwatch", region_name=region).put_metric_alarm(
        AlarmName=name, Namespace=f"ZtRollout/{site}", MetricName="KittingFailures" if what.startswith("kitting")
        else "SignInFailures", Statistic="Sum", Period=900, EvaluationPeriods=1, Threshold=3.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")
    return name


def _role(session: boto3.session.Session, site: str, region: str, groups: dict[str, str], table: str,
          alarms: list[str]) -> str:
    iam = session.client("iam", region_name=HOME_REGION)
    name = f"zt-rollout-{site}-orchestrator"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
    arn = str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=3600)
              ["Role"]["Arn"])
    resources = SiteResources("aws", region, ACCOUNT, site, IDENTITY_STORE, groups["pilot"], groups["migrated"],
                              f"zt-rollout-{site}-kitting", f"zt-rollout-{site}-rollback", table, tuple(alarms),
                              contract_parameter_name(site), verified_access_region=HOME_REGION)
    iam.put_role_policy(RoleName=name, PolicyName="zt-rollout-orchestrator",
                        PolicyDocument=json.dumps(orchestrator_policy(resources)))
    return arn
