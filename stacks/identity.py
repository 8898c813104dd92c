"""Identity: the site's IAM Identity Center groups and its Verified Access user trust provider.

Membership of ``migrated`` is what the site's Verified Access policy admits; ``pilot`` marks the
users of the canary waves. The orchestrator moves users into and out of both at run time; the stack
never lists members, so ``pulumi up`` stays fast and a rollback is not a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_aws import identitystore, verifiedaccess

from .documents import USER_POLICY_REFERENCE
from .tags import site_tags


@dataclass(frozen=True, slots=True)
class IdentityArgs:
    site: str
    site_kind: str
    identity_store_id: str
    home_provider: pulumi.ProviderResource | None = None  # IAM Identity Center's home region, when not the stack's


class IdentityComponent(pulumi.ComponentResource):
    """Groups ``zt-rollout-<site>-pilot`` and ``-migrated`` plus an iam-identity-center trust provider."""

    pilot_group_id: pulumi.Output[str]
    migrated_group_id: pulumi.Output[str]
    user_trust_provider_id: pulumi.Output[str]

    def __init__(self, name: str, args: IdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zt-rollout:site:Identity", name, None, opts)
        # Groups and the IAM Identity Center trust provider both live in Identity Center's home region:
        # "Your IAM Identity Center instance must be enabled in the same AWS Region that you want to create
        # the Verified Access trust provider in" (AWS Verified Access User Guide, user trust providers).
        home = pulumi.ResourceOptions(parent=self, provider=args.home_provider)
        pilot = identitystore.Group(
            f"{name}-pilot",
            identity_store_id=args.identity_store_id,
            display_name=f"zt-rollout-{args.site}-pilot",
            description=f"Pilot users of the zero-trust rollout at {args.site}; managed by the orchestrator.",
            opts=home,
        )
        migrated = identitystore.Group(
            f"{name}-migrated",
            identity_store_id=args.identity_store_id,
            display_name=f"zt-rollout-{args.site}-migrated",
            description=f"Users switched to zero-trust access at {args.site}; admitted by Verified Access.",
            opts=home,
        )
        provider = verifiedaccess.TrustProvider(
            f"{name}-users",
            trust_provider_type="user",
            user_trust_provider_type="iam-identity-center",
            policy_reference_name=USER_POLICY_REFERENCE,
            description=f"IAM Identity Center users of {args.site}",
            tags=site_tags(args.site, args.site_kind),
            opts=home,
        )
        self.pilot_group_id = pilot.group_id
        self.migrated_group_id = migrated.group_id
        self.user_trust_provider_id = provider.id
        self.register_outputs(
            {
                "pilot_group_id": self.pilot_group_id,
                "migrated_group_id": self.migrated_group_id,
                "user_trust_provider_id": self.user_trust_provider_id,
            }
        )
