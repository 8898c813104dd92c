"""Who makes each AWS call, and whether the policies the stacks create let that identity make it.

``CallLog.session`` hands out boto3 sessions (the backend's ``session_factory`` seam) that record,
for every API call, the credentials that sign it: the operator's own keys, or the temporary keys an
``sts:AssumeRole`` call returned for a site's orchestrator role (the log maps each key back to its
role). ``denials`` then evaluates each call against the identity's policy documents the way IAM does
for an identity policy: every resource the action authorizes must be allowed by some statement whose
action, resource pattern and condition match.

Which resources an action authorizes comes from parliament's copy of AWS's Service Authorization
Reference (``parliament/iam_definition.json``: the action's resource types, ``*`` marking the
required ones), not from ``rollout/permissions.py``; only the step from a resource type to an ARN
(from the call's parameters) is written here.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import boto3

from rollout.awslocal.server import FAKE_KEY

OPERATOR = "operator"
IAM_PREFIXES = {"monitoring": "cloudwatch"}


@dataclass(frozen=True)
class Call:
    identity: str  # OPERATOR or the orchestrator role's ARN
    action: str  # ssm:SendCommand
    region: str
    params: Mapping[str, Any]


@dataclass
class CallLog:
    calls: list[Call] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=lambda: {FAKE_KEY: OPERATOR})
    memberships: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> its GroupId and MemberId
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def session(self) -> boto3.session.Session:
        session = boto3.session.Session()
        session.events.register("provide-client-params", self._params)
        session.events.register("before-call", self._before_call)
        session.events.register("after-call.sts.AssumeRole", self._assumed)
        session.events.register("after-call.identitystore", self._membership)
        return session

    def client_factory(self, service: str) -> Callable[[str | None], Any]:
        return lambda region: self.session().client(service, region_name=region)

    @staticmethod
    def _params(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["zt_params"] = json.loads(json.dumps(params, default=str))

    def _before_call(self, model: Any, request_signer: Any, context: dict[str, Any], **_: Any) -> None:
        key = request_signer._credentials.get_frozen_credentials().access_key
        signing = model.service_model.signing_name
        with self._lock:
            identity = self.keys.get(key, f"unknown key {key}")
            self.calls.append(Call(identity, f"{IAM_PREFIXES.get(signing, signing)}:{model.name}",
                                   str(context.get("client_region")), context.get("zt_params", {})))

    def _membership(self, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        """A membership's group and user, so a later DeleteGroupMembership (which names only the
        membership) is checked against the group and user IAM authorizes it on."""
        params = context.get("zt_params", {})
        if "MembershipId" in parsed and "GroupId" in params:
            with self._lock:
                self.memberships[parsed["MembershipId"]] = {"GroupId": params["GroupId"],
                                                            "MemberId": params["MemberId"]}

    def _assumed(self, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        if "Credentials" in parsed:
            with self._lock:
                self.keys[parsed["Credentials"]["AccessKeyId"]] = context["zt_params"]["RoleArn"]


@cache
def _authorization_reference() -> dict[str, dict[str, list[tuple[str, bool]]]]:
    """prefix -> action -> [(resource type, required)], from parliament's IAM database."""
    data = json.loads(resources.files("parliament").joinpath("iam_definition.json").read_text(encoding="utf-8"))
    return {service["prefix"]: {p["privilege"]: [(r["resource_type"].rstrip("*"), r["resource_type"].endswith("*"))
                                                 for r in p["resource_types"]]
                                for p in service["privileges"]} for service in data}


@dataclass(frozen=True)
class Resource:
    arn: str
    tags: Mapping[str, str] = field(default_factory=dict)


def touched(call: Call, account: str, node_tags: Mapping[str, Mapping[str, str]],
            memberships: Mapping[str, Mapping[str, Any]] | None = None) -> list[Resource]:
    """The resources IAM authorizes ``call`` against: one ARN per resource type the Service
    Authorization Reference lists for the action (required ones always; optional ones when the call
    names them); an action with no resource type is authorized against ``*``."""
    prefix, action = call.action.split(":")
    types = _authorization_reference()[prefix][action]
    p, r = call.params, call.region
    if "MembershipId" in p:
        p = {**(memberships or {}).get(p["MembershipId"], {}), **p}
    out: list[Resource] = []
    for kind, required in types:
        arns: list[str]
        if kind == "":
            continue
        elif (prefix, kind) == ("identitystore", "Identitystore"):
            arns = [f"arn:aws:identitystore::{account}:identitystore/{p['IdentityStoreId']}"]
        elif (prefix, kind) == ("identitystore", "Group"):
            arns = [f"arn:aws:identitystore:::group/{p.get('GroupId', '*')}"]
        elif (prefix, kind) == ("identitystore", "User"):
            arns = [f"arn:aws:identitystore:::user/{p.get('MemberId', {}).get('UserId', '*')}"]
        elif (prefix, kind) == ("identitystore", "GroupMembership"):
            arns = [f"arn:aws:identitystore:::membership/{p.get('MembershipId', '*')}"]
        elif (prefix, kind) == ("ssm", "document"):
            arns = [f"arn:aws:ssm:{r}:{account}:document/{p['DocumentName']}"]
        elif (prefix, kind) in (("ssm", "managed-instance"), ("ssm", "instance")):
            nodes = [n for n in p.get("InstanceIds", []) if n.startswith("mi-") == (kind == "managed-instance")]
            service, path = ("ssm", "managed-instance") if kind == "managed-instance" else ("ec2", "instance")
            out += [Resource(f"arn:aws:{service}:{r}:{account}:{path}/{n}", node_tags.get(n, {})) for n in nodes]
            continue
        elif (prefix, kind) == ("ssm", "parameter"):
            arns = [f"arn:aws:ssm:{r}:{account}:parameter/{p['Name'].lstrip('/')}"]
        elif (prefix, kind) == ("dynamodb", "table"):
            arns = [f"arn:aws:dynamodb:{r}:{account}:table/{p['TableName']}"]
        elif (prefix, kind) == ("cloudwatch", "alarm"):
            arns = [f"arn:aws:cloudwatch:{r}:{account}:alarm:{name}" for name in p.get("AlarmNames", ["*"])]
        elif (prefix, kind) == ("sts", "role"):
            arns = [p["RoleArn"]]
        elif required:
            raise AssertionError(f"{call.action}: no ARN for its required resource type {kind!r}; add it here")
        else:
            continue
        out += [Resource(arn) for arn in arns]
    return out or [Resource("*")]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], resource: Resource) -> bool:
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            if operator != "StringEquals" or not key.startswith("ssm:resourceTag/"):
                raise AssertionError(f"the evaluator does not know condition {operator} {key}; extend it")
            if resource.tags.get(key.split("/", 1)[1]) not in _as_list(wanted):
                return False
    return True


def allowed(policies: Sequence[Mapping[str, Any]], action: str, resource: Resource) -> bool:
    for policy in policies:
        for statement in _as_list(policy["Statement"]):
            if statement["Effect"] != "Allow" or action.lower() not in {a.lower() for a in _as_list(statement["Action"])}:
                continue
            if not any(fnmatch.fnmatchcase(resource.arn, pattern) for pattern in _as_list(statement["Resource"])):
                continue
            if _condition_holds(statement.get("Condition", {}), resource):
                return True
    return False


def denials(log: CallLog, policies: Mapping[str, Sequence[Mapping[str, Any]]], account: str,
            node_tags: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One line per (call, resource) that the calling identity's policies do not allow."""
    found: list[str] = []
    for call in log.calls:
        for resource in touched(call, account, node_tags, log.memberships):
            if not allowed(policies.get(call.identity, ()), call.action, resource):
                found.append(f"{call.identity} may not {call.action} on {resource.arn}")
    return sorted(set(found))


def site_resources(contract: Any, account: str) -> Any:
    """The names a site's stack passes to ``rollout.core.permissions.orchestrator_policy``, read back from its
    contract (tests/stacks/test_orchestrator_role.py checks the stack's own policy equals this)."""
    from rollout.core.permissions import SiteResources

    return SiteResources(
        partition="aws", region=contract.region, account_id=account, site=contract.site,
        identity_store_id=contract.identity_store_id, pilot_group_id=contract.pilot_group_id,
        migrated_group_id=contract.migrated_group_id, kitting_document_name=contract.kitting_document_name,
        rollback_document_name=contract.rollback_document_name, checkin_table_name=contract.checkin_table_name,
        alarm_names=contract.alarm_names, contract_parameter_name=contract.contract_parameter_name,
        verified_access_region=contract.verified_access_region)
