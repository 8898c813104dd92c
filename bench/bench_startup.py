"""How fast the ``rollout`` command starts: ``--help``, and ``status`` on a 10,000-device SQLite state.

Usage: python bench/bench_startup.py [--runs 15] [--devices 10000]

Builds the state once (the example fleet, planned under the example policy, rehearsed on the
simulator for a few ticks so that it holds waves, devices, decisions and events), then runs each
command ``--runs`` times as a fresh process (``python -m rollout ...``, the way the installed
``rollout`` script runs) and prints the median and fastest wall time of each, beside
``python -c pass`` as the floor: no command can start faster than the interpreter. Each command
runs once untimed first, with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed from the
children's environment), as on an installed copy, where every module is compiled once.
Targets (issue 10): ``rollout --help`` and ``rollout status`` under 0.3 s wall on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 0.3


def build_state(work: Path, devices: int) -> Path:
    from rollout.backends.simulator import load_scenario
    from rollout.drive.rehearse import rehearse
    from rollout.plan import api
    from rollout.plan.planfile import plan_to_json

    fleet, state = work / "fleet.csv", work / "state.db"
    api.generate_fleet_file(fleet, devices, api.EXAMPLE_SEED)
    planned = api.make_plan(fleet, api.examples_dir() / api.EXAMPLE_POLICY)
    inventory = {d.device_id: d for d in planned.inventory.devices}
    scenario = load_scenario(api.examples_dir() / "scenario.yaml")
    rehearse(state, plan_to_json(planned.plan), inventory, scenario,
             start=dt.datetime(2027, 1, 12, 9, tzinfo=dt.UTC), max_ticks=40)
    return state


def timed(argv: list[str], runs: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--devices", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = build_state(Path(tmp), args.devices)
        py = sys.executable
        cases = {
            "python -c pass (floor)": [py, "-c", "pass"],
            "rollout --help": [py, "-m", "rollout", "--help"],
            f"rollout status ({args.devices:,} devices)": [py, "-m", "rollout", "status", "--state", f"sqlite:{state}"],
            "rollout status --format json": [py, "-m", "rollout", "status", "--format", "json", "--state",
                                             f"sqlite:{state}"],
        }
        print(f"{'command':<40} {'median s':>9} {'fastest s':>10}   target")
        for name, argv in cases.items():
            times = timed(argv, args.runs)
            target = "" if "floor" in name else (f"< {TARGET_SECONDS} s: "
                                                 f"{'met' if statistics.median(times) < TARGET_SECONDS else 'MISSED'}")
            print(f"{name:<40} {statistics.median(times):9.3f} {min(times):10.3f}   {target}")


if __name__ == "__main__":
    main()
