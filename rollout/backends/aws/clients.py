"""boto3 sessions and clients for each site: the orchestrator role assumed, retries configured.

- A site's calls run as its ``orchestrator_role_arn`` (from the contract) when ``assume_role`` is
  on: credentials from STS AssumeRole, refreshed before they expire. The operator's own identity
  needs ``sts:AssumeRole`` on those roles, and ``ssm:GetParameter`` on their contracts for
  ``--contracts ssm`` (``rollout.core.permissions.OPERATOR_GRANTS``).
- Every client retries in botocore's standard mode with ``total_max_attempts`` attempts in all,
  except the one that sends SSM commands: SendCommand has no idempotency token, so it gets one
  attempt and ``rollout.backends.aws.calls`` decides (looking before sending again).
- ``session_factory`` is the seam the tests use to register a botocore ``before-send`` hook that
  injects faults into every call.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from pydantic import BaseModel, ConfigDict, Field

from rollout.backends.aws.calls import Caller
from rollout.core.contract import SiteContract

SessionFactory = Callable[[], boto3.session.Session]


class AwsSettings(BaseModel):
    """How the AWS backend calls AWS; recorded with the rollout (``rollout start --backend aws``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(default=16, ge=1, le=256)
    rates: dict[str, float] = Field(default_factory=dict)  # calls per second per API or service
    retry_deadline: float = Field(default=300.0, gt=0)  # seconds of own backoff before giving up
    backoff_base: float = Field(default=0.2, gt=0)  # seconds: the first backoff is up to this, doubling
    total_max_attempts: int = Field(default=4, ge=1, le=20)  # botocore's attempts per call, the first included
    assume_role: bool = True
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=20.0, gt=0)
    invocation_checks_per_tick: int = Field(default=200, ge=0)  # GetCommandInvocation for silent devices


def client_config(settings: AwsSettings, *, retries: bool) -> Config:
    return Config(retries={"mode": "standard", "total_max_attempts": settings.total_max_attempts if retries else 1},
                  connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                  max_pool_connections=settings.concurrency + 8, user_agent_extra="zt-rollout")


@dataclass
class SiteClients:
    """The clients of one site, and the role they run as (for messages)."""

    contract: SiteContract
    identitystore: Any
    ssm: Any
    ssm_send: Any  # no botocore retries: SendCommand is not idempotent
    dynamodb: Any
    cloudwatch: Any
    who: str
    cloudwatch_by_region: dict[str, Any]  # the site's region and Verified Access's (the sign-in alarm)


class Clients:
    """Clients per site, created on first use and shared by the worker threads."""

    def __init__(self, contracts: dict[str, SiteContract], settings: AwsSettings, caller: Caller,
                 session_factory: SessionFactory | None = None) -> None:
        self.contracts, self.settings, self.caller = contracts, settings, caller
        self.session_factory = session_factory or boto3.session.Session
        self._sites: dict[str, SiteClients] = {}
        self._lock = threading.Lock()

    def site(self, site: str) -> SiteClients:
        with self._lock:
            if site not in self._sites:
                self._sites[site] = self._make(self.contracts[site])
            return self._sites[site]

    def _make(self, contract: SiteContract) -> SiteClients:
        session = self.session_factory()
        who = "the orchestrator's identity"
        if self.settings.assume_role:
            session = self._assumed(session, contract)
            who = f"the orchestrator role of site {contract.site} ({contract.orchestrator_role_arn})"
        retrying, once = client_config(self.settings, retries=True), client_config(self.settings, retries=False)

        def make(service: str, config: Config, region: str = contract.region) -> Any:
            return session.client(service, region_name=region, config=config)  # type: ignore[call-overload]

        cloudwatch = {region: make("cloudwatch", retrying, region) for region in contract.alarm_regions}
        return SiteClients(contract, make("identitystore", retrying, contract.identity_region), make("ssm", retrying),
                           make("ssm", once),
                           make("dynamodb", retrying), cloudwatch[contract.region], who, cloudwatch)

    def _assumed(self, base: boto3.session.Session, contract: SiteContract) -> boto3.session.Session:
        sts = base.client("sts", region_name=contract.region, config=client_config(self.settings, retries=True))
        name = f"zt-rollout-{contract.site}-{uuid.uuid4().hex[:8]}"

        def fetch() -> dict[str, str]:
            creds = self.caller.call(sts, "AssumeRole", who="the operator's identity (sts:AssumeRole)",
                                     RoleArn=contract.orchestrator_role_arn, RoleSessionName=name,
                                     DurationSeconds=3600)["Credentials"]
            expiry = creds["Expiration"]
            if isinstance(expiry, dt.datetime):
                expiry = expiry.isoformat()
            return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"], "expiry_time": str(expiry)}

        credentials = RefreshableCredentials.create_from_metadata(fetch(), fetch, "sts-assume-role")
        assumed = self.session_factory()
        setattr(assumed._session, "_credentials", credentials)  # the usual way to give boto3 refreshable credentials
        return assumed
