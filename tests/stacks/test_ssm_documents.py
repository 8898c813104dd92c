"""The rendered kitting and rollback documents: valid schemaVersion 2.2 Command documents that moto's SSM
accepts, whose last step writes exactly the check-in item the orchestrator reads."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from rollout.core.contract import (
    CHECK_SIGNALS,
    CHECKIN_PARTITION_KEY,
    CHECKIN_SORT_KEY,
    CheckIn,
    CheckInAction,
    CheckInStatus,
)
from stacks.config import SiteConfig
from stacks.documents import render_kitting_document, render_rollback_document

from .builders import make_site_config
from .powershell import commands

TABLE = "zt-rollout-sendai-checkins"
REGION = "ap-northeast-1"
RENDERERS = {"kitting": render_kitting_document, "rollback": render_rollback_document}
PLUGINS = {"aws:runPowerShellScript", "aws:runShellScript"}


def render(kind: str, config: SiteConfig | None = None) -> str:
    return RENDERERS[kind](config or make_site_config(), checkin_table_name=TABLE)


@pytest.mark.parametrize("kind", sorted(RENDERERS))
def test_document_is_a_valid_schema_2_2_command_document(kind: str) -> None:
    document = yaml.safe_load(render(kind))
    assert document["schemaVersion"] == "2.2"
    names = [step["name"] for step in document["mainSteps"]]
    assert len(names) == len(set(names)), "step names must be unique"
    for step in document["mainSteps"]:
        assert step["action"] in PLUGINS
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", step["name"])
        assert step["inputs"]["runCommand"], f"{step['name']} runs nothing"
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", render(kind)))
    assert used == set(document["parameters"]), "every SSM parameter used is declared, and every declared one used"


@pytest.mark.parametrize("kind", sorted(RENDERERS))
def test_moto_ssm_accepts_the_document(kind: str) -> None:
    with mock_aws():
        ssm = boto3.client("ssm", region_name=REGION)
        ssm.create_document(Content=render(kind), Name=f"zt-rollout-sendai-{kind}",
                            DocumentType="Command", DocumentFormat="YAML")
        described = ssm.describe_document(Name=f"zt-rollout-sendai-{kind}")["Document"]
        assert described["SchemaVersion"] == "2.2"
        assert {p["Name"] for p in described["Parameters"]} == {"rolloutWave", "deviceMap"}


@pytest.mark.parametrize("kind", sorted(RENDERERS))
def test_check_in_is_the_final_step_and_runs_even_after_a_failure(kind: str) -> None:
    steps = yaml.safe_load(render(kind))["mainSteps"]
    assert steps[-1]["name"] == "writeCheckIn"
    assert steps[-1]["inputs"]["finallyStep"] is True  # the agent reads modifiers from inputs only
    assert all(step["inputs"].get("onFailure") == "exit" for step in steps[:-1])


def checkin_script(kind: str) -> str:
    return str(yaml.safe_load(render(kind))["mainSteps"][-1]["inputs"]["runCommand"][0])


def item_template(script: str) -> str:
    match = re.search(r"@'\n(.*?)\n'@", script, re.S)
    assert match, "the check-in step builds its item from a here-string"
    return match.group(1)


def fill_in(template: str, values: dict[str, str]) -> dict[str, Any]:
    """Do on the test's side what the device's .Replace calls do."""
    for token, value in values.items():
        template = template.replace(f"@@{token}@@", value)
    assert "@@" not in template, "a placeholder was left unfilled"
    item: dict[str, Any] = json.loads(template)
    return item


@pytest.mark.parametrize("kind", sorted(RENDERERS))
def test_every_placeholder_of_the_item_is_filled_on_the_device(kind: str) -> None:
    script = checkin_script(kind)
    tokens = set(re.findall(r"@@([A-Z_]+)@@", item_template(script)))
    replaced = set(re.findall(r"\.Replace\('@@([A-Z_]+)@@'", script))
    assert tokens == replaced
    assert "'{{ rolloutWave }}'" in script and "'{{ deviceMap }}'" in script
    # The agent puts its node's id in AWS_SSM_INSTANCE_ID for every script it runs (aws/amazon-ssm-agent:
    # agent/executers/executers.go, prepareEnvironment): each node finds its own device id in the map with it.
    assert "$env:AWS_SSM_INSTANCE_ID" in script


@pytest.mark.parametrize(("kind", "status", "failed"), [
    ("kitting", "succeeded", ""),
    ("kitting", "failed", "edr_agent_running,disk_encrypted"),
    ("rollback", "succeeded", ""),
])
def test_check_in_item_round_trips_through_dynamodb_into_the_orchestrators_model(
    kind: str, status: str, failed: str
) -> None:
    item = fill_in(item_template(checkin_script(kind)), {
        "ROLLOUT_WAVE": "r-2025-04#2", "DEVICE_ID": "PF3KX9Z1", "STATUS": status, "FAILED_CHECKS": failed,
        "CHECKED_IN_AT": "2025-04-14T01:02:03Z", "EXPIRES_AT": "1752454923",
    })
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": CHECKIN_PARTITION_KEY, "KeyType": "HASH"},
                       {"AttributeName": CHECKIN_SORT_KEY, "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": CHECKIN_PARTITION_KEY, "AttributeType": "S"},
                                  {"AttributeName": CHECKIN_SORT_KEY, "AttributeType": "S"}],
        )
        dynamodb.put_item(TableName=TABLE, Item=item)
        stored = dynamodb.get_item(TableName=TABLE, Key={CHECKIN_PARTITION_KEY: {"S": "r-2025-04#2"},
                                                          CHECKIN_SORT_KEY: {"S": "PF3KX9Z1"}})["Item"]
    checkin = CheckIn.from_dynamodb_item(stored)
    assert checkin.action is CheckInAction(kind)
    assert checkin.status is CheckInStatus(status)
    assert checkin.site == "sendai"
    assert checkin.failed_checks == tuple(c for c in failed.split(",") if c)


def test_failed_checks_name_checks_the_kitting_document_runs() -> None:
    document = render("kitting")
    for check in ("ztna_agent_running", "edr_agent_running", "disk_encrypted", "signin_portal_reachable",
                  "private_apps_reachable"):
        assert f"'{check}'" in document
    assert set(CHECK_SIGNALS) == {"kitting", "signin", "ztna", "app"}
    for names in CHECK_SIGNALS.values():  # every check the gates read is one the document runs
        for name in names:
            assert f"'{name}'" in document


def test_the_device_map_pattern_takes_fifty_pairs_and_no_more() -> None:
    pattern = yaml.safe_load(render("kitting"))["parameters"]["deviceMap"]["allowedPattern"]
    pairs = [f"mi-{i:017x}=D{i:07d}" for i in range(51)]
    assert re.fullmatch(pattern, ",".join(pairs[:50]))
    assert re.fullmatch(pattern, pairs[0])
    assert not re.fullmatch(pattern, ",".join(pairs))
    assert not re.fullmatch(pattern, "mi-1=D1;rm -rf /")


def test_rollback_restores_the_sites_legacy_proxy_and_vpn() -> None:
    document = render("rollback", make_site_config(legacyVpnProfile="Sendai VPN"))
    assert "-Value 'proxy.sendai.corp.example.jp:8080'" in document
    assert "Add-VpnConnection -Name 'Sendai VPN' -ServerAddress 'vpn.sendai.corp.example.jp'" in document


PROXY_VALUES = {"ProxyEnable", "ProxyServer", "ProxyOverride"}
VARIANTS = {"kitting-retire": ("kitting", make_site_config(closedNetwork=False)),
            "kitting-keep": ("kitting", make_site_config(closedNetwork=True)),
            "rollback": ("rollback", make_site_config())}


def step_scripts(variant: str) -> dict[str, str]:
    kind, config = VARIANTS[variant]
    document = yaml.safe_load(render(kind, config))
    return {step["name"]: "\n".join(step["inputs"]["runCommand"]) for step in document["mainSteps"]}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_script_uses_the_current_users_hive_which_under_run_command_is_systems(variant: str) -> None:
    """The SSM Agent's Windows service runs as NT AUTHORITY\\SYSTEM (aws/amazon-ssm-agent:
    agent/cli/diagnosticsutil/diagnosticsutil_windows.go, ExpectedServiceRunningUser), and Run Command
    scripts run as the agent: HKCU there is SYSTEM's hive, not the signed-in user's."""
    for name, text in step_scripts(variant).items():
        code = "\n".join(line for line in text.upper().splitlines() if not line.strip().startswith("#"))
        assert "HKCU" not in code and "HKEY_CURRENT_USER" not in code, name


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_proxy_settings_are_written_and_read_back_in_every_user_profile(variant: str) -> None:
    touched = 0
    for name, text in step_scripts(variant).items():
        calls = commands(text)
        proxy = [c for c in calls if c.named.get("Name") in PROXY_VALUES or
                 (c.name == "Get-ItemProperty" and c.named.get("Path") == "$internet")]
        if not proxy:
            continue
        touched += 1
        every_user = [c for c in calls if c.name == "Invoke-InEveryUserHive"]
        assert every_user, f"{name} touches proxy settings outside Invoke-InEveryUserHive"
        for call in proxy:
            assert call.named.get("Path") == "$internet", (name, call)
            assert any(outer.encloses(call) for outer in every_user), (name, call.name, call.named)
        assert "ProfileList" in text
        assert "Registry::HKEY_USERS\\$key\\Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings" in text
    assert touched == (2 if variant == "rollback" else 1), "the proxy is set (and, in rollback, checked) somewhere"
