"""parliament (duo-labs) over every IAM policy document the stacks and ``rollout/permissions.py`` produce: the
orchestrator role's inline policy, the operators' managed policy, the device role's inline policy, and both
roles' trust policies, for every example stack. parliament checks actions, resource ARN formats and
condition keys against its copy of AWS's Service Authorization Reference, and flags risky grants.

Each finding must be one of the known false positives below, each with the reason it is not a problem;
and each of those must still be found (an entry that no longer matches anything is removed, not kept).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import parliament
import pytest

from rollout.core.contract import load_contract
from rollout.core.permissions import operator_policy, orchestrator_policy
from tests.aws_identity import site_resources

from .conftest import ACCOUNT_ID, EXAMPLE_SITES, ProgramRun, run_program, stack_config


@dataclass(frozen=True)
class KnownFalsePositive:
    issue: str
    applies: Callable[[str, Any], bool]  # (document kind, finding detail)
    reason: str


KNOWN_FALSE_POSITIVES = (
    KnownFalsePositive(
        "RESOURCE_MISMATCH",
        lambda kind, detail: kind == "orchestrator" and detail == [
            {"action": "ssm:SendCommand", "required_format": "arn:*:ssm:*:*:document/*"}],
        "The statement OnSiteDevicesOnly grants ssm:SendCommand on managed nodes only, with the condition "
        "ssm:resourceTag/zt-rollout-site; the documents are granted by RunMigrationDocuments. IAM authorizes "
        "SendCommand on the document and on every target node separately, so splitting them is what lets the "
        "tag condition apply to the nodes alone. parliament checks each statement on its own.",
    ),
    KnownFalsePositive(
        "CREDENTIALS_EXPOSURE",
        lambda kind, detail: kind == "operator",
        "sts:AssumeRole returns credentials: that is the operators' policy's purpose, and it names exactly one "
        "role, the site's orchestrator role.",
    ),
    KnownFalsePositive(
        "MALFORMED",
        lambda kind, detail: kind.endswith("trust") and detail == "Statement contains neither Resource nor NotResource",
        "A role's trust policy is a resource policy attached to the role: it has a Principal and never a "
        "Resource. parliament reads every document as an identity policy; its other checks (actions, "
        "condition keys and operators) still apply to trust policies.",
    ),
)


def documents(run: ProgramRun) -> list[tuple[str, str, str]]:
    """(kind, resource name, JSON) of every IAM policy document the program creates."""
    found = []
    for policy in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        kind = "orchestrator" if policy.inputs["name"] == "zt-rollout-orchestrator" else "device"
        found.append((kind, policy.name, str(policy.inputs["policy"])))
    found += [("operator", p.name, str(p.inputs["policy"])) for p in run.of_type("aws:iam/policy:Policy")]
    for role in run.of_type("aws:iam/role:Role"):
        kind = "orchestrator-trust" if role.inputs["name"].endswith("-orchestrator") else "device-trust"
        found.append((kind, role.name, str(role.inputs["assumeRolePolicy"])))
    return found


def from_permissions(run: ProgramRun, site: str) -> list[tuple[str, str, str]]:
    """The same site's policies built directly by rollout/permissions.py from its contract."""
    contract = load_contract(run.outputs, site=site)
    resources = replace(site_resources(contract, ACCOUNT_ID), orchestrator_role_arn=contract.orchestrator_role_arn)
    return [("orchestrator", "permissions.orchestrator_policy", json.dumps(orchestrator_policy(resources))),
            ("operator", "permissions.operator_policy", json.dumps(operator_policy(resources)))]


def findings(kind: str, document: str) -> list[tuple[str, Any]]:
    policy = parliament.analyze_policy_string(document, include_community_auditors=True)
    return [(f.issue, f.detail) for f in policy.findings]


@cache
def program(site: str) -> ProgramRun:
    return run_program(site, stack_config(site))


@pytest.mark.parametrize("site", EXAMPLE_SITES)
def test_parliament_finds_nothing_but_the_known_false_positives(site: str) -> None:
    run = program(site)
    kinds = {kind for kind, _, _ in documents(run)}
    assert kinds == {"orchestrator", "operator", "device", "orchestrator-trust", "device-trust"}
    unexplained = []
    for kind, name, document in documents(run) + from_permissions(run, site):
        for issue, detail in findings(kind, document):
            if not any(known.issue == issue and known.applies(kind, detail) for known in KNOWN_FALSE_POSITIVES):
                unexplained.append(f"{name} ({kind}): {issue} {detail}")
    assert unexplained == []


def test_every_known_false_positive_still_occurs() -> None:
    seen = {known.issue: False for known in KNOWN_FALSE_POSITIVES}
    for site in EXAMPLE_SITES:
        for kind, _, document in documents(program(site)):
            for issue, detail in findings(kind, document):
                for known in KNOWN_FALSE_POSITIVES:
                    if known.issue == issue and known.applies(kind, detail):
                        seen[known.issue] = True
    assert all(seen.values()), [issue for issue, found in seen.items() if not found]


@pytest.mark.parametrize(("statement", "issue"), [
    ({"Effect": "Allow", "Action": "ssm:SendComand", "Resource": "*"}, "UNKNOWN_ACTION"),
    ({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "arn:aws:s3:::bucket/*"}, "RESOURCE_MISMATCH"),
    ({"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
      "Condition": {"StringEquals": {"cloudwatch:namspace": "ZtRollout/x"}}}, "UNKNOWN_CONDITION_FOR_ACTION"),
])
def test_parliament_does_catch_what_it_is_here_for(statement: dict[str, Any], issue: str) -> None:
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    assert issue in {found for found, _ in findings("orchestrator", document)}
