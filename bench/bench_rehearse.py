"""A full rehearsal through all waves, and the cost of one tick, at 10,000 and 100,000 devices.

Usage: python bench/bench_rehearse.py [--sizes 10000,100000]

For each size, in its own process: generate the fleet, plan it under the example policy (site
caps scaled to the fleet), and rehearse it against the example scenario with the example's
faults switched off except the canary's cohort failure, so every wave runs. Prints the wall
time of the whole rehearsal (ticks, simulated days), the process's peak memory, and the time of
one tick: median and 95th percentile over all ticks (a tick here is everything between two
ticks of the rehearsal: the people's actions, the engine, the store, the telemetry read and the
backend calls it dispatched).
Targets (issue 4): a 10,000-device rehearsal under 30 s; a tick under 100 ms at 10,000 devices
and under 1 s at 100,000.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(n: int) -> dict[str, float]:
    from rollout.backends.simulator import load_scenario
    from rollout.drive.rehearse import rehearse
    from rollout.plan import api
    from rollout.plan.planfile import plan_to_json
    from rollout.plan.planner import plan_waves
    from rollout.plan.policy import load_policy

    work = Path(tempfile.mkdtemp())
    fleet = work / "fleet.csv"
    api.generate_fleet_file(fleet, n, 2027)
    policy = load_policy(api.examples_dir() / "policy.yaml")
    caps = {k: v * max(1, n // 10_000) for k, v in policy.constraints.max_per_site_per_wave.items()}  # type: ignore[union-attr]
    policy = policy.model_copy(update={"constraints": policy.constraints.model_copy(
        update={"max_per_site_per_wave": caps})})
    inventory = api.load_inventory(fleet)
    plan = plan_to_json(plan_waves(inventory, policy))
    scenario = load_scenario(api.examples_dir() / "scenario.yaml")
    scenario = scenario.model_copy(update={"faults": scenario.faults[:1]})
    ticks: list[float] = []
    last = [time.perf_counter()]

    def on_tick(result: object, driver: object) -> None:
        now = time.perf_counter()
        ticks.append(now - last[0])
        last[0] = now

    t0 = time.perf_counter()
    result = rehearse(work / "state.db", plan, {d.device_id: d for d in inventory.devices}, scenario,
                      start=dt.datetime(2027, 1, 12, 9, tzinfo=dt.UTC), on_tick=on_tick)
    wall = time.perf_counter() - t0
    durations = sorted(ticks)
    days = (result.ended - result.started).days if result.ended and result.started else 0
    return {"devices": n, "wall_s": wall, "ticks": result.ticks, "days": days, "phase": result.phase.value,
            "tick_median_ms": statistics.median(durations) * 1000,
            "tick_p95_ms": durations[int(0.95 * (len(durations) - 1))] * 1000,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    print(f"{'devices':>9} {'rehearsal s':>11} {'ticks':>6} {'sim days':>8} {'phase':>10} "
          f"{'tick med ms':>11} {'tick p95 ms':>11} {'peak MiB':>9}")
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        print(f"{n:>9,} {r['wall_s']:>11.1f} {r['ticks']:>6} {r['days']:>8} {r['phase']:>10} "
              f"{r['tick_median_ms']:>11.1f} {r['tick_p95_ms']:>11.1f} {r['peak_mib']:>9,.0f}", flush=True)


if __name__ == "__main__":
    main()
