"""Render a site's Cedar policy and SSM documents from ``templates/``: pure functions of the site's config.

The components call these inside ``Output.apply`` once the ids they embed are known; the tests call
them directly with literal ids, and evaluate the results in Cedar and moto.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from rollout.templating import render

from .config import DeviceTrustProvider, SiteConfig
from .device_trust import DEVICE_TRUST, KITTED_PLATFORMS

#: Verified Access puts each trust provider's claims under ``context.<policy reference name>``.
#: The names must be Cedar identifiers (no hyphens) so the policy can use dot access.
USER_POLICY_REFERENCE: Final = "idc"

#: Custom metrics the documents and the Verified Access log filter publish, in the site's own
#: namespace (see :func:`metric_namespace`); the site's alarms watch them.
KITTING_FAILURE_METRIC: Final = "KittingFailures"
ROLLBACK_FAILURE_METRIC: Final = "RollbackFailures"
SIGN_IN_FAILURE_METRIC: Final = "SignInFailures"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GROUP_ID = re.compile(r"^[A-Za-z0-9-]{1,47}$")


def metric_namespace(site: str) -> str:
    """CloudWatch namespace of a site's rollout metrics, e.g. ``ZtRollout/fukuoka``."""
    return f"ZtRollout/{site}"


def device_policy_reference(provider: DeviceTrustProvider) -> str:
    """The device trust provider's policy reference name: the provider's own name (an identifier)."""
    return provider.value


def render_group_policy(config: SiteConfig, *, migrated_group_id: str) -> str:
    """Cedar policy for the site's Verified Access group.

    Allows a request only when the user is in ``migrated_group_id`` and the device passes the site's
    posture rule: CrowdStrike ``assessment.overall >= minPostureScore``; Jamf ``risk`` in
    ``allowedDeviceRisks``; JumpCloud ``device.is_managed == true``. Anything else is denied.
    """
    if not _GROUP_ID.match(migrated_group_id):
        raise ValueError(f"{migrated_group_id!r} is not an identity store group id")
    device_ref = device_policy_reference(config.device_trust_provider)
    for ref in (USER_POLICY_REFERENCE, device_ref):
        if not _IDENTIFIER.match(ref):
            raise ValueError(f"policy reference name {ref!r} is not a Cedar identifier")
    return render(
        "cedar/site_group.cedar.j2",
        site=config.site,
        user_ref=USER_POLICY_REFERENCE,
        device_ref=device_ref,
        device_provider=config.device_trust_provider.value,
        migrated_group_id=migrated_group_id,
        min_posture_score=config.min_posture_score,
        allowed_risks=[risk.value for risk in config.allowed_device_risks],
    )


@dataclass(frozen=True, slots=True)
class Agent:
    """An MSI the kitting document installs from the site's agent bucket and then health-checks: a
    running ``service`` when it has one, else its product installed (by the product code the install
    step reads from the MSI). ``enrollment_parameter`` and ``token_property`` pass an enrollment token."""

    step: str
    installer: str
    check: str
    enrollment_parameter: str = ""
    token_property: str = ""
    service: str = ""


#: Installer of the AWS Verified Access Native Messaging Host (AWS publishes the MSI; the site puts it in its bucket).
NATIVE_MESSAGING_HOST_INSTALLER: Final = "aws-verified-access-native-messaging-host.msi"

#: Chrome's policy key for force-installed extensions, and the Chrome Web Store's update URL.
CHROME_FORCELIST: Final = r"HKLM:\SOFTWARE\Policies\Google\Chrome\ExtensionInstallForcelist"
CHROME_WEB_STORE_UPDATE_URL: Final = "https://clients2.google.com/service/update2/crx"


def site_agents(config: SiteConfig) -> tuple[Agent, ...]:
    """The ZTNA agent, the EDR agent of the site's device trust provider and, for CrowdStrike, the
    Verified Access Native Messaging Host, in install order.

    Enrollment tokens are SecureString parameters under ``/zt-rollout/<site>/``, created out of band.
    Raises ``ValueError`` for a provider with no Windows agent (the documents kit Windows).
    """
    support = DEVICE_TRUST[config.device_trust_provider]
    if support.windows_agent is None:
        raise ValueError(f"{config.device_trust_provider.value} device trust has no Windows agent; the documents "
                         f"kit {', '.join(sorted(KITTED_PLATFORMS))}")
    installer, token_property, service = support.windows_agent
    agents = [
        Agent("ZtnaAgent", "ztna-agent.msi", "ztna_agent_running", f"/zt-rollout/{config.site}/ztna-enrollment-token",
              "ENROLLMENT_TOKEN", "ZtnaAgent"),
        Agent("EdrAgent", installer, "edr_agent_running", f"/zt-rollout/{config.site}/edr-enrollment-token",
              token_property, service),
    ]
    if support.native_messaging_host:
        agents.append(Agent("NativeMessagingHost", NATIVE_MESSAGING_HOST_INSTALLER, "native_messaging_host_installed"))
    return tuple(agents)


def _ssm_parameters() -> dict[str, str]:
    """SSM's own ``{{ name }}`` placeholders, passed through jinja untouched."""
    return {name: "{{ " + name + " }}" for name in ("rolloutWave", "deviceMap")}


def signin_portal_url(config: SiteConfig) -> str:
    """The IAM Identity Center access portal of the site's identity store (its default address)."""
    return f"https://{config.identity_store_id}.awsapps.com/start"


def render_kitting_document(config: SiteConfig, *, checkin_table_name: str) -> str:
    """Zero-touch kitting (YAML, schemaVersion 2.2) ending with the device's check-in."""
    return render(
        "ssm/kitting.yaml.j2",
        **_common(config, checkin_table_name),
        checkin_action="kitting",
        failure_metric=KITTING_FAILURE_METRIC,
        closed_network=config.closed_network,
        breakout_bypass=";".join(config.local_breakout_domains) or "<local>",
        signin_portal_url=signin_portal_url(config),
        private_app_domains=[app.domain for app in config.private_apps],
        extension_forcelist=CHROME_FORCELIST,
        extension_entry=f"{config.browser_extension_id};{CHROME_WEB_STORE_UPDATE_URL}",
        browser_extension=DEVICE_TRUST[config.device_trust_provider].browser_extension,
    )


def render_rollback_document(config: SiteConfig, *, checkin_table_name: str) -> str:
    """Rollback to the legacy VPN and proxy (YAML, schemaVersion 2.2) ending with the device's check-in."""
    return render(
        "ssm/rollback.yaml.j2",
        **_common(config, checkin_table_name),
        checkin_action="rollback",
        failure_metric=ROLLBACK_FAILURE_METRIC,
    )


def _common(config: SiteConfig, checkin_table_name: str) -> dict[str, object]:
    return {
        "site": config.site,
        "region": config.region,
        "p": _ssm_parameters(),
        "agents": site_agents(config),
        "agent_bucket": config.agent_bucket,
        "checkin_table_name": checkin_table_name,
        "checkin_retention_days": config.checkin_retention_days,
        "metric_namespace": metric_namespace(config.site),
        "legacy_proxy": config.legacy_proxy,
        "legacy_vpn_profile": config.legacy_vpn_profile,
        "legacy_vpn_server": config.legacy_vpn_server,
    }
