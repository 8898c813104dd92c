"""Cohorts of the fleet and the canary that covers them.

A cohort is a set of devices that share a value: of one cohort key (``model=FMV LIFEBOOK U9``), or
of a combination of keys (``model=...,os_version=11 23H2``; ``department=経理部,apps=会計システム``).
Multi-valued keys (apps, tags) put a device in one cohort per value. A cohort is *eligible* when at
least ``min_size`` devices of the rollout belong to it: only those are worth a canary.

The canary is chosen by greedy set cover: repeatedly take the device that covers the most eligible
cohorts not yet covered; ties go to a preferred device (IT volunteers, pilot users), then to the
smaller device id. Greedy cover is within a factor ln(n) of the smallest cover, and on real fleets
it is close to it: 84 cohorts of a 10,000-device fleet are covered by about 30 devices.

To stay fast at a million devices, devices are grouped by *signature* (their values of every key
involved): devices with the same signature belong to the same cohorts, so counting and the
greedy search work on signatures (a few thousand), not devices.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

from rollout.core.device import KEY_ALIASES, LIST_COLUMNS, REQUIRED_COLUMNS, Device

CohortKey = tuple[tuple[str, ...], tuple[str, ...]]  # (keys, values)


def cohort_label(keys: Sequence[str], values: Sequence[str]) -> str:
    """The cohort as a selector string: ``model=X,os_version=Y``."""
    return ",".join(f"{k}={v}" for k, v in zip(keys, values))


@dataclass(frozen=True, slots=True)
class Cohort:
    keys: tuple[str, ...]
    values: tuple[str, ...]
    size: int

    @property
    def label(self) -> str:
        return cohort_label(self.keys, self.values)


@dataclass(slots=True)
class Signature:
    """Devices (by index into the device list) sharing every value that cohorts are built from."""

    values: tuple[tuple[str, ...], ...]
    members: list[int] = field(default_factory=list)
    cohorts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CohortIndex:
    """Every cohort of the rollout's devices, which are eligible, and which signature has which."""

    cohorts: tuple[Cohort, ...]  # sorted by (keys, values): ids are stable
    eligible: frozenset[int]
    signatures: tuple[Signature, ...]
    signature_of: tuple[int, ...]  # device index -> signature index (-1: not in the rollout)


def _value_getter(keys: Sequence[str]) -> Callable[[Device], tuple[tuple[str, ...], ...]]:
    """A fast function returning the device's values for each key, each as a tuple."""
    canon = [KEY_ALIASES.get(k, k) for k in keys]
    if all(k in REQUIRED_COLUMNS or k in LIST_COLUMNS for k in canon):
        positions = [(Device._fields.index(k), k in LIST_COLUMNS) for k in canon]

        def get(d: Device) -> tuple[tuple[str, ...], ...]:
            return tuple(cast(tuple[str, ...], d[i]) if is_list else (cast(str, d[i]),) for i, is_list in positions)

        return get
    return lambda d: tuple(d.values_of(k) for k in canon)


def index_cohorts(
    devices: Sequence[Device],
    in_rollout: Sequence[bool],
    keys: Sequence[str],
    combinations: Sequence[Sequence[str]],
    min_size: int,
) -> CohortIndex:
    """Count the cohorts of the devices marked ``in_rollout`` and group devices by signature."""
    involved = list(dict.fromkeys([KEY_ALIASES.get(k, k) for k in itertools.chain(keys, *combinations)]))
    getter = _value_getter(involved)
    sig_ids: dict[tuple[tuple[str, ...], ...], int] = {}
    signatures: list[Signature] = []
    signature_of = [-1] * len(devices)
    for i, device in enumerate(devices):
        if not in_rollout[i]:
            continue
        values = getter(device)
        sid = sig_ids.get(values)
        if sid is None:
            sid = sig_ids[values] = len(signatures)
            signatures.append(Signature(values))
        signatures[sid].members.append(i)
        signature_of[i] = sid
    groups = [tuple(involved.index(KEY_ALIASES.get(k, k)) for k in g) for g in [[k] for k in keys] + list(combinations)]
    group_keys = [tuple(involved[p] for p in g) for g in groups]
    counts: dict[CohortKey, int] = {}
    sig_cohorts: list[list[CohortKey]] = []
    for sig in signatures:
        mine = [
            (gk, combo)
            for g, gk in zip(groups, group_keys)
            for combo in itertools.product(*(sig.values[p] for p in g))
        ]
        mine = list(dict.fromkeys(mine))
        for ck in mine:
            counts[ck] = counts.get(ck, 0) + len(sig.members)
        sig_cohorts.append(mine)
    ordered = sorted(counts)
    ids = {ck: n for n, ck in enumerate(ordered)}
    cohorts = tuple(Cohort(k, v, counts[(k, v)]) for k, v in ordered)
    for sig, mine in zip(signatures, sig_cohorts):
        sig.cohorts = tuple(sorted(ids[ck] for ck in mine))
    eligible = frozenset(n for n, c in enumerate(cohorts) if c.size >= min_size)
    return CohortIndex(cohorts, eligible, tuple(signatures), tuple(signature_of))


@dataclass(frozen=True, slots=True)
class CanaryPick:
    device: int  # index into the device list
    order: int  # 1 for the first pick
    new_cohorts: tuple[int, ...]  # eligible cohorts this pick covered first


def select_cover(
    index: CohortIndex,
    candidate_rank: Callable[[int], tuple[int, str] | None],
    take: Callable[[int], bool],
) -> tuple[list[CanaryPick], set[int]]:
    """Greedy (lazy) set cover of the eligible cohorts.

    ``candidate_rank(device)`` orders candidates within a signature (``(0, id)`` for preferred
    devices, ``(1, id)`` for the others) or returns None when the device may not be a canary;
    ``take(device)`` places the device in the canary if the wave's constraints allow it at that
    moment (size, site cap, separation) and says whether it did. Returns the picks in order and
    the eligible cohorts left uncovered.
    """
    uncovered = set(index.eligible)
    heap: list[tuple[int, tuple[int, str], int]] = []
    ranked: dict[int, list[tuple[tuple[int, str], int]]] = {}
    for sid, sig in enumerate(index.signatures):
        gain = sum(1 for c in sig.cohorts if c in uncovered)
        if gain == 0:
            continue
        cands = sorted((r, m) for m in sig.members if (r := candidate_rank(m)) is not None)
        if cands:
            ranked[sid] = cands
            heapq.heappush(heap, (-gain, cands[0][0], sid))
    picks: list[CanaryPick] = []
    while heap and uncovered:
        neg_gain, rank, sid = heapq.heappop(heap)
        fresh = tuple(c for c in index.signatures[sid].cohorts if c in uncovered)
        if not fresh:
            continue
        if len(fresh) != -neg_gain:
            heapq.heappush(heap, (-len(fresh), rank, sid))
            continue
        chosen = next((m for _, m in ranked[sid] if take(m)), None)
        if chosen is None:
            continue
        picks.append(CanaryPick(chosen, len(picks) + 1, fresh))
        uncovered.difference_update(fresh)
    return picks, uncovered


def cohorts_of_signature(index: CohortIndex, sid: int) -> Iterable[Cohort]:
    return (index.cohorts[c] for c in index.signatures[sid].cohorts)
