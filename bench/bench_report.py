"""The status report's cost for a 10,000-device rollout: ``rollout report`` as HTML and markdown.

Usage: python bench/bench_report.py [--state FILE] [--repeat 5]

Without ``--state`` it first rehearses the example rollout (examples/fleet-10000.csv under
examples/policy.yaml and examples/scenario.yaml, as ``rollout demo`` does: a quarantined cohort in
the canary, wave-4 rolled back) into a temporary folder. It then times the whole report (reading
the state, building the view, rendering) from a freshly opened store, best of ``repeat``, and
prints the wall time, the output's size, and the peak memory the report allocated (tracemalloc).
Targets (issue 6): under 2 s and under 5 MB of HTML. Exit code 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollout.backends.simulator import load_scenario  # noqa: E402
from rollout.drive.rehearse import rehearse  # noqa: E402
from rollout.plan import api  # noqa: E402
from rollout.plan.planfile import plan_to_json  # noqa: E402
from rollout.reports.report import make_report  # noqa: E402
from rollout.store.sqlite import SqliteStore  # noqa: E402

TARGET_SECONDS = 2.0
TARGET_BYTES = 5 * 1024 * 1024


def rehearsed_example(folder: Path) -> Path:
    examples = api.examples_dir()
    planned = api.make_plan(examples / api.EXAMPLE_FLEET, examples / api.EXAMPLE_POLICY)
    plan = json.loads(json.dumps(plan_to_json(planned.plan)))  # as a plan file reads back
    inventory = {d.device_id: d for d in planned.inventory.devices}
    state = folder / "state.db"
    start = dt.datetime.fromisoformat(plan["schedule"]["start_date"]).replace(hour=9, tzinfo=dt.UTC)
    began = time.perf_counter()
    result = rehearse(state, plan, inventory, load_scenario(examples / "scenario.yaml"), start=start)
    print(f"rehearsed {len(inventory):,} devices in {time.perf_counter() - began:.1f} s: {result.phase.value}")
    return state


def measure(state: Path, lang: str, fmt: str, repeat: int) -> tuple[float, int, int]:
    """(best seconds, output bytes, peak traced bytes) of one report, store opened each time."""
    best, size, peak = float("inf"), 0, 0
    for _ in range(repeat):
        tracemalloc.start()
        began = time.perf_counter()
        store = SqliteStore(state)
        text = make_report(store, store.rollout_ids()[0], lang=lang, fmt=fmt)
        elapsed = time.perf_counter() - began
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        store.close()
        best, size = min(best, elapsed), len(text.encode("utf-8"))
    # tracemalloc slows allocation-heavy code; time once more without it.
    began = time.perf_counter()
    store = SqliteStore(state)
    make_report(store, store.rollout_ids()[0], lang=lang, fmt=fmt)
    store.close()
    return min(best, time.perf_counter() - began), size, peak


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, help="A state file to report on (default: rehearse the example).")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        state = args.state or rehearsed_example(Path(folder))
        store = SqliteStore(state)
        devices = len(store.devices(store.rollout_ids()[0]))
        store.close()
        print(f"{'report':<14} {'devices':>8} {'seconds':>8} {'bytes':>11} {'peak MB':>8}  target")
        missed = False
        for lang, fmt in (("en", "html"), ("ja", "html"), ("en", "markdown")):
            seconds, size, peak = measure(state, lang, fmt, args.repeat)
            ok = seconds < TARGET_SECONDS and (fmt != "html" or size < TARGET_BYTES)
            missed |= not ok
            print(f"{fmt + ' ' + lang:<14} {devices:>8,} {seconds:>8.3f} {size:>11,} {peak / 2**20:>8.1f}  "
                  f"{'ok' if ok else 'MISSED'} (< {TARGET_SECONDS:g} s" + (", < 5 MB)" if fmt == "html" else ")"))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
