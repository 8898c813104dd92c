"""The orchestrator role's policy, as the program builds it, grants exactly what rollout.core.permissions lists."""

from __future__ import annotations

import json
from typing import Any

from rollout.core.contract import DEVICE_SITE_TAG_KEY, load_contract
from rollout.core.permissions import (
    OPERATOR_ACTIONS,
    ORCHESTRATOR_GRANTS,
    operator_policy,
    orchestrator_policy,
    required_actions,
    write_actions,
)
from tests.aws_identity import site_resources

from .conftest import ACCOUNT_ID, ProgramRun


def orchestrator_statements(run: ProgramRun) -> list[dict[str, Any]]:
    policy = next(p for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
                  if p.inputs["name"] == "zt-rollout-orchestrator")
    document = json.loads(policy.inputs["policy"])
    assert document["Version"] == "2012-10-17"
    statements: list[dict[str, Any]] = document["Statement"]
    assert {s["Effect"] for s in statements} == {"Allow"}
    return statements


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_policy_grants_exactly_the_backends_actions(site_run: tuple[str, ProgramRun]) -> None:
    _, run = site_run
    granted = {a for s in orchestrator_statements(run) for a in as_list(s["Action"])}
    assert granted == required_actions()
    assert "identitystore:CreateGroupMembership" in granted and "ssm:SendCommand" in granted


def test_no_wildcard_action_and_no_wildcard_resource_on_any_write(site_run: tuple[str, ProgramRun]) -> None:
    _, run = site_run
    for statement in orchestrator_statements(run):
        actions = as_list(statement["Action"])
        assert not any("*" in action for action in actions), statement
        if set(actions) & write_actions():
            assert "*" not in as_list(statement["Resource"]), statement
            assert not set(actions) - write_actions(), "a write statement must not smuggle reads onto its resources"


def test_identity_store_writes_only_touch_the_sites_store_and_migration_groups(
    site_run: tuple[str, ProgramRun]
) -> None:
    _, run = site_run
    writes = next(s for s in orchestrator_statements(run) if "identitystore:CreateGroupMembership" in s["Action"])
    assert sorted(writes["Resource"]) == sorted([
        f"arn:aws:identitystore::{ACCOUNT_ID}:identitystore/d-95671d3a1f",
        f"arn:aws:identitystore:::group/{run.outputs['pilot_group_id']}",
        f"arn:aws:identitystore:::group/{run.outputs['migrated_group_id']}",
        "arn:aws:identitystore:::user/*",
        "arn:aws:identitystore:::membership/*",
    ])


def test_send_command_is_limited_to_the_two_documents_and_tagged_site_nodes(site_run: tuple[str, ProgramRun]) -> None:
    site, run = site_run
    region = run.outputs["region"]
    send = [s for s in orchestrator_statements(run) if "ssm:SendCommand" in s["Action"]]
    assert len(send) == 2
    documents = next(s for s in send if "Condition" not in s)
    assert sorted(documents["Resource"]) == sorted(
        f"arn:aws:ssm:{region}:{ACCOUNT_ID}:document/{run.outputs[key]}"
        for key in ("kitting_document_name", "rollback_document_name")
    )
    nodes = next(s for s in send if "Condition" in s)
    assert nodes["Condition"] == {"StringEquals": {f"ssm:resourceTag/{DEVICE_SITE_TAG_KEY}": site}}
    assert all(":managed-instance/" in r or ":instance/" in r for r in nodes["Resource"])


def test_reads_are_pinned_to_the_sites_table_alarms_and_contract(site_run: tuple[str, ProgramRun]) -> None:
    site, run = site_run
    by_action = {a: s for s in orchestrator_statements(run) for a in as_list(s["Action"])}
    assert by_action["dynamodb:Query"]["Resource"] == [
        f"arn:aws:dynamodb:{run.outputs['region']}:{ACCOUNT_ID}:table/{run.outputs['checkin_table_name']}"]
    assert len(by_action["cloudwatch:DescribeAlarms"]["Resource"]) == 2
    assert by_action["ssm:GetParameter"]["Resource"] == [
        f"arn:aws:ssm:{run.outputs['region']}:{ACCOUNT_ID}:parameter/zt-rollout/{site}/contract"]


def test_every_grant_has_a_statement() -> None:
    assert len({g.sid for g in ORCHESTRATOR_GRANTS}) == len(ORCHESTRATOR_GRANTS)


def test_role_is_assumable_by_the_account_by_default(site_run: tuple[str, ProgramRun]) -> None:
    _, run = site_run
    role = next(r for r in run.of_type("aws:iam/role:Role") if r.inputs["name"].endswith("-orchestrator"))
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"AWS": [f"arn:aws:iam::{ACCOUNT_ID}:root"]}
    assert role.inputs["name"] == run.outputs["orchestrator_role_arn"].rsplit("/", 1)[1]


def test_policy_is_the_one_built_from_the_sites_contract(site_run: tuple[str, ProgramRun]) -> None:
    """The names the stack grants on are the ones it publishes, so a policy rebuilt from the contract
    (as the caller-identity test of the AWS backend does) is the deployed policy."""
    site, run = site_run
    policy = next(p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["name"] == "zt-rollout-orchestrator")
    contract = load_contract(run.outputs, site=site)
    assert json.loads(policy.inputs["policy"]) == orchestrator_policy(site_resources(contract, ACCOUNT_ID))


def test_operator_policy_reads_the_contract_and_assumes_this_sites_role_only(site_run: tuple[str, ProgramRun]) -> None:
    site, run = site_run
    policy = run.one("aws:iam/policy:Policy").inputs
    assert policy["name"] == f"zt-rollout-{site}-operator"
    statements = json.loads(policy["policy"])["Statement"]
    assert {a for s in statements for a in as_list(s["Action"])} == set(OPERATOR_ACTIONS) \
        == {"ssm:GetParameter", "sts:AssumeRole"}
    by_action = {a: s["Resource"] for s in statements for a in as_list(s["Action"])}
    assert by_action["sts:AssumeRole"] == [run.outputs["orchestrator_role_arn"]]
    assert by_action["ssm:GetParameter"] == [f"arn:aws:ssm:*:{ACCOUNT_ID}:parameter/zt-rollout/{site}/contract"]
    contract = load_contract(run.outputs, site=site)
    from dataclasses import replace

    assert json.loads(policy["policy"]) == operator_policy(
        replace(site_resources(contract, ACCOUNT_ID), orchestrator_role_arn=contract.orchestrator_role_arn))
