"""Publish the site's contract (``rollout.core.contract.SiteContract``) as one SSM String parameter of JSON.

The orchestrator reads ``/zt-rollout/<site>/contract`` with boto3 and never needs the Pulumi CLI.
The JSON is validated by the same model the orchestrator parses it with, before it is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_aws import ssm

from rollout.core.contract import OUTPUT_NAMES, SiteContract, contract_to_json

from .tags import site_tags


@dataclass(frozen=True, slots=True)
class ContractArgs:
    site: str
    site_kind: str
    parameter_name: str
    fields: Mapping[str, pulumi.Input[Any]]


class ContractParameter(pulumi.ComponentResource):
    """The contract parameter; ``contract`` is the validated JSON it holds."""

    contract: pulumi.Output[str]

    def __init__(self, name: str, args: ContractArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zt-rollout:site:Contract", name, None, opts)
        missing = sorted(set(OUTPUT_NAMES) - set(args.fields))
        extra = sorted(set(args.fields) - set(OUTPUT_NAMES))
        if missing or extra:
            raise ValueError(f"contract fields for {args.site}: missing {missing}, unexpected {extra}")
        self.contract = pulumi.Output.all(**dict(args.fields)).apply(
            lambda values: contract_to_json(SiteContract.model_validate(values))
        )
        ssm.Parameter(
            f"{name}-parameter",
            name=args.parameter_name,
            type="String",
            tier="Standard",
            value=self.contract,
            description=f"zt-rollout contract of site {args.site} (JSON, read by the orchestrator)",
            tags=site_tags(args.site, args.site_kind),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"contract": self.contract})
