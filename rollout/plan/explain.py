"""Why a device is in its wave: ``rollout plan explain DEVICE_ID``.

The planner keeps, per device, the refusals it met (``rollout.plan.assign``) and, for canaries, the
greedy pick that chose them (``rollout.plan.cohorts``); this module turns those into sentences and
lists the device's cohorts with whether the canary covers each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollout.errors import NotFoundError
from rollout.plan.assign import (
    SKIPPED_SEPARATION,
    SKIPPED_SITE_CAP,
    SKIPPED_SIZE,
    last_tag_rank,
    spread_key,
)
from rollout.plan.cohorts import CanaryPick, CohortIndex
from rollout.plan.inventory import Inventory
from rollout.plan.planner import Plan
from rollout.plan.policy import Policy


@dataclass(frozen=True, slots=True)
class Explanation:
    device_id: str
    wave: str | None
    reasons: tuple[str, ...]
    cohorts: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "wave": self.wave, "reasons": list(self.reasons),
                "cohorts": list(self.cohorts)}


def explain_device(plan: Plan, inventory: Inventory, policy: Policy, device_id: str) -> Explanation:
    index: dict[str, int] = plan.reasons["index"]
    if device_id not in index:
        raise NotFoundError(f"device {device_id!r} is not in {inventory.source}; check the id with `rollout plan`.")
    excluded = dict(plan.excluded)
    if device_id in excluded:
        return Explanation(device_id, None, (f"excluded from the rollout: {excluded[device_id]}",), ())
    wave = plan.wave_of(device_id)
    assert wave is not None, "every device of the rollout is in a wave of a feasible plan"
    i = index[device_id]
    device = inventory.devices[i]
    pick: CanaryPick | None = plan.reasons["picks"].get(device_id)
    cohorts: CohortIndex = plan.reasons["cohorts"]
    if pick is not None:
        labels = ", ".join(cohorts.cohorts[c].label for c in pick.new_cohorts)
        reasons = [f"canary pick {pick.order} of {len(plan.reasons['picks'])}: the first device to cover "
                   f"{len(pick.new_cohorts)} cohort(s): {labels}"]
        if set(device.tags) & set(policy.cohorts.prefer_tags):
            reasons.append(f"preferred as a canary: tagged {'/'.join(set(device.tags) & set(policy.cohorts.prefer_tags))}")
    elif wave.canary:
        reasons = [f"fills the canary up to its size of {wave.size_rule} devices"
                   + (" (a preferred device)" if set(device.tags) & set(policy.cohorts.prefer_tags) else "")]
    else:
        reasons = _spread_reasons(plan, inventory, policy, i, wave.name)
    return Explanation(device_id, wave.name, tuple(reasons), tuple(_cohort_rows(plan, cohorts, i)))


def _spread_reasons(plan: Plan, inventory: Inventory, policy: Policy, i: int, wave: str) -> list[str]:
    device = inventory.devices[i]
    last = policy.constraints.last_tags
    rank = last_tag_rank(device, last)
    why = plan.reasons["why"][i]
    key = spread_key(device.device_id)
    excluded = {d for d, _ in plan.excluded}
    peers = [d for d in inventory.devices if d.device_id not in excluded and last_tag_rank(d, last) == rank]
    position = 1 + sum(1 for d in peers if spread_key(d.device_id) < key)
    if rank:
        tag = last[rank - 1]
        reasons = [f"tagged {tag}, which goes last: placed in the latest wave with room ({wave}); "
                   f"{position:,} of {len(peers):,} such devices in spread order"]
        later = "later waves"
    else:
        reasons = [f"spread order position {position:,} of {len(peers):,}: placed in the first wave with room ({wave})"]
        later = "earlier waves"
    if why & SKIPPED_SIZE:
        reasons.append(f"{later} were full")
    if why & SKIPPED_SITE_CAP:
        cap = policy.constraints.site_cap(device.site)
        reasons.append(f"{later} had reached the cap of {cap:,} devices of site {device.site}")
    if why & SKIPPED_SEPARATION:
        reasons.append(f"{later} held devices of a site that site {device.site} must not share a wave with "
                       "(constraints.separate_sites)")
    return reasons


def _cohort_rows(plan: Plan, cohorts: CohortIndex, i: int) -> list[dict[str, Any]]:
    sid = cohorts.signature_of[i]
    if sid < 0:
        return []
    canary_of: dict[int, str] = {}
    for device_id, pick in sorted(plan.reasons["picks"].items(), key=lambda kv: kv[1].order):
        for c in cohorts.signatures[cohorts.signature_of[pick.device]].cohorts:
            canary_of.setdefault(c, device_id)
    return [
        {"cohort": cohorts.cohorts[c].label, "devices": cohorts.cohorts[c].size, "eligible": c in cohorts.eligible,
         "canary": canary_of.get(c)}
        for c in cohorts.signatures[sid].cohorts
    ]
