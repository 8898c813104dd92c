"""Spreading devices over waves under the policy's constraints.

The rule, in the order it is applied:

1. Devices get a *spread order*: the first 8 bytes of BLAKE2b(device_id), as an integer. It is a
   fixed pseudo-random shuffle, the same on every machine, so every wave is a cross-section of the
   fleet, and a device keeps its place when others are added or removed (small diffs in review).
2. Devices with a ``last_tags`` tag are placed first, from the last wave backwards: each goes to
   the latest wave that still has room and meets the constraints. Tags listed later go later
   (with ``[vip, critical-ops]``, critical-ops devices take the last wave before vip devices).
3. All other devices fill waves from the first forwards: each goes to the first wave that has room.

A wave has room for a device when it holds fewer devices than its size, fewer devices of the
device's site than ``max_per_site_per_wave``, and, for every ``separate_sites`` rule the device
falls under, no device of another site of that rule. A device with no wave that has room is
unplaced; ``Placement.unplaced`` keeps why, for the infeasibility report.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rollout.core.device import Device
from rollout.plan.policy import Constraints

# Why a device sits in its wave; kept per device for ``rollout plan explain``.
FILLED = 0  # the first (or, for last tags, the latest) wave with room
SKIPPED_SIZE = 1  # waves before it were full
SKIPPED_SITE_CAP = 2  # a wave with room overall was full for the device's site
SKIPPED_SEPARATION = 4  # a wave held a device of a site this one must not share a wave with


def spread_key(device_id: str) -> int:
    """The device's place in the spread order (see the module docstring)."""
    return int.from_bytes(hashlib.blake2b(device_id.encode("utf-8"), digest_size=8).digest(), "big")


@dataclass(slots=True)
class WaveFill:
    """Devices placed in one wave so far and the counters the constraints read."""

    capacity: int
    members: list[int] = field(default_factory=list)
    per_site: Counter[str] = field(default_factory=Counter)
    separated: set[tuple[int, str]] = field(default_factory=set)  # (rule index, site)


@dataclass(slots=True)
class Placement:
    waves: list[WaveFill]
    wave_of: list[int]  # device index -> wave index, -1 when not placed
    why: bytearray  # device index -> SKIPPED_* bits
    unplaced: list[tuple[int, int]] = field(default_factory=list)  # (device, SKIPPED_* bits seen)


class Assigner:
    """Places devices one at a time into waves, honouring size, site caps and site separation."""

    def __init__(self, devices: Sequence[Device], constraints: Constraints, capacities: Sequence[int]) -> None:
        self.devices = devices
        self.constraints = constraints
        self.rules = [
            (set(rule.sites), set(rule.tags)) for rule in constraints.separate_sites
        ]
        self.placement = Placement(
            [WaveFill(c) for c in capacities], [-1] * len(devices), bytearray(len(devices))
        )
        self._caps: dict[str, int | None] = {}

    def cap(self, site: str) -> int | None:
        if site not in self._caps:
            self._caps[site] = self.constraints.site_cap(site)
        return self._caps[site]

    def separation_keys(self, device: Device) -> list[tuple[int, str]]:
        """The (rule, site) pairs this device counts under."""
        return [
            (r, device.site)
            for r, (sites, tags) in enumerate(self.rules)
            if device.site in sites and (not tags or not tags.isdisjoint(device.tags))
        ]

    def refusal(self, wave: int, device: Device, sep: list[tuple[int, str]]) -> int:
        """0 when ``wave`` has room for ``device``, else the SKIPPED_* bit that refuses it."""
        fill = self.placement.waves[wave]
        if len(fill.members) >= fill.capacity:
            return SKIPPED_SIZE
        cap = self.cap(device.site)
        if cap is not None and fill.per_site[device.site] >= cap:
            return SKIPPED_SITE_CAP
        for rule, site in sep:
            for other in self.rules[rule][0]:
                if other != site and (rule, other) in fill.separated:
                    return SKIPPED_SEPARATION
        return 0

    def place(self, index: int, waves: Sequence[int], seen: int = 0) -> bool:
        """Put device ``index`` in the first of ``waves`` with room; record why others refused.

        ``seen`` carries refusals already known (waves the caller skipped as full).
        """
        device = self.devices[index]
        sep = self.separation_keys(device)
        for wave in waves:
            refused = self.refusal(wave, device, sep)
            if refused:
                seen |= refused
                continue
            self.put(index, wave, sep)
            self.placement.why[index] = seen
            return True
        self.placement.unplaced.append((index, seen))
        return False

    def put(self, index: int, wave: int, sep: list[tuple[int, str]] | None = None) -> None:
        device = self.devices[index]
        fill = self.placement.waves[wave]
        fill.members.append(index)
        fill.per_site[device.site] += 1
        fill.separated.update(self.separation_keys(device) if sep is None else sep)
        self.placement.wave_of[index] = wave


def last_tag_rank(device: Device, last_tags: Sequence[str]) -> int:
    """0 for devices without a last tag; else 1 + the position of its latest-listed last tag."""
    rank = 0
    for pos, tag in enumerate(last_tags):
        if tag in device.tags:
            rank = pos + 1
    return rank


def spread(
    assigner: Assigner, pending: Sequence[int], first_wave: int, last_tags: Sequence[str]
) -> None:
    """Place ``pending`` devices over waves ``first_wave..`` by the rule of the module docstring."""
    devices = assigner.devices
    ranked = sorted(
        ((last_tag_rank(devices[i], last_tags), spread_key(devices[i].device_id), devices[i].device_id, i)
         for i in pending),
    )
    n = len(assigner.placement.waves)
    backward = range(n - 1, first_wave - 1, -1)
    tagged = [item for item in ranked if item[0] > 0]
    tagged.sort(key=lambda item: (-item[0], item[1], item[2]))
    for _, _, _, i in tagged:
        assigner.place(i, backward)
    start = first_wave
    for rank, _, _, i in ranked:
        if rank:
            continue
        # Waves before ``start`` are full by size: skip them without looking.
        while start < n and len(assigner.placement.waves[start].members) >= assigner.placement.waves[start].capacity:
            start += 1
        assigner.place(i, range(start, n), SKIPPED_SIZE if start > first_wave else 0)
