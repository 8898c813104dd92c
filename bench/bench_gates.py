"""The triage gate's cost: ``assess_wave`` on 1,000, 25,000 and 100,000-device waves.

Usage: python bench/bench_gates.py [--sizes 1000,25000,100000] [--repeat 5]

Each wave is a generated fleet, every device migrated and reporting, one laptop model failing
kitting at 30 % and the others at 1 % (so the cohort search has a finding to make and re-test),
judged with the default gate spec (5 cohort keys). Prints devices and the best-of-``repeat``
milliseconds. Targets (issue 4): well under 500 ms at 25,000; the engine's whole tick at 100,000
devices has 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollout.core.gates import assess_wave
from rollout.core.gatespec import GateSpec
from rollout.core.verdicts import HealthReport, WaveEvidence
from rollout.plan.fleet import generate_fleet  # noqa: E402

MIGRATED = dt.datetime(2025, 4, 1, 9, tzinfo=dt.UTC)


def make_wave(n: int) -> WaveEvidence:
    rng = random.Random(5)
    devices = {d.device_id: d for d in generate_fleet(n, 11)}
    at = MIGRATED + dt.timedelta(hours=1)
    reports = {}
    for i, d in devices.items():
        kitting = rng.random() >= (0.30 if d.model == "FMV LIFEBOOK U9" else 0.01)
        reports[i] = HealthReport(i, at, {"kitting": kitting, "signin": True, "ztna": True, "app": True})
    return WaveEvidence(devices, dict.fromkeys(devices, MIGRATED), reports, {})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,25000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    spec = GateSpec()
    now = MIGRATED + dt.timedelta(hours=12)
    print(f"{'devices':>9}  {'ms':>8}  verdict  findings")
    for n in (int(s) for s in args.sizes.split(",")):
        evidence = make_wave(n)
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            decision = assess_wave(spec, evidence, now=now, bake_complete=True)
            best = min(best, time.perf_counter() - start)
        found = ", ".join(f.selector for f in decision.failing_cohorts)
        print(f"{n:>9,}  {best * 1000:>8.1f}  {decision.verdict.value:<7}  {found}")


if __name__ == "__main__":
    main()
