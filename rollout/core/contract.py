"""The contract between a site's Pulumi stack and the rollout orchestrator, named and typed here once.

Each site's stack (``stacks/``) creates the resources the orchestrator moves devices through and
publishes their names as stack outputs *and* as one SSM String parameter holding JSON, named by
:func:`contract_parameter_name`::

    /zt-rollout/<site>/contract  ->  {"schema_version": 1, "site": "tokyo", "region": "ap-northeast-1", ...}

The orchestrator reads that parameter with boto3 in production, ``pulumi stack output --json`` on a
workstation, or a JSON file of the same shape (``examples/contracts/<site>.json``) in tests and
rehearsals. All three are parsed by :func:`load_contract`, so they cannot drift apart.

The kitting and rollback SSM documents end by writing one :class:`CheckIn` item per device to the
site's check-in table; :meth:`CheckIn.from_dynamodb_item` is how the orchestrator reads it back.

This module depends only on pydantic and the standard library: the orchestrator imports it without
Pulumi installed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rollout.errors import ContractError as ContractError

SCHEMA_VERSION: Final = 1
PARAMETER_PREFIX: Final = "/zt-rollout"

#: Managed nodes (the site's devices) carry this tag with the site id as value. The orchestrator's
#: role may run the migration documents only on nodes tagged for its own site.
DEVICE_SITE_TAG_KEY: Final = "zt-rollout-site"

SITE_ID_PATTERN: Final = r"^[a-z][a-z0-9-]{1,30}$"
_SITE_ID = re.compile(SITE_ID_PATTERN)


def contract_parameter_name(site: str) -> str:
    """Return the SSM parameter that holds ``site``'s contract, e.g. ``/zt-rollout/tokyo/contract``.

    Raises :class:`ContractError` when ``site`` is not a site id (lowercase letters, digits, hyphens).
    """
    if not _SITE_ID.match(site):
        raise ContractError(
            f"{site!r} is not a site id: use 2-31 lowercase letters, digits or hyphens, starting with a letter."
        )
    return f"{PARAMETER_PREFIX}/{site}/contract"


class SiteContract(BaseModel):
    """What a site's stack publishes and the orchestrator relies on. One field = one stack output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = Field(description="Version of this contract's shape; bumped on incompatible change.")
    site: str = Field(pattern=SITE_ID_PATTERN, description="Site id, also the stack name.")
    region: str = Field(min_length=1, description="AWS region of every resource below.")
    identity_store_id: str = Field(min_length=1, description="IAM Identity Center identity store id (d-...).")
    identity_store_region: str = Field(
        default="", description="IAM Identity Center's home region, where the identity store is, and with it the "
        "site's Verified Access and sign-in alarm ('': region)."
    )
    pilot_group_id: str = Field(min_length=1, description="Identity store group of the site's pilot users.")
    migrated_group_id: str = Field(
        min_length=1, description="Identity store group admitted by the Verified Access policy."
    )
    kitting_document_name: str = Field(min_length=1, description="SSM Command document that kits a device.")
    rollback_document_name: str = Field(min_length=1, description="SSM Command document that restores legacy access.")
    checkin_table_name: str = Field(min_length=1, description="DynamoDB table of device check-ins.")
    kitting_failure_alarm_name: str = Field(min_length=1, description="CloudWatch alarm on kitting failures.")
    sign_in_failure_alarm_name: str = Field(min_length=1, description="CloudWatch alarm on denied sign-ins.")
    verified_access_group_id: str = Field(min_length=1, description="Verified Access group of the site's apps.")
    orchestrator_role_arn: str = Field(min_length=1, description="IAM role the orchestrator assumes for this site.")
    contract_parameter_name: str = Field(min_length=1, description="SSM parameter holding this contract.")
    device_tag_key: str = Field(min_length=1, description="Tag key that marks the site's managed nodes.")

    @property
    def identity_region(self) -> str:
        """Where to call the identity store: IAM Identity Center has one home region per organisation."""
        return self.identity_store_region or self.region

    @property
    def verified_access_region(self) -> str:
        """Where the site's Verified Access is, with its access logs and the sign-in alarm on them: IAM
        Identity Center's home region (its trust provider must be there)."""
        return self.identity_region

    @property
    def alarm_names(self) -> tuple[str, ...]:
        """The site's alarms the triage gates read, kitting first."""
        return (self.kitting_failure_alarm_name, self.sign_in_failure_alarm_name)

    @property
    def alarm_regions(self) -> dict[str, tuple[str, ...]]:
        """The site's alarms by region: kitting in the site's region, sign-in in Verified Access's."""
        regions: dict[str, tuple[str, ...]] = {}
        for region, name in ((self.region, self.kitting_failure_alarm_name),
                             (self.verified_access_region, self.sign_in_failure_alarm_name)):
            regions[region] = regions.get(region, ()) + (name,)
        return regions


#: The stack output names, in declaration order; the stack exports exactly these.
OUTPUT_NAMES: Final[tuple[str, ...]] = tuple(SiteContract.model_fields)


def load_contract(data: Mapping[str, Any], *, site: str | None = None, source: str = "contract") -> SiteContract:
    """Validate a contract mapping and return it.

    ``site`` (when given) must match the contract's own ``site``. Every problem is reported in one
    :class:`ContractError` naming the site, the source and each key, e.g.
    ``contract for site 'tokyo' (examples/contracts/tokyo.json): checkin_table_name: Field required``.
    """
    who = site or str(data.get("site", "?"))
    try:
        contract = SiteContract.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors())
        raise ContractError(
            f"contract for site {who!r} ({source}): {problems}. "
            "Re-run `pulumi up` for the site or fix the file, then try again."
        ) from exc
    if site is not None and contract.site != site:
        raise ContractError(
            f"contract for site {site!r} ({source}): site: says {contract.site!r}. Point at the right site's contract."
        )
    if contract.schema_version != SCHEMA_VERSION:
        raise ContractError(
            f"contract for site {who!r} ({source}): schema_version: {contract.schema_version} is not "
            f"{SCHEMA_VERSION}. Upgrade zt-rollout or re-run `pulumi up` for the site."
        )
    return contract


def load_contract_file(path: Path, *, site: str | None = None) -> SiteContract:
    """Read a contract JSON file (same shape as the SSM parameter) and validate it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ContractError(f"contract for site {site or '?'!r} ({path}): cannot read JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise ContractError(f"contract for site {site or '?'!r} ({path}): expected a JSON object.")
    return load_contract(data, site=site, source=str(path))


def contract_to_json(contract: SiteContract) -> str:
    """Serialise a contract the way the stack publishes it: sorted keys, two-space indent."""
    return json.dumps(contract.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


# --- Device check-ins ---------------------------------------------------------------------------

#: Check-in table key schema: partition key ``rollout_wave`` ("<rollout id>#<wave number>") and sort
#: key ``device_id``; ``expires_at`` (epoch seconds) is the table's TTL attribute.
CHECKIN_PARTITION_KEY: Final = "rollout_wave"
CHECKIN_SORT_KEY: Final = "device_id"
CHECKIN_TTL_ATTRIBUTE: Final = "expires_at"


class CheckInAction(StrEnum):
    """Which document wrote the check-in."""

    KITTING = "kitting"
    ROLLBACK = "rollback"


class CheckInStatus(StrEnum):
    """Outcome of the document's health checks on the device."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CheckIn(BaseModel):
    """One device's report after a kitting or rollback run, as stored in the check-in table.

    DynamoDB attribute types: every attribute is a string (``S``) except ``expires_at`` (``N``).
    ``failed_checks`` is a comma-separated list of health-check names, empty when all passed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rollout_wave: str = Field(pattern=r"^[^#]+#\d+$")
    device_id: str = Field(min_length=1)
    site: str = Field(pattern=SITE_ID_PATTERN)
    action: CheckInAction
    status: CheckInStatus
    failed_checks: tuple[str, ...] = ()
    checked_in_at: datetime
    expires_at: int = Field(gt=0)

    @classmethod
    def from_dynamodb_item(cls, item: Mapping[str, Mapping[str, str]]) -> CheckIn:
        """Parse a low-level DynamoDB item (``{"device_id": {"S": "PC-1"}, ...}``) into a check-in.

        Raises :class:`ContractError` naming the attribute when a type or value is wrong.
        """
        plain: dict[str, Any] = {}
        for name, typed in item.items():
            if len(typed) != 1:
                raise ContractError(f"check-in attribute {name!r}: expected one DynamoDB type, got {sorted(typed)}.")
            ((kind, value),) = typed.items()
            expected = "N" if name == CHECKIN_TTL_ATTRIBUTE else "S"
            if kind != expected:
                raise ContractError(f"check-in attribute {name!r}: DynamoDB type {kind}, expected {expected}.")
            plain[name] = value
        if "failed_checks" in plain:
            plain["failed_checks"] = tuple(c for c in str(plain["failed_checks"]).split(",") if c)
        try:
            return cls.model_validate(plain)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ContractError(f"check-in item is not valid: {problems}.") from exc


#: Which of the kitting document's health checks (names in ``failed_checks``) stand for which of
#: the gates' signals. A failed check the table does not know counts against ``kitting``.
CHECK_SIGNALS: Final[dict[str, tuple[str, ...]]] = {
    "kitting": ("aws_cli_present", "edr_agent_running", "disk_encrypted", "steps_completed",
                "native_messaging_host_installed", "browser_extension_forced"),
    "ztna": ("ztna_agent_running",),
    "signin": ("signin_portal_reachable",),
    "app": ("private_apps_reachable",),
}


def health_checks(checkin: CheckIn) -> dict[str, bool]:
    """The gates' signals from one kitting check-in: a signal is ok unless one of its checks failed.

    ``failed_checks = "edr_agent_running,printer_queue"`` gives kitting False (the EDR agent; and
    ``printer_queue`` is unknown), ztna, signin and app True. A ``failed`` status with no failed
    check named (a step threw before it could say) fails kitting.
    """
    failed = set(checkin.failed_checks)
    checks = {signal: not failed.intersection(names) for signal, names in CHECK_SIGNALS.items()}
    known = {name for names in CHECK_SIGNALS.values() for name in names}
    if failed - known or (checkin.status is CheckInStatus.FAILED and not failed):
        checks["kitting"] = False
    return checks
