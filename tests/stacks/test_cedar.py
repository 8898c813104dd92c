"""The rendered Verified Access policy, evaluated by the real Cedar engine (cedarpy)."""

from __future__ import annotations

from typing import Any

import cedarpy
import pytest

from stacks.documents import render_group_policy

from .builders import make_site_config

MIGRATED = "90676a0e-5ca1-4e2b-9d3c-0123456789ab"
OTHER = "90676a0e-5ca1-4e2b-9d3c-ba9876543210"


def decide(policy: str, context: dict[str, Any]) -> cedarpy.Decision:
    request = {"principal": 'User::"hanako"', "action": 'Action::"access"', "resource": 'App::"keiri"',
               "context": context}
    result = cedarpy.is_authorized(request, policy, [])
    assert not result.diagnostics.errors, result.diagnostics.errors
    return result.decision


def idc(*groups: str, verified: bool | None = True) -> dict[str, Any]:
    """IAM Identity Center trust data as the Verified Access guide documents it (verified=None: no email)."""
    user: dict[str, Any] = {"user_id": "u-1", "user_name": "hanako"}
    if verified is not None:
        user["email"] = {"address": "hanako@example.co.jp", "verified": verified}
    return {"groups": {g: {"group_name": "x"} for g in groups}, "user": user}


CROWDSTRIKE = render_group_policy(make_site_config(minPostureScore=60), migrated_group_id=MIGRATED)


@pytest.mark.parametrize(
    ("context", "allowed"),
    [
        ({"idc": idc(MIGRATED), "crowdstrike": {"assessment": {"overall": 75}}}, True),
        ({"idc": idc(MIGRATED, OTHER), "crowdstrike": {"assessment": {"overall": 60}}}, True),
        ({"idc": idc(OTHER), "crowdstrike": {"assessment": {"overall": 95}}}, False),
        ({"idc": idc(MIGRATED), "crowdstrike": {"assessment": {"overall": 59}}}, False),
        ({"idc": idc(MIGRATED)}, False),
        ({"idc": idc(MIGRATED), "crowdstrike": {}}, False),
        ({"crowdstrike": {"assessment": {"overall": 99}}}, False),
        ({}, False),
        ({"idc": idc(MIGRATED, verified=False), "crowdstrike": {"assessment": {"overall": 90}}}, False),
        ({"idc": idc(MIGRATED, verified=None), "crowdstrike": {"assessment": {"overall": 90}}}, False),
    ],
    ids=["member-good-posture", "member-at-threshold", "non-member", "member-failing-posture",
         "no-device-provider", "device-without-assessment", "no-user-provider", "empty-context",
         "member-with-unverified-email", "member-without-email"],
)
def test_crowdstrike_policy(context: dict[str, Any], allowed: bool) -> None:
    expected = cedarpy.Decision.Allow if allowed else cedarpy.Decision.Deny
    assert decide(CROWDSTRIKE, context) == expected


def test_jamf_policy_admits_only_listed_risks() -> None:
    policy = render_group_policy(
        make_site_config(deviceTrustProvider="jamf", deviceTrustTenantId="t-1", allowedDeviceRisks=["SECURE"]),
        migrated_group_id=MIGRATED,
    )
    assert decide(policy, {"idc": idc(MIGRATED), "jamf": {"risk": "SECURE"}}) == cedarpy.Decision.Allow
    assert decide(policy, {"idc": idc(MIGRATED), "jamf": {"risk": "LOW"}}) == cedarpy.Decision.Deny
    assert decide(policy, {"idc": idc(OTHER), "jamf": {"risk": "SECURE"}}) == cedarpy.Decision.Deny


def test_jumpcloud_policy_requires_a_managed_device() -> None:
    policy = render_group_policy(make_site_config(deviceTrustProvider="jumpcloud"), migrated_group_id=MIGRATED)
    managed = {"idc": idc(MIGRATED), "jumpcloud": {"device": {"is_managed": True}}}
    unmanaged = {"idc": idc(MIGRATED), "jumpcloud": {"device": {"is_managed": False}}}
    assert decide(policy, managed) == cedarpy.Decision.Allow
    assert decide(policy, unmanaged) == cedarpy.Decision.Deny


def test_policy_parses_as_exactly_one_permit_with_a_condition() -> None:
    parsed = cedarpy.policies_to_json_str(CROWDSTRIKE)
    assert '"effect":"permit"' in parsed.replace(" ", "")
    assert '"conditions":[]' not in parsed.replace(" ", "")


def test_group_id_that_could_inject_cedar_is_refused() -> None:
    with pytest.raises(ValueError, match="not an identity store group id"):
        render_group_policy(make_site_config(), migrated_group_id='x" || true || "')
