"""Which devices each Verified Access device trust provider works with, and what it needs on the device: pure data.

``stacks.config.deployment_problems`` refuses a provider that does not support the platform the
documents kit (:data:`KITTED_PLATFORMS`); ``stacks.documents`` kits what the provider needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .config import DeviceTrustProvider


@dataclass(frozen=True, slots=True)
class DeviceTrustSupport:
    """What a Verified Access device trust provider works with, from the AWS Verified Access User Guide,
    "Third-party trust provider context for Verified Access trust data" (browser extension section):
    "Jamf (which supports macOS devices), CrowdStrike (which supports Windows 11 and Windows 10
    devices), and JumpCloud (which supports both Windows and MacOS)"; CrowdStrike trust data also
    needs the AWS Verified Access Native Messaging Host installed, then the AWS Verified Access
    browser extension; Jamf the AWS Verified Access extension; JumpCloud its own extension. Platforms
    are SSM ``platformType`` values; Verified Access supports Chrome and Firefox."""

    platforms: frozenset[str]
    browser_extension: str
    native_messaging_host: bool
    #: The provider's EDR agent for Windows: (installer object key, token property, service name).
    windows_agent: tuple[str, str, str] | None


DEVICE_TRUST: Final[dict[DeviceTrustProvider, DeviceTrustSupport]] = {
    DeviceTrustProvider.CROWDSTRIKE: DeviceTrustSupport(
        frozenset({"Windows"}), "AWS Verified Access", True,
        ("crowdstrike-falcon-sensor.msi", "CID", "CSFalconService")),
    DeviceTrustProvider.JAMF: DeviceTrustSupport(frozenset({"MacOS"}), "AWS Verified Access", False, None),
    DeviceTrustProvider.JUMPCLOUD: DeviceTrustSupport(
        frozenset({"Windows", "MacOS"}), "JumpCloud", False,
        ("jumpcloud-agent.msi", "JCINSTALLERARGUMENTS", "jumpcloud-agent")),
}

#: The platforms the kitting and rollback documents kit (every step's ``platformType`` precondition).
KITTED_PLATFORMS: Final = frozenset({"Windows"})

