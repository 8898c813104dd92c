"""The planner's rules on generated fleets: coverage, constraints, determinism, infeasibility."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollout.core.device import Device
from rollout.errors import InfeasiblePlanError
from rollout.plan.assign import last_tag_rank
from rollout.plan.fleet import generate_fleet
from rollout.plan.planner import Plan, plan_waves
from tests.conftest import make_inventory, make_plan, make_policy

WAVES = [
    {"name": "canary", "canary": True, "bake": "7d"},
    {"name": "w1", "size": "5%", "bake": "3d"},
    {"name": "w2", "size": "20%", "bake": "3d"},
    {"name": "w3", "size": "30%"},
    {"name": "final", "size": "rest"},
]


def wave_index(plan: Plan) -> dict[str, int]:
    return {d: w.index for w in plan.waves for d in w.devices}


def eligible_cohorts(devices: list[Device], min_size: int) -> dict[tuple[tuple[str, ...], tuple[str, ...]], set[str]]:
    """Brute force, independent of the planner: cohort -> device ids."""
    groups = [("model",), ("os_version",), ("department",), ("site",), ("model", "os_version"), ("department", "apps")]
    members: dict[tuple[tuple[str, ...], tuple[str, ...]], set[str]] = {}
    for d in devices:
        for keys in groups:
            for values in itertools.product(*(d.values_of(k) for k in keys)):
                members.setdefault((keys, values), set()).add(d.device_id)
    return {k: v for k, v in members.items() if len(v) >= min_size}


def test_canary_covers_every_eligible_cohort_with_few_devices() -> None:
    devices = generate_fleet(3000, 11)
    plan = plan_waves(make_inventory(devices), make_policy(waves=WAVES, constraints={"last_tags": []}))
    canary = set(plan.waves[0].devices)
    cohorts = eligible_cohorts(devices, 20)
    missed = [k for k, ids in cohorts.items() if not ids & canary]
    assert missed == []
    assert plan.coverage.cohorts_total == len(cohorts)
    assert plan.coverage.cohorts_covered == len(cohorts)
    # Greedy cover: far fewer canaries than cohorts.
    assert len(canary) < len(cohorts) / 3


def test_canary_prefers_volunteers_and_never_takes_last_tagged_devices() -> None:
    plan = make_plan(3000, 5)
    devices = {d.device_id: d for d in generate_fleet(3000, 5)}
    canary = [devices[d] for d in plan.waves[0].devices]
    picks = [devices[d] for d in plan.reasons["picks"]]
    assert not any(set(d.tags) & {"vip", "critical-ops"} for d in canary)
    # The canary is filled up to its size of 60 with preferred devices first.
    assert len(canary) == 60
    available = [d for d in devices.values()
                 if set(d.tags) & {"it-volunteer", "pilot"} and not set(d.tags) & {"vip", "critical-ops"}]
    fill = [d for d in canary if d not in picks]
    assert len(available) >= len(fill), "this fleet has enough volunteers to fill the canary"
    assert all(set(d.tags) & {"it-volunteer", "pilot"} for d in fill)


def test_same_fleet_in_any_row_order_gives_the_same_plan() -> None:
    devices = generate_fleet(2500, 3)
    shuffled = devices[:]
    random.Random(1).shuffle(shuffled)
    a = plan_waves(make_inventory(devices), make_policy())
    b = plan_waves(make_inventory(shuffled), make_policy())
    assert a.plan_hash == b.plan_hash
    assert [w.hash for w in a.waves] == [w.hash for w in b.waves]


def test_adding_devices_moves_few_others() -> None:
    """The spread order is per device, so a grown fleet keeps most devices in their wave."""
    base = generate_fleet(4000, 9)
    grown = base + [d._replace(device_id=f"N{i:05d}", serial=f"NEW{i:05d}") for i, d in enumerate(base[:40])]
    a = wave_index(plan_waves(make_inventory(base), make_policy(waves=WAVES)))
    b = wave_index(plan_waves(make_inventory(grown), make_policy(waves=WAVES)))
    moved = sum(1 for d in a if a[d] != b[d])
    assert moved < 0.05 * len(a)


def test_exclusions_leave_the_rollout_with_their_reason() -> None:
    devices = generate_fleet(1500, 4)
    first = devices[0].device_id
    plan = plan_waves(make_inventory(devices), make_policy(constraints={
        "exclude": {"devices": [first, "NOPE"], "selectors": ["model=Surface Laptop 5"]}}))
    excluded = dict(plan.excluded)
    surface = {d.device_id for d in devices if d.model == "Surface Laptop 5"}
    assert excluded[first] == "listed in constraints.exclude.devices"
    assert all(excluded[d] == "matches constraints.exclude selector model=Surface Laptop 5" for d in surface - {first})
    assert not set(wave_index(plan)) & set(excluded)
    assert plan.warnings == ("constraints.exclude.devices: NOPE is not in the inventory",)


CAPS = st.sampled_from([None, 400, 700, {"default": 500, "tokyo": 900}])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(300, 3000), seed=st.integers(0, 10_000), caps=CAPS, separate=st.booleans(),
       last=st.sampled_from([[], ["vip"], ["vip", "critical-ops"]]))
def test_every_constraint_is_honoured_or_named(n: int, seed: int, caps: object, separate: bool,
                                               last: list[str]) -> None:
    constraints: dict[str, object] = {"max_per_site_per_wave": caps, "last_tags": last,
                                      "separate_sites": [{"sites": ["tokyo", "osaka"], "tags": ["critical-ops"]}]
                                      if separate else []}
    devices = generate_fleet(n, seed)
    policy = make_policy(waves=WAVES, constraints=constraints)
    try:
        plan = plan_waves(make_inventory(devices), policy)
    except InfeasiblePlanError as err:
        assert all(p.field.startswith(("constraints.", "waves")) for p in err.problems)
        return
    where = wave_index(plan)
    by_id = {d.device_id: d for d in devices}
    assert sorted(where) == sorted(by_id), "every device is in exactly one wave"
    for wave in plan.waves:
        sites = Counter(by_id[d].site for d in wave.devices)
        for site, count in sites.items():
            cap = policy.constraints.site_cap(site)
            assert cap is None or count <= cap
        if separate:
            crit = {by_id[d].site for d in wave.devices if "critical-ops" in by_id[d].tags}
            assert not {"tokyo", "osaka"} <= crit
    ranks = {d: last_tag_rank(by_id[d], last) for d in where}
    assert all(where[d] > 0 for d in where if ranks[d]), "last-tagged devices are never canaries"
    if last and not caps and not separate:
        untagged = max(where[d] for d in where if not ranks[d])
        tagged = [where[d] for d in where if ranks[d]]
        assert not tagged or min(tagged) >= untagged


def test_site_cap_that_cannot_hold_the_fleet_is_named_with_the_amount() -> None:
    with pytest.raises(InfeasiblePlanError) as caught:
        make_plan(3000, 2, waves=WAVES, constraints={"max_per_site_per_wave": {"default": 2000, "tokyo": 200}})
    (problem,) = caught.value.problems
    assert problem.field == "constraints.max_per_site_per_wave.tokyo"
    reference = make_plan(3000, 2, waves=WAVES, constraints={"max_per_site_per_wave": {"default": 2000}})
    tokyo = sum(n for w in reference.waves[1:] for site, n in w.sites if site == "tokyo")
    assert f"of the {tokyo:,} devices of site tokyo find no wave" in problem.message
    assert "find no wave under the cap of 200 per wave (4 waves after the canary)" in problem.message
    assert f"raise the cap for tokyo to at least {-(-tokyo // 4):,}, or add waves" in problem.message


def test_waves_too_small_for_the_fleet_say_how_many_are_short() -> None:
    waves = [{"name": "canary", "canary": True}, {"name": "w1", "size": 500}, {"name": "w2", "size": 1000}]
    with pytest.raises(InfeasiblePlanError) as caught:
        make_plan(2000, 1, waves=waves, constraints={})
    (problem,) = caught.value.problems
    canary = len(make_plan(2000, 1, constraints={}).reasons["picks"])
    assert problem.field == "waves"
    assert problem.message == (f"the waves after the canary hold 1,500 devices but {2000 - canary:,} need a place: "
                               f"{500 - canary:,} short; make the last wave's size 'rest', or enlarge the waves")


def test_site_separation_needs_two_waves() -> None:
    waves = [{"name": "canary", "canary": True}, {"name": "all", "size": "rest"}]
    with pytest.raises(InfeasiblePlanError) as caught:
        make_plan(3000, 2, waves=waves, constraints={
            "separate_sites": [{"sites": ["tokyo", "osaka"], "tags": ["critical-ops"]}], "last_tags": ["critical-ops"]})
    (problem,) = caught.value.problems
    assert problem.field == "constraints.separate_sites[0]"
    assert "tagged critical-ops of site osaka find no wave without a device of tokyo" in problem.message


def test_canary_ceiling_too_low_to_cover_is_named() -> None:
    waves = [{"name": "canary", "canary": True, "size": 5}, {"name": "rest", "size": "rest"}]
    with pytest.raises(InfeasiblePlanError) as caught:
        make_plan(3000, 2, waves=waves, constraints={})
    (problem,) = caught.value.problems
    assert problem.field == "waves[0].size"
    assert "canary allows 5" in problem.message and "raise waves[0].size by at least" in problem.message


def test_wave_hash_changes_only_for_waves_whose_content_changed() -> None:
    a = make_plan(2000, 8, waves=WAVES)
    changed = [dict(w) for w in WAVES]
    changed[3]["bake"] = "5d"
    b = make_plan(2000, 8, waves=changed)
    assert [x.hash == y.hash for x, y in zip(a.waves, b.waves)] == [True, True, True, False, True]
    assert a.plan_hash != b.plan_hash
