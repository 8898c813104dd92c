"""The wave planner: a pure function of (inventory, policy) to an immutable, hashed plan.

``plan_waves(inventory, policy)`` does, in order:

1. exclusions: devices listed or matched by ``constraints.exclude`` leave the rollout;
2. cohorts (``rollout.plan.cohorts``): every cohort of the remaining devices and which are eligible;
3. canary (first wave, if ``canary: true``): the greedy cover of the eligible cohorts, then, if
   the canary's size is larger, filled with preferred devices (IT volunteers, pilot users) and
   then the spread order; devices with a ``last_tags`` tag are never canaries;
4. the other devices spread over the other waves (``rollout.plan.assign``);
5. the schedule (``rollout.plan.schedule``).

If a constraint cannot be met, InfeasiblePlanError names it and by how much; no plan is returned.
The same inputs give the same plan and hash on any machine: nothing depends on file order, dict
order or hash seeds (sets are only used for membership, every output is sorted).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rollout.core.canonical import sha256_of
from rollout.core.device import Device
from rollout.core.selectors import Selector, SelectorSyntaxError, first_matches
from rollout.errors import InfeasiblePlanError, InventoryError, PolicyError, Problem
from rollout.plan.assign import Assigner, Placement, last_tag_rank, spread, spread_key
from rollout.plan.cohorts import CanaryPick, CohortIndex, index_cohorts, select_cover
from rollout.plan.infeasible import describe_unplaced
from rollout.plan.inventory import Inventory
from rollout.plan.policy import Policy
from rollout.plan.schedule import WaveDates, plan_schedule

PLAN_SCHEMA = "zt-rollout/plan/v1"


@dataclass(frozen=True, slots=True)
class PlannedWave:
    index: int
    name: str
    canary: bool
    size_rule: str
    devices: tuple[str, ...]  # sorted device ids
    bake_seconds: int
    approvals: tuple[str, ...]
    sites: tuple[tuple[str, int], ...]  # sorted (site, devices)
    dates: WaveDates
    hash: str
    gates: Mapping[str, Any]  # the wave's GateSpec as JSON



def wave_content(
    index: int, name: str, canary: bool, devices: Sequence[str], bake_seconds: int, approvals: Sequence[str],
    gates: Mapping[str, Any],
) -> dict[str, Any]:
    """What a wave's hash covers: who moves, how long it bakes, who must approve, how it is judged."""
    return {"index": index, "name": name, "canary": canary, "devices": list(devices),
            "bake_seconds": bake_seconds, "approvals": list(approvals), "gates": dict(gates)}


@dataclass(frozen=True, slots=True)
class UncoveredCohort:
    label: str
    size: int
    reason: str


@dataclass(frozen=True, slots=True)
class Coverage:
    cohorts_total: int
    cohorts_covered: int
    devices_in_rollout: int
    devices_covered: int
    uncovered: tuple[UncoveredCohort, ...]

    @property
    def fleet_share_covered(self) -> float:
        return round(self.devices_covered / self.devices_in_rollout, 4) if self.devices_in_rollout else 0.0


@dataclass(frozen=True)
class Plan:
    rollout: str
    policy_sha256: str
    inventory_sha256: str
    devices_total: int
    waves: tuple[PlannedWave, ...]
    excluded: tuple[tuple[str, str], ...]  # sorted (device id, reason)
    coverage: Coverage
    start_date: dt.date
    projected_completion: dt.date
    warnings: tuple[str, ...]
    plan_hash: str
    # For ``explain``: how each device got where it is (not part of the JSON or the hash).
    reasons: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def wave_of(self, device_id: str) -> PlannedWave | None:
        """The wave that holds ``device_id``, or None (excluded or unknown)."""
        index, wave_of = self.reasons.get("index"), self.reasons.get("wave_of")
        if index is not None and wave_of is not None:
            i = index.get(device_id)
            return None if i is None or wave_of[i] < 0 else self.waves[wave_of[i]]
        return next((w for w in self.waves if device_id in w.devices), None)


def plan_waves(inventory: Inventory, policy: Policy) -> Plan:
    """Plan ``inventory`` under ``policy`` (see the module docstring for the rule)."""
    devices = inventory.devices
    _check_sites(inventory, policy)
    excluded, warnings = _exclusions(inventory, policy)
    in_rollout = [i not in excluded for i in range(len(devices))]
    cohorts = index_cohorts(devices, in_rollout, policy.cohorts.keys, policy.cohorts.combinations,
                            policy.cohorts.min_size)
    eligible_count = sum(in_rollout)
    capacities = _capacities(policy, eligible_count)
    assigner = Assigner(devices, policy.constraints, capacities)
    picks: list[CanaryPick] = []
    uncovered: set[int] = set()
    if policy.waves[0].canary:
        picks, uncovered = _choose_canary(assigner, cohorts, policy, in_rollout)
    pending = [i for i in range(len(devices)) if in_rollout[i] and assigner.placement.wave_of[i] < 0]
    first = 1 if policy.waves[0].canary else 0
    _resize_rest(assigner, policy, len(pending))
    spread(assigner, pending, first, policy.constraints.last_tags)
    _raise_if_unplaced(assigner.placement, devices, policy)
    return _assemble(inventory, policy, assigner.placement, cohorts, picks, uncovered, excluded, warnings)


def _check_sites(inventory: Inventory, policy: Policy) -> None:
    if policy.sites is None:
        return
    known = set(policy.sites)
    problems = [Problem(f"{inventory.source}", "site", f"device {d.device_id}: unknown site {d.site!r}")
                for d in inventory.devices if d.site not in known]
    if problems:
        raise InventoryError(problems, source=inventory.source)


def _exclusions(inventory: Inventory, policy: Policy) -> tuple[dict[int, str], list[str]]:
    rule = policy.constraints.exclude
    by_id = {d.device_id: i for i, d in enumerate(inventory.devices)}
    excluded: dict[int, str] = {}
    warnings = [f"constraints.exclude.devices: {d} is not in the inventory" for d in rule.devices if d not in by_id]
    for device_id in rule.devices:
        if device_id in by_id:
            excluded[by_id[device_id]] = "listed in constraints.exclude.devices"
    problems: list[Problem] = []
    selectors: list[Selector] = []
    for n, text in enumerate(rule.selectors):
        try:
            selectors.append(Selector.parse(text, known_keys=inventory.keys()))
        except SelectorSyntaxError as err:
            problems.append(Problem("policy", f"constraints.exclude.selectors[{n}]", str(err)))
    if problems:
        raise PolicyError(problems)
    for i, hit in enumerate(first_matches(selectors, inventory.devices)):
        if hit >= 0 and i not in excluded:
            excluded[i] = f"matches constraints.exclude selector {selectors[hit]}"
    return excluded, warnings


def _capacities(policy: Policy, eligible: int) -> list[int]:
    """Each wave's size in devices; the canary's is its ceiling (unbounded if not given)."""
    out = []
    for wave in policy.waves:
        if wave.size is None:
            out.append(eligible)
        else:
            out.append(wave.size.resolve(eligible, eligible))
    return out


def _resize_rest(assigner: Assigner, policy: Policy, pending: int) -> None:
    """A ``rest`` wave holds whatever the other non-canary waves leave of ``pending``."""
    waves = assigner.placement.waves
    if policy.waves[-1].size is None or policy.waves[-1].size.kind != "rest" or len(waves) < 2:
        return
    first = 1 if policy.waves[0].canary else 0
    others = sum(w.capacity for w in waves[first:-1])
    waves[-1].capacity = max(pending - others, 0)


def _choose_canary(
    assigner: Assigner, cohorts: CohortIndex, policy: Policy, in_rollout: Sequence[bool]
) -> tuple[list[CanaryPick], set[int]]:
    devices = assigner.devices
    prefer = set(policy.cohorts.prefer_tags)
    last = policy.constraints.last_tags

    def rank(i: int) -> tuple[int, str] | None:
        d = devices[i]
        if last_tag_rank(d, last):
            return None
        return (0 if not prefer.isdisjoint(d.tags) else 1, d.device_id)

    def take(i: int) -> bool:
        sep = assigner.separation_keys(devices[i])
        if assigner.refusal(0, devices[i], sep):
            return False
        assigner.put(i, 0, sep)
        return True

    picks, uncovered = select_cover(cohorts, rank, take)
    if uncovered and policy.waves[0].size is not None:
        _raise_if_canary_too_small(cohorts, rank, policy, len(picks), uncovered)
    size = policy.waves[0].size
    if size is not None:
        fill = sorted(
            (rank(i) or (2, ""), spread_key(devices[i].device_id), i)
            for i in range(len(devices))
            if in_rollout[i] and assigner.placement.wave_of[i] < 0 and rank(i) is not None
        )
        for _, _, i in fill:
            if len(assigner.placement.waves[0].members) >= assigner.placement.waves[0].capacity:
                break
            take(i)
    return picks, uncovered


def _raise_if_canary_too_small(
    cohorts: CohortIndex, rank: Any, policy: Policy, got: int, uncovered: set[int]
) -> None:
    """If a larger canary would cover more, the canary size is the binding constraint: say by how much."""
    full, left = select_cover(cohorts, rank, lambda i: True)
    if len(left) >= len(uncovered):
        return
    size = policy.waves[0].size
    raise InfeasiblePlanError([Problem(
        "policy", "waves[0].size",
        f"covering {len(cohorts.eligible) - len(left)} cohorts of at least {policy.cohorts.min_size} devices "
        f"needs {len(full)} canary devices; the canary allows {size} and covers only "
        f"{len(cohorts.eligible) - len(uncovered)} with {got}: raise waves[0].size by at least {len(full) - got}, "
        f"or raise cohorts.min_size",
    )])


def _raise_if_unplaced(placement: Placement, devices: Sequence[Device], policy: Policy) -> None:
    if not placement.unplaced:
        return
    raise InfeasiblePlanError(describe_unplaced(placement, devices, policy))


def _assemble(
    inventory: Inventory,
    policy: Policy,
    placement: Placement,
    cohorts: CohortIndex,
    picks: list[CanaryPick],
    uncovered: set[int],
    excluded: dict[int, str],
    warnings: list[str],
) -> Plan:
    devices = inventory.devices
    buckets = [Counter((devices[i].site, devices[i].department) for i in w.members) for w in placement.waves]
    dates, problems = plan_schedule(policy, buckets)
    if problems:
        raise InfeasiblePlanError(problems)
    waves = tuple(_wave(policy, n, fill.members, devices, dates[n]) for n, fill in enumerate(placement.waves))
    coverage = _coverage(cohorts, picks, uncovered, devices, policy)
    excluded_list = tuple(sorted((devices[i].device_id, why) for i, why in excluded.items()))
    body = {
        "rollout": policy.rollout,
        "waves": [{"hash": w.hash, "start": str(w.dates.start), "end": str(w.dates.end),
                   "bake_until": str(w.dates.bake_until)} for w in waves],
        "excluded": [list(e) for e in excluded_list],
        "coverage": coverage_json(coverage),
    }
    reasons = {"why": bytes(placement.why), "wave_of": placement.wave_of, "picks": {devices[p.device].device_id: p for p in picks},
               "cohorts": cohorts, "index": {d.device_id: i for i, d in enumerate(devices)}}
    return Plan(
        rollout=policy.rollout, policy_sha256=policy.sha256(), inventory_sha256=inventory.sha256,
        devices_total=len(devices), waves=waves, excluded=excluded_list, coverage=coverage,
        start_date=policy.schedule.start_date, projected_completion=dates[-1].bake_until if dates else
        policy.schedule.start_date, warnings=tuple(warnings), plan_hash=sha256_of(body), reasons=reasons,
    )


def _wave(policy: Policy, n: int, members: list[int], devices: Sequence[Device], dates: WaveDates) -> PlannedWave:
    spec = policy.waves[n]
    ids = tuple(sorted(devices[i].device_id for i in members))
    sites = tuple(sorted(Counter(devices[i].site for i in members).items()))
    size_rule = str(spec.size) if spec.size is not None else "cover"
    approvals = policy.approvals_for(spec)
    gates = policy.gates_for(spec).model_dump(mode="json", by_alias=True)
    digest = sha256_of(wave_content(n, spec.name, spec.canary, ids, spec.bake, approvals, gates))
    return PlannedWave(n, spec.name, spec.canary, size_rule, ids, spec.bake, approvals, sites, dates, digest, gates)


def _coverage(
    cohorts: CohortIndex, picks: list[CanaryPick], uncovered: set[int], devices: Sequence[Device], policy: Policy
) -> Coverage:
    canary_sigs = {cohorts.signature_of[p.device] for p in picks}
    has_canary = {c for sid in canary_sigs for c in cohorts.signatures[sid].cohorts}
    in_rollout = sum(len(s.members) for s in cohorts.signatures)
    covered_devices = sum(len(s.members) for s in cohorts.signatures if all(c in has_canary for c in s.cohorts))
    if not policy.waves[0].canary:
        uncovered = set(cohorts.eligible)
    reasons = _uncovered_reasons(cohorts, uncovered, devices, policy)
    return Coverage(
        cohorts_total=len(cohorts.eligible),
        cohorts_covered=len(cohorts.eligible) - len(uncovered),
        devices_in_rollout=in_rollout,
        devices_covered=covered_devices if policy.waves[0].canary else 0,
        uncovered=tuple(sorted(reasons, key=lambda u: (-u.size, u.label))),
    )


def _uncovered_reasons(
    cohorts: CohortIndex, uncovered: set[int], devices: Sequence[Device], policy: Policy
) -> list[UncoveredCohort]:
    if not policy.waves[0].canary:
        return [UncoveredCohort(cohorts.cohorts[c].label, cohorts.cohorts[c].size, "the policy has no canary wave")
                for c in uncovered]
    last = policy.constraints.last_tags
    out = []
    for c in uncovered:
        members = (m for s in cohorts.signatures if c in s.cohorts for m in s.members)
        only_last = all(last_tag_rank(devices[m], last) for m in members)
        why = (f"all its devices are tagged {'/'.join(last)}, which go last" if only_last
               else "a canary device for it would break a wave constraint (site cap or site separation)")
        cohort = cohorts.cohorts[c]
        out.append(UncoveredCohort(cohort.label, cohort.size, why))
    return out


def coverage_json(c: Coverage) -> dict[str, Any]:
    return {
        "cohorts_total": c.cohorts_total,
        "cohorts_covered": c.cohorts_covered,
        "devices_in_rollout": c.devices_in_rollout,
        "devices_covered": c.devices_covered,
        "fleet_share_covered": c.fleet_share_covered,
        "uncovered": [{"cohort": u.label, "devices": u.size, "reason": u.reason} for u in c.uncovered],
    }
