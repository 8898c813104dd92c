"""zt-rollout guardrails policy pack: ``pulumi preview --policy-pack policy/``. Only builds the pack
(constructing it starts the analyzer server); the rules live in ``policy/guardrails.py``."""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.guardrails import POLICIES  # noqa: E402

PolicyPack(
    name="zt-rollout-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
)
