"""SiteConfig repeats Pulumi.yaml's defaults, and its cross-key rules report the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic.alias_generators import to_snake

from stacks.config import SiteConfig, SiteConfigError, config_keys, load_site_config

from .builders import BASE

PROJECT_FILE = Path(__file__).resolve().parents[2] / "Pulumi.yaml"


def declared() -> dict[str, Any]:
    project = yaml.safe_load(PROJECT_FILE.read_text(encoding="utf-8"))
    assert project["main"] == "stacks/" and project["stackConfigDir"] == "stacks/"
    assert project["runtime"]["options"] == {"toolchain": "pip", "virtualenv": ".venv", "typechecker": "mypy"}
    config: dict[str, Any] = project["config"]
    return config


def test_every_declared_key_is_a_site_config_key() -> None:
    assert set(declared()) <= set(config_keys())


@pytest.mark.parametrize("key", sorted(k for k, v in declared().items() if "default" in v))
def test_declared_default_equals_site_config_default(key: str) -> None:
    field = SiteConfig.model_fields[to_snake(key)]
    default = field.default
    if isinstance(default, tuple):
        default = [getattr(d, "value", d) for d in default]
    assert declared()[key]["default"] == getattr(default, "value", default)


def test_keys_without_default_are_required_by_site_config_or_left_undeclared() -> None:
    for key, declaration in declared().items():
        if "default" not in declaration:
            assert SiteConfig.model_fields[to_snake(key)].is_required(), key


def test_cross_key_rule_names_its_key() -> None:
    raw = {f"zt-rollout:{k}": (v if isinstance(v, str) else yaml.safe_dump(v, default_flow_style=True).strip())
           for k, v in BASE.items() if k not in ("site", "region")}
    raw["aws:region"] = "ap-northeast-1"
    raw["zt-rollout:subnetIds"] = '["subnet-1"]'
    raw["zt-rollout:deviceTrustProvider"] = "jamf"
    with pytest.raises(SiteConfigError, match="zt-rollout:deviceTrustTenantId: required when deviceTrustProvider"):
        load_site_config(raw.get, stack="sendai")


def test_breakout_domain_cannot_also_be_blocked() -> None:
    with pytest.raises(ValueError, match="dnsBlockDomains: also in localBreakoutDomains: outlook.office.com"):
        SiteConfig.model_validate({**BASE, "localBreakoutDomains": ["outlook.office.com"],
                                   "dnsBlockDomains": ["outlook.office.com"]})
