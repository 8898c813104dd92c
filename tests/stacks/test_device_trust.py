"""Device trust matches the devices, by the AWS Verified Access User Guide ("Third-party trust provider
context for Verified Access trust data"): Jamf supports macOS only, CrowdStrike Windows 10 and 11,
JumpCloud both; CrowdStrike's trust data reaches Verified Access only through the AWS Verified Access
Native Messaging Host and browser extension on the device, JumpCloud's through its own extension."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from rollout.core.contract import CHECK_SIGNALS
from stacks.config import DeviceTrustProvider, SiteConfigError, load_site_config
from stacks.device_trust import DEVICE_TRUST, KITTED_PLATFORMS
from stacks.documents import (
    CHROME_FORCELIST,
    CHROME_WEB_STORE_UPDATE_URL,
    NATIVE_MESSAGING_HOST_INSTALLER,
    render_kitting_document,
    render_rollback_document,
)

from .builders import BASE, make_site_config
from .conftest import EXAMPLE_SITES, stack_config
from .powershell import commands

EXTENSION = BASE["browserExtensionId"]


def kitting(provider: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = yaml.safe_load(render_kitting_document(
        make_site_config(deviceTrustProvider=provider), checkin_table_name="t"))["mainSteps"]
    return steps


def script(steps: list[dict[str, Any]], name: str) -> str:
    return "\n".join(next(s for s in steps if s["name"] == name)["inputs"]["runCommand"])


def test_the_guides_platforms() -> None:
    assert DEVICE_TRUST[DeviceTrustProvider.JAMF].platforms == {"MacOS"}
    assert DEVICE_TRUST[DeviceTrustProvider.CROWDSTRIKE].platforms == {"Windows"}
    assert DEVICE_TRUST[DeviceTrustProvider.JUMPCLOUD].platforms == {"Windows", "MacOS"}
    assert [p for p, s in DEVICE_TRUST.items() if s.native_messaging_host] == [DeviceTrustProvider.CROWDSTRIKE]


@pytest.mark.parametrize("provider", ["crowdstrike", "jumpcloud"])
def test_the_documents_kit_exactly_the_platforms_the_check_assumes(provider: str) -> None:
    config = make_site_config(deviceTrustProvider=provider)
    for render in (render_kitting_document, render_rollback_document):
        steps = yaml.safe_load(render(config, checkin_table_name="t"))["mainSteps"]
        platforms = {step["precondition"]["StringEquals"][1] for step in steps}
        assert platforms == KITTED_PLATFORMS


def site(provider: str) -> dict[str, str]:
    config = {**stack_config("fukuoka"), "zt-rollout:deviceTrustProvider": provider}
    config["zt-rollout:deviceTrustTenantId"] = "tenant-1"
    return config


@pytest.mark.parametrize("provider", [p.value for p in DeviceTrustProvider])
def test_a_provider_is_accepted_exactly_when_it_supports_the_kitted_platform(provider: str) -> None:
    supports = KITTED_PLATFORMS <= DEVICE_TRUST[DeviceTrustProvider(provider)].platforms
    if supports:
        assert load_site_config(site(provider).get, stack="fukuoka").device_trust_provider.value == provider
    else:
        with pytest.raises(SiteConfigError) as refused:
            load_site_config(site(provider).get, stack="fukuoka")
        assert (f"zt-rollout:deviceTrustProvider: {provider} device trust supports MacOS only, but the kitting "
                "document kits Windows devices: use crowdstrike or jumpcloud") in str(refused.value)


@pytest.mark.parametrize("site_name", EXAMPLE_SITES)
def test_every_example_stack_has_device_trust_for_its_windows_devices(site_name: str) -> None:
    config = load_site_config(stack_config(site_name).get, stack=site_name)
    assert KITTED_PLATFORMS <= DEVICE_TRUST[config.device_trust_provider].platforms
    assert "jamf-protect" not in render_kitting_document(config, checkin_table_name="t")


def installs(text: str, installer: str) -> bool:
    calls = commands(text)
    downloads = any(c.name == "aws" and c.positional[:2] == ("s3", "cp") and installer in " ".join(c.positional)
                    for c in calls)
    return downloads and any(c.name == "Start-Process" and c.positional[:1] == ("msiexec.exe",) for c in calls)


def test_crowdstrike_kitting_installs_the_native_messaging_host_and_forces_the_extension_and_checks_both() -> None:
    steps = kitting("crowdstrike")
    names = [s["name"] for s in steps]
    assert installs(script(steps, "installNativeMessagingHost"), NATIVE_MESSAGING_HOST_INSTALLER)
    assert names.index("installNativeMessagingHost") < names.index("configureBrowserExtension") \
        < names.index("applySiteSettings"), "posture prerequisites come before legacy access is touched"
    extension = script(steps, "configureBrowserExtension")
    assert f"'{CHROME_FORCELIST}'" in extension and f"'{EXTENSION};{CHROME_WEB_STORE_UPDATE_URL}'" in extension
    assert any(c.name == "New-ItemProperty" and c.named.get("PropertyType") == "String" for c in commands(extension))
    checks = script(steps, "runHealthChecks")
    for check in ("native_messaging_host_installed", "browser_extension_forced"):
        assert f"'{check}' = " in checks
        assert check in CHECK_SIGNALS["kitting"]


def test_jumpcloud_kitting_forces_its_extension_and_needs_no_native_messaging_host() -> None:
    steps = kitting("jumpcloud")
    assert "installNativeMessagingHost" not in [s["name"] for s in steps]
    assert f"'{EXTENSION};{CHROME_WEB_STORE_UPDATE_URL}'" in script(steps, "configureBrowserExtension")
    assert "'browser_extension_forced' = " in script(steps, "runHealthChecks")


def test_jamf_has_no_windows_agent_to_kit() -> None:
    from stacks.documents import site_agents

    with pytest.raises(ValueError, match="jamf device trust has no Windows agent"):
        site_agents(make_site_config(deviceTrustProvider="jamf", deviceTrustTenantId="t-1"))
