"""What the orchestrator did to the local AWS emulation, counted from moto's own state.

``mutations()`` lists every SSM command (node, document, ``rolloutWave``) and every membership
change that took effect; ``duplicates`` are the commands sent twice for the same node, document
and wave, and the membership changes that repeat the previous one for a user (two joins without a
leave in between, or two leaves). A correct orchestrator leaves both at zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from rollout.awslocal.server import MEMBERSHIP_LOG
from rollout.core.contract import SiteContract


@dataclass
class Mutations:
    commands: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (node, document, rollout#wave)
    membership_changes: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, group, user)
    members: dict[str, set[str]] = field(default_factory=dict)  # site -> users in its migrated group now

    @property
    def duplicate_commands(self) -> int:
        return sum(n - 1 for n in self.commands.values() if n > 1)

    @property
    def duplicate_membership_changes(self) -> int:
        last: dict[tuple[str, str], str] = {}
        repeats = 0
        for verb, group, user in self.membership_changes:
            repeats += last.get((group, user)) == verb
            last[(group, user)] = verb
        return repeats

    def count(self, document: str) -> int:
        return sum(n for (_, doc, _), n in self.commands.items() if doc == document)


def mutations(contracts: Mapping[str, SiteContract]) -> Mutations:
    out = Mutations(membership_changes=list(MEMBERSHIP_LOG))
    session = boto3.session.Session()
    for region in sorted({c.region for c in contracts.values()}):
        ssm = session.client("ssm", region_name=region)
        args: dict[str, Any] = {}
        while True:
            page = ssm.list_commands(**args)
            for command in page.get("Commands", []):
                wave = command.get("Parameters", {}).get("rolloutWave", [""])[0]
                for node in command.get("InstanceIds", []):
                    out.commands[(node, command["DocumentName"], wave)] += 1
            if not page.get("NextToken"):
                break
            args["NextToken"] = page["NextToken"]
    for site, contract in contracts.items():
        idc = session.client("identitystore", region_name=contract.identity_region)
        users: set[str] = set()
        for listed in idc.get_paginator("list_group_memberships").paginate(
                IdentityStoreId=contract.identity_store_id, GroupId=contract.migrated_group_id):
            users |= {m["MemberId"]["UserId"] for m in listed["GroupMemberships"]}
        out.members[site] = users
    return out
