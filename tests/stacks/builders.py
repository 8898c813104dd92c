"""Builders for a valid SiteConfig and its variants, so tests state only what they change."""

from __future__ import annotations

from typing import Any

from stacks.config import SiteConfig

BASE: dict[str, Any] = {
    "site": "sendai",
    "region": "ap-northeast-1",
    "siteKind": "branch",
    "identityStoreId": "d-95671d3a1f",
    "vpcId": "vpc-0a11c0ffee0000009",
    "subnetIds": ["subnet-0a11c0ffee0000091"],
    "legacyProxy": "proxy.sendai.corp.example.jp:8080",
    "legacyVpnServer": "vpn.sendai.corp.example.jp",
    "agentBucket": "zt-rollout-agents-111122223333",
    "browserExtensionId": "aaaabbbbccccddddeeeeffffgggghhhh",
}


def make_site_config(**changes: Any) -> SiteConfig:
    """A valid branch config; keyword arguments use the camelCase config keys."""
    return SiteConfig.model_validate({**BASE, **changes})
