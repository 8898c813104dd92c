"""Saying which constraint a plan cannot meet, and by how much.

Each device the assigner could not place carries the refusals it met (``rollout.plan.assign``). A device
is blamed on the constraint that refused it where the wave still had room overall: the per-site
cap, then site separation; a device that only met full waves is blamed on the wave sizes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from rollout.core.device import Device
from rollout.errors import Problem
from rollout.plan.assign import (
    SKIPPED_SEPARATION,
    SKIPPED_SITE_CAP,
    Assigner,
    Placement,
)
from rollout.plan.policy import Policy


def describe_unplaced(placement: Placement, devices: Sequence[Device], policy: Policy) -> list[Problem]:
    first = 1 if policy.waves[0].canary else 0
    waves = placement.waves[first:]
    by_size: list[int] = []
    by_cap: Counter[str] = Counter()
    by_rule: Counter[tuple[int, str]] = Counter()
    helper = Assigner(devices, policy.constraints, [])
    for index, seen in placement.unplaced:
        device = devices[index]
        if seen & SKIPPED_SITE_CAP:
            by_cap[device.site] += 1
        elif seen & SKIPPED_SEPARATION:
            for rule, site in helper.separation_keys(device):
                by_rule[(rule, site)] += 1
        else:
            by_size.append(index)
    problems = []
    if by_size:
        held = sum(w.capacity for w in waves)
        needed = held + len(by_size)
        problems.append(Problem(
            "policy", "waves",
            f"the waves after the canary hold {held:,} devices but {needed:,} need a place: {len(by_size):,} short; "
            "make the last wave's size 'rest', or enlarge the waves",
        ))
    problems += _site_cap_problems(by_cap, placement, devices, policy, first)
    problems += _separation_problems(by_rule, policy)
    return problems


def _site_cap_problems(
    by_cap: Counter[str], placement: Placement, devices: Sequence[Device], policy: Policy, first: int
) -> list[Problem]:
    out = []
    n_waves = len(placement.waves) - first
    for site, short in sorted(by_cap.items()):
        cap = policy.constraints.site_cap(site) or 0
        total = sum(1 for w in placement.waves[first:] for i in w.members if devices[i].site == site) + short
        need = math.ceil(total / max(n_waves, 1))
        out.append(Problem(
            "policy", f"constraints.max_per_site_per_wave.{site}",
            f"{short:,} of the {total:,} devices of site {site} find no wave under the cap of {cap:,} per wave "
            f"({n_waves} waves after the canary): raise the cap for {site} to at least {need:,}, or add waves",
        ))
    return out


def _separation_problems(by_rule: Counter[tuple[int, str]], policy: Policy) -> list[Problem]:
    out = []
    for (rule, site), short in sorted(by_rule.items()):
        spec = policy.constraints.separate_sites[rule]
        others = "/".join(s for s in spec.sites if s != site)
        scope = f" tagged {'/'.join(spec.tags)}" if spec.tags else ""
        out.append(Problem(
            "policy", f"constraints.separate_sites[{rule}]",
            f"{short:,} devices{scope} of site {site} find no wave without a device of {others}: "
            f"these sites need {len(spec.sites)} different waves with room; add a wave or enlarge the last ones",
        ))
    return out
