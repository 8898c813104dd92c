"""Tags every taggable resource of a site carries."""

from __future__ import annotations


def site_tags(site: str, site_kind: str) -> dict[str, str]:
    """``zt-rollout:site``, ``zt-rollout:site-kind`` and ``managed-by`` for one site's resources."""
    return {"zt-rollout:site": site, "zt-rollout:site-kind": site_kind, "managed-by": "pulumi"}
