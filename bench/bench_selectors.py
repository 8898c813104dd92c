"""Exclusion selectors on a whole fleet: the planner's exclusion step with 2,000 and 20,000 selectors.

Usage: python bench/bench_selectors.py [--devices 10000] [--counts 2000,20000] [--repeat 3] [--compare N]

The selectors are what an asset team pastes from a spreadsheet: three-term ``model=...,department=...,
os_version=...`` and ``department=...,app=...,model=...`` of values that exist in the fleet (most
combinations match no device, so every one has to be tried), ``hostname=...`` of real devices and ``serial=...`` of retired ones.
The step measured is the planner's own (``rollout.plan.planner._exclusions``: parse each selector
against the inventory's keys, then ``rollout.core.selectors.first_matches``). Prints the selectors,
the devices excluded and the best-of-``repeat`` seconds. Target (issue 12): 20,000 selectors on
10,000 devices under 2 s. ``--compare N`` also times the former scan (every selector on every
device) on the first N selectors, for the ratio.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollout.core.selectors import Selector  # noqa: E402
from rollout.plan import api  # noqa: E402
from rollout.plan.fleet import generate_fleet  # noqa: E402
from rollout.plan.inventory import Inventory  # noqa: E402
from rollout.plan.planner import _exclusions  # noqa: E402
from rollout.plan.policy import Policy, load_policy  # noqa: E402


def make_selectors(inventory: Inventory, count: int, seed: int = 12) -> list[str]:
    rng = random.Random(seed)
    devices = inventory.devices
    models = sorted({d.model for d in devices})
    departments = sorted({d.department for d in devices})
    builds = sorted({d.os_version for d in devices})
    apps = sorted({a for d in devices for a in d.apps})
    out: list[str] = []
    while len(out) < count:
        kind = rng.randrange(4)
        if kind == 0:
            out.append(f"model={rng.choice(models)},department={rng.choice(departments)},"
                       f"os_version={rng.choice(builds)}")
        elif kind == 1:
            out.append(f"department={rng.choice(departments)},app={rng.choice(apps)},model={rng.choice(models)}")
        elif kind == 2:
            out.append(f"hostname={rng.choice(devices).hostname}")
        else:
            out.append(f"serial=RETIRED-{len(out):06d}")
    return out


def with_selectors(policy: Policy, selectors: list[str]) -> Policy:
    exclude = policy.constraints.exclude.model_copy(update={"selectors": tuple(selectors)})
    return policy.model_copy(update={"constraints": policy.constraints.model_copy(update={"exclude": exclude})})


def best_of(repeat: int, run: object) -> float:
    assert callable(run)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--counts", default="2000,20000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", type=int, default=0, help="time the former scan on this many selectors")
    args = parser.parse_args()
    devices = tuple(generate_fleet(args.devices, api.EXAMPLE_SEED))
    inventory = Inventory(devices, "generated", "utf-8", "", ("owner_name",))
    base = load_policy(api.examples_dir() / api.EXAMPLE_POLICY)
    print(f"{'selectors':>9}  {'devices':>8}  {'excluded':>8}  {'seconds':>8}")
    for count in (int(c) for c in args.counts.split(",")):
        selectors = make_selectors(inventory, count)
        policy = with_selectors(base, selectors)
        excluded: dict[int, str] = {}

        def run() -> None:
            excluded.clear()
            excluded.update(_exclusions(inventory, policy)[0])

        seconds = best_of(args.repeat, run)
        print(f"{count:>9,}  {len(devices):>8,}  {len(excluded):>8,}  {seconds:>8.3f}")
    if args.compare:
        parsed = [Selector.parse(s) for s in make_selectors(inventory, args.compare)]
        start = time.perf_counter()
        for d in devices:
            next((s for s in parsed if s.matches(d)), None)
        print(f"former scan, {args.compare:,} selectors: {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
