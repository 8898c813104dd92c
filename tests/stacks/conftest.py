"""Run the Pulumi program under Pulumi's mocks, one fresh runtime per call, and record what it creates.

Pitfalls this harness handles: the program is executed with ``runpy.run_path`` on every call (a second
import would register nothing); each run gets its own event loop and its own ``contextvars`` context,
so the root stack resource, config and settings of one run never leak into the next; mocks are set
before the program creates anything.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

REPO = Path(__file__).resolve().parents[2]
STACKS_DIR = REPO / "stacks"
EXAMPLE_SITES = ("tokyo", "osaka", "fukuoka")
ACCOUNT_ID = "111122223333"


def stack_config(site: str) -> dict[str, str]:
    """Read ``stacks/Pulumi.<site>.yaml`` and return config the way the CLI hands it to a program:
    strings as they are, everything else as JSON text."""
    document = yaml.safe_load((STACKS_DIR / f"Pulumi.{site}.yaml").read_text(encoding="utf-8"))
    return {key: _as_config_text(value) for key, value in document["config"].items()}


def _as_config_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


_SECRET_SIG = "4dabf18193072939515e22adb298388d"


def unsecret(value: Any) -> Any:
    """Unwrap a value Pulumi marked secret (the mock monitor passes the wire envelope through)."""
    if isinstance(value, dict) and _SECRET_SIG in value:
        return value["value"]
    return value


@dataclass(frozen=True)
class Recorded:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str = ""  # the explicit provider's reference, when the resource has one


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs back as outputs, invent ids and ARNs the way AWS would shape them, and record everything."""

    def __init__(self) -> None:
        self.resources: list[Recorded] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs), str(args.provider or "")))
        outputs = dict(args.inputs)
        physical = str(args.inputs.get("name") or args.name)
        if args.typ == "aws:identitystore/group:Group":
            outputs["groupId"] = f"90676a0e-{args.name}"
        if args.typ == "aws:verifiedaccess/group:Group":
            outputs["verifiedaccessGroupId"] = f"vagr-{args.name}"
        if args.typ == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:role/{physical}"
        if args.typ == "aws:dynamodb/table:Table":
            outputs["arn"] = f"arn:aws:dynamodb:ap-northeast-1:{ACCOUNT_ID}:table/{physical}"
        if args.typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            outputs["arn"] = f"arn:aws:cloudwatch:ap-northeast-1:{ACCOUNT_ID}:alarm:{physical}"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        # A plain dict means "no check failures" to the mock monitor.
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/ci", "userId": "AIDA", "id": ACCOUNT_ID}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws", "id": "aws"}
        raise AssertionError(f"the program made an unexpected call: {args.token}")


@dataclass
class ProgramRun:
    """What one run of the program created and exported."""

    resources: list[Recorded]
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> Recorded:
        found = self.of_type(type_token)
        assert len(found) == 1, f"expected one {type_token}, found {[r.name for r in found]}"
        return found[0]


def run_program(site: str, config: Mapping[str, str]) -> ProgramRun:
    """Run ``stacks/__main__.py`` as stack ``site`` with ``config`` under fresh mocks; raise what it raises."""
    return contextvars.Context().run(_run_isolated, site, dict(config))


def _run_isolated(site: str, config: dict[str, str]) -> ProgramRun:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        pulumi.runtime.set_all_config(config)
        mocks = RecordingMocks()
        pulumi.runtime.set_mocks(mocks, project="zt-rollout", stack=site, preview=False)
        root = pulumi.runtime.settings.get_root_resource()
        assert root is not None
        program = str(STACKS_DIR / "__main__.py")
        _sync_await(run_pulumi_func(lambda: runpy.run_path(program, run_name="__main__") and None))
        outputs = {
            name: _sync_await(pulumi.Output.from_input(value).future())
            for name, value in getattr(root, "outputs").items()
        }
        return ProgramRun(resources=mocks.resources, outputs=outputs)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture(scope="module", params=EXAMPLE_SITES)
def site_run(request: pytest.FixtureRequest) -> tuple[str, ProgramRun]:
    """The program run once per example site (shared by the tests of a module)."""
    site = str(request.param)
    return site, run_program(site, stack_config(site))
