"""A site's stack configuration, read once from Pulumi config and validated into a frozen ``SiteConfig``.

Rules:

- Keys live in the ``zt-rollout`` namespace (``zt-rollout:vpcId``) plus the provider's ``aws:region``.
- Pulumi applies the defaults declared in ``Pulumi.yaml`` in the CLI, not in the SDK, so every default
  is repeated here; ``tests/stacks/test_site_config.py`` checks that both agree.
- Every problem is reported at once, each naming the stack and the full config key::

      stack 'fukuoka': 2 problems in Pulumi config:
        zt-rollout:minPostureScore: Input should be less than or equal to 100
        zt-rollout:vpcId: Field required

- The site id defaults to the stack name: the ``fukuoka`` stack configures the ``fukuoka`` site.
- A config that is well formed can still be one AWS cannot deploy: :func:`deployment_problems` checks
  it against the services each region offers (``stacks/regions.py``) and where Verified Access must
  be, and its problems are reported with the others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from rollout.core.contract import SITE_ID_PATTERN

from .regions import DNS_FIREWALL, IDENTITY_CENTER, STACK_REGIONS, VERIFIED_ACCESS, offers, region_of_arn, regions_with

PROJECT: Final = "zt-rollout"
REGION_KEY: Final = "aws:region"

_DOMAIN = r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"


class SiteConfigError(ValueError):
    """The stack's config is missing or invalid; the message lists every problem with its key."""


class SiteKind(StrEnum):
    HEAD_OFFICE = "head-office"
    DATA_CENTRE = "data-centre"
    BRANCH = "branch"


class DeviceTrustProvider(StrEnum):
    CROWDSTRIKE = "crowdstrike"
    JAMF = "jamf"
    JUMPCLOUD = "jumpcloud"


class JamfRisk(StrEnum):
    SECURE = "SECURE"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class PrivateApp(_Model):
    """A private application published through Verified Access behind an internal load balancer."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")
    domain: str = Field(pattern=_DOMAIN)
    certificate_arn: str = Field(pattern=r"^arn:aws[a-z-]*:acm:")
    load_balancer_arn: str = Field(pattern=r"^arn:aws[a-z-]*:elasticloadbalancing:")
    port: int = Field(default=443, ge=1, le=65535)


class SiteConfig(_Model):
    """Everything one site's stack needs; field names are the config keys in snake_case."""

    site: str = Field(pattern=SITE_ID_PATTERN)
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    site_kind: SiteKind
    identity_store_id: str = Field(pattern=r"^d-[0-9a-f]{10}$")
    identity_center_region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    device_trust_provider: DeviceTrustProvider = DeviceTrustProvider.CROWDSTRIKE
    device_trust_tenant_id: str | None = None
    browser_extension_id: str = Field(pattern=r"^[a-p]{32}$")
    min_posture_score: int = Field(default=60, ge=1, le=100)
    allowed_device_risks: tuple[JamfRisk, ...] = (JamfRisk.SECURE, JamfRisk.LOW)
    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]{8,17}$")
    endpoint_vpc_id: str | None = Field(default=None, pattern=r"^vpc-[0-9a-f]{8,17}$")
    subnet_ids: tuple[str, ...] = Field(min_length=1)
    private_apps: tuple[PrivateApp, ...] = ()
    closed_network: bool = True
    local_breakout_domains: tuple[str, ...] = ()
    dns_block_domains: tuple[str, ...] = ()
    legacy_proxy: str = Field(pattern=r"^[a-z0-9.-]+:\d{2,5}$")
    legacy_vpn_profile: str = Field(default="Corporate VPN", min_length=1, max_length=64)
    legacy_vpn_server: str = Field(pattern=r"^[a-z0-9.-]+$")
    agent_bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    checkin_retention_days: int = Field(default=90, ge=1, le=3650)
    kitting_failure_threshold: int = Field(default=3, ge=1)
    sign_in_failure_threshold: int = Field(default=25, ge=1)
    alarm_topic_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:sns:")
    orchestrator_principals: tuple[str, ...] = ()

    @property
    def identity_region(self) -> str:
        """IAM Identity Center's home region, where the identity store and its groups live."""
        return self.identity_center_region or self.region

    @property
    def verified_access_region(self) -> str:
        """Where the site's Verified Access is: IAM Identity Center's home region (its trust provider must be
        there, and an instance attaches trust providers of its own region only)."""
        return self.identity_region

    @property
    def endpoint_vpc(self) -> str:
        """The VPC of the Verified Access endpoints (in :attr:`verified_access_region`)."""
        return self.endpoint_vpc_id or self.vpc_id

    @model_validator(mode="after")
    def _check_consistency(self) -> SiteConfig:
        """Cross-key rules: a Jamf tenant is named; breakout and block lists hold domains and never overlap."""
        if self.device_trust_provider is DeviceTrustProvider.JAMF and not self.device_trust_tenant_id:
            raise ValueError("deviceTrustTenantId: required when deviceTrustProvider is jamf")
        for key, domains in (("localBreakoutDomains", self.local_breakout_domains),
                             ("dnsBlockDomains", self.dns_block_domains)):
            bad = [d for d in domains if not _is_domain(d)]
            if bad:
                raise ValueError(f"{key}: not domain names: {', '.join(bad)}")
        bad = [p for p in self.orchestrator_principals if not re.match(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:", p)]
        if bad:
            raise ValueError(f"orchestratorPrincipals: not IAM principal ARNs: {', '.join(bad)}")
        both = sorted(set(self.local_breakout_domains) & set(self.dns_block_domains))
        if both:
            raise ValueError(f"dnsBlockDomains: also in localBreakoutDomains: {', '.join(both)}")
        return self


def _is_domain(value: str) -> bool:
    return re.match(_DOMAIN, value) is not None


def config_keys() -> dict[str, str]:
    """Map each ``zt-rollout:`` key to its decoding: plain strings as given, everything else as JSON."""
    kinds: dict[str, str] = {"site": "string"}
    for name, field_info in SiteConfig.model_fields.items():
        if name in ("site", "region"):
            continue
        annotation = field_info.annotation
        plain = annotation in (str, str | None) or (isinstance(annotation, type) and issubclass(annotation, StrEnum))
        kinds[to_camel(name)] = "string" if plain else "json"
    return kinds


def load_site_config(get: Callable[[str], str | None], *, stack: str) -> SiteConfig:
    """Build the site's config from ``get(full_key) -> raw string or None`` (``pulumi.Config`` in the program).

    ``site`` defaults to ``stack``; ``region`` comes from ``aws:region``. Raises :class:`SiteConfigError`.
    """
    problems: list[str] = []
    raw: dict[str, Any] = {"site": stack}
    for key, kind in config_keys().items():
        value = get(f"{PROJECT}:{key}")
        if value is None:
            continue
        if kind == "json":
            try:
                raw[key] = json.loads(value)
            except json.JSONDecodeError:
                problems.append(f"{PROJECT}:{key}: {value!r} is not a valid value for this key")
                continue
        else:
            raw[key] = value
    region = get(REGION_KEY)
    if region is not None:
        raw["region"] = region
    return _validate(raw, problems, stack=stack)


def deployment_problems(config: SiteConfig) -> list[str]:
    """What AWS would refuse about a well-formed config, one ``key: problem`` line each:

    - every region is one the stacks support (:data:`stacks.regions.STACK_REGIONS`);
    - the site's region offers DNS Firewall;
    - Verified Access's region (IAM Identity Center's home region) offers Verified Access and Identity
      Center; e.g. ``aws:region`` ap-northeast-3 with no ``identityCenterRegion`` is refused, naming the
      regions that have Verified Access;
    - each private app's load balancer and certificate are in Verified Access's region, and so is the
      endpoints' VPC (``endpointVpcId``, required when that region is not the site's);
    - the device trust provider supports the platform the documents kit (Jamf, macOS only, does not).
    """
    idc_key = f"{PROJECT}:identityCenterRegion" if config.identity_center_region else REGION_KEY
    for key, region in ((REGION_KEY, config.region), (idc_key, config.identity_region)):
        if region not in STACK_REGIONS:
            return [f"{key}: {region} is not a region these stacks support; they support "
                    f"{', '.join(sorted(STACK_REGIONS))}"]
    return _service_problems(config, idc_key) + _endpoint_problems(config) + _device_trust_problems(config)


def _service_problems(config: SiteConfig, idc_key: str) -> list[str]:
    """DNS Firewall in the site's region; Verified Access and Identity Center in Verified Access's."""
    problems: list[str] = []
    if not offers(config.region, DNS_FIREWALL):
        problems.append(f"{REGION_KEY}: {DNS_FIREWALL} is not available in {config.region}; regions that have it: "
                        f"{regions_with(DNS_FIREWALL)}")
    va = config.verified_access_region
    for service in (VERIFIED_ACCESS, IDENTITY_CENTER):
        if offers(va, service):
            continue
        where = ("IAM Identity Center's home region" if config.identity_center_region else
                 f"taken for IAM Identity Center's home region because {PROJECT}:identityCenterRegion is not set")
        problems.append(
            f"{idc_key}: {service} is not available in {va} ({where}), where the site's Verified Access must be: its "
            f"IAM Identity Center trust provider must be in Identity Center's region, and an instance attaches trust "
            f"providers of its own region only. Regions that have {service}: {regions_with(service)}")
    return problems


def _endpoint_problems(config: SiteConfig) -> list[str]:
    """Private apps' load balancers and certificates, and the endpoints' VPC, in Verified Access's region."""
    problems: list[str] = []
    va = config.verified_access_region
    for index, app in enumerate(config.private_apps):
        for field, arn in (("loadBalancerArn", app.load_balancer_arn), ("certificateArn", app.certificate_arn)):
            if region_of_arn(arn) != va:
                problems.append(f"{PROJECT}:privateApps[{index}].{field}: in {region_of_arn(arn)}, but the site's "
                                f"Verified Access is in {va}, and an endpoint's load balancer and certificate must be in "
                                "its region")
    if config.private_apps and va != config.region and not config.endpoint_vpc_id:
        problems.append(f"{PROJECT}:endpointVpcId: required: the Verified Access endpoints are in {va}, not in the "
                        f"site's VPC {config.vpc_id} in {config.region}; name their VPC in {va}")
    return problems


def _device_trust_problems(config: SiteConfig) -> list[str]:
    """The device trust provider must support every platform the documents kit (``stacks.device_trust``)."""
    from .device_trust import DEVICE_TRUST, KITTED_PLATFORMS

    provider = config.device_trust_provider
    supported = DEVICE_TRUST[provider].platforms
    if KITTED_PLATFORMS <= supported:
        return []
    fitting = sorted(p.value for p, s in DEVICE_TRUST.items() if KITTED_PLATFORMS <= s.platforms)
    return [f"{PROJECT}:deviceTrustProvider: {provider.value} device trust supports {', '.join(sorted(supported))} only, "
            f"but the kitting document kits {', '.join(sorted(KITTED_PLATFORMS))} devices: use {' or '.join(fitting)}"]


def _validate(raw: Mapping[str, Any], problems: list[str], *, stack: str) -> SiteConfig:
    try:
        config = SiteConfig.model_validate(dict(raw))
    except ValidationError as exc:
        problems.extend(_describe(error) for error in exc.errors())
        config = None
    if config is not None:
        problems.extend(deployment_problems(config))
    if problems or config is None:
        lines = [f"stack {stack!r}: {len(problems)} problem{'s' if len(problems) != 1 else ''} in Pulumi config:"]
        lines += [f"  {p}" for p in sorted(problems)]
        lines.append(f"Fix stacks/Pulumi.{stack}.yaml or run `pulumi config set --stack {stack} <key> <value>`.")
        raise SiteConfigError("\n".join(lines))
    return config


def _describe(error: Mapping[str, Any]) -> str:
    """One line per pydantic error, keyed by the full config key (``aws:region`` for the region)."""
    loc = [str(part) for part in error["loc"]]
    message = str(error["msg"])
    if not loc:
        # Cross-key rules raise "key: message" from the model validator.
        key, _, rest = message.removeprefix("Value error, ").partition(": ")
        return f"{PROJECT}:{key}: {rest}"
    head = REGION_KEY if loc[0] == "region" else f"{PROJECT}:{loc[0]}"
    path = "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in loc[1:])
    return f"{head}{path}: {message}"
