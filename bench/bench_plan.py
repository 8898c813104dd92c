"""Planner throughput and peak memory at 10,000, 100,000 and 1,000,000 generated devices.

Usage: python bench/bench_plan.py [--sizes 10000,100000,1000000] [--repeat 3]

Each size runs in a fresh subprocess so that peak memory (ru_maxrss) belongs to that size alone.
For each size it prints the time to parse the inventory CSV (decode + validate), the time to plan
(the pure planner, best of --repeat), devices per second of planning, and the process's peak
resident memory. Targets (issue 2): 10,000 devices planned in under 1 s, 1,000,000 in under 60 s
on one core, growing no worse than n log n: the last column compares each size's planning time
with n log n scaling from the smallest size.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(n: int, repeat: int) -> dict[str, float]:
    import io

    from rollout.plan.api import examples_dir
    from rollout.plan.fleet import EXTRA_COLUMNS, iter_fleet
    from rollout.plan.inventory import parse_inventory, write_inventory_csv
    from rollout.plan.planner import plan_waves
    from rollout.plan.policy import load_policy

    policy = load_policy(examples_dir() / "policy.yaml")
    # The example policy caps devices per site per wave for a 10,000-device fleet; scale it.
    caps = {k: v * max(1, n // 10_000) for k, v in policy.constraints.max_per_site_per_wave.items()}  # type: ignore[union-attr]
    policy = policy.model_copy(update={"constraints": policy.constraints.model_copy(
        update={"max_per_site_per_wave": caps})})
    buffer = io.StringIO()
    write_inventory_csv(iter_fleet(n, 2027), buffer, EXTRA_COLUMNS)
    data = buffer.getvalue().encode("utf-8")
    del buffer
    t0 = time.perf_counter()
    inventory = parse_inventory(data, source="fleet.csv")
    load_s = time.perf_counter() - t0
    del data
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        plan = plan_waves(inventory, policy)
        best = min(best, time.perf_counter() - t0)
    assert sum(len(w.devices) for w in plan.waves) == n
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"devices": n, "load_s": load_s, "plan_s": best, "peak_mib": peak_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeat)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'devices':>10} {'load s':>8} {'plan s':>8} {'devices/s':>11} {'peak MiB':>9} {'vs n log n':>10}")
    base: dict[str, float] | None = None
    for n in sizes:
        repeat = args.repeat if n <= 100_000 else 1
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--repeat", str(repeat)],
                             capture_output=True, text=True, check=True)
        row = json.loads(out.stdout)
        base = base or row
        expected = base["plan_s"] * (n * math.log(n)) / (base["devices"] * math.log(base["devices"]))
        print(f"{n:>10,} {row['load_s']:>8.2f} {row['plan_s']:>8.2f} {n / row['plan_s']:>11,.0f} "
              f"{row['peak_mib']:>9,.0f} {row['plan_s'] / expected:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
