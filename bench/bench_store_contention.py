"""Benchmark the DynamoDB state store under a team's load, against the local AWS emulation in a
process of its own with 20 ms of latency per request (as ``bench/bench_aws.py`` starts it).

1. Operator commands per second while a driver ticks: a driver process takes a 200-device rollout
   (every wave approved beforehand) through its waves in simulated time, while operators run
   commands, each on a fresh store as every CLI command opens one (report an issue, triage it),
   first one operator at a time, then four at once. Counted: commands that completed while the
   driver was ticking, and the driver's own commits in that time.
2. ``audit verify`` of a 10,000-event log from a fresh store.

Usage: ``python bench/bench_store_contention.py [--latency 0.02] [--events 10000]``. Prints its figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_aws import moto_server  # noqa: E402

from rollout.awslocal.server import REGION  # noqa: E402
from rollout.store.api import Build, Changes  # noqa: E402

T0 = dt.datetime(2027, 1, 12, 9, tzinfo=dt.UTC)


def start(state: str, world: Path, devices: int) -> str:
    from rollout.backends.factory import simulator_settings
    from rollout.backends.simulator import Scenario
    from rollout.drive.loop import begin_rollout
    from rollout.drive.operations import approve
    from rollout.store.factory import init_store, open_store
    from tests.rollout_builders import small_rollout
    from tests.test_contention import CALM

    init_store(state)
    plan, inventory = small_rollout(devices)
    store = open_store(state)
    begin_rollout(store, plan, inventory, "starter", True, simulator_settings(Scenario.model_validate(CALM), world), T0)
    rid = str(plan["rollout"])
    for wave in store.waves(rid):
        for role in wave.approvals_required:
            approve(store, rid, wave.name, f"approver-{role}", role, "bench", T0)
    store.close()
    return rid


def operator(state: str, rid: str, name: str, stop: threading.Event, done: list[int]) -> None:
    from rollout.drive.operations import add_issue, set_issue
    from rollout.store.factory import open_store

    while not stop.is_set():
        store = open_store(state)
        issue = add_issue(store, rid, f"reported by {name}", "site=tokyo", "minor", name, T0)
        store.close()
        done.append(1)
        if stop.is_set():
            return
        store = open_store(state)
        set_issue(store, rid, issue, name, T0, status="resolved")
        store.close()
        done.append(1)


def commits(state: str, rid: str) -> int:
    from rollout.store.factory import open_store

    store = open_store(state)
    seq = int(store.head(rid)["seq"])  # type: ignore[attr-defined]
    store.close()
    return seq


def under_a_driver(latency: float, operators: int, devices: int) -> tuple[float, float, float]:
    """(operator commands/s, driver commits/s, seconds the driver ticked) with ``operators`` at once."""
    with moto_server(latency), TemporaryDirectory() as tmp:
        state = f"dynamodb://bench-team?region={REGION}&cache=0"
        rid = start(state, Path(tmp) / "world.db", devices)
        before = commits(state, rid)
        stop, done = threading.Event(), list[int]()
        driver = subprocess.Popen([sys.executable, "-m", "tests.contention_worker", "driver", "driver-1",
                                   state.replace("&cache=0", ""), rid, "0", str(Path(tmp) / "stop")],
                                  cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        threads = [threading.Thread(target=operator, args=(state, rid, f"operator-{n}", stop, done))
                   for n in range(operators)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        code = driver.wait()
        took = time.perf_counter() - began
        count = len(done)
        stop.set()
        for thread in threads:
            thread.join()
        assert code == 0, f"the driver exited {code}"
        driven = commits(state, rid) - before - len(done)
        return count / took, max(driven, 0) / took, took


def fixed(changes: Changes) -> Build:
    return lambda view: changes


def verify_time(latency: float, events: int) -> tuple[float, int]:
    from rollout.store.factory import init_store, open_store
    from tests.rollout_builders import small_rollout

    with moto_server(latency):
        state = f"dynamodb://bench-audit?region={REGION}&cache=0"
        init_store(state)
        plan, inventory = small_rollout(200)
        store = open_store(state)
        from rollout.drive.operations import start_rollout

        start_rollout(store, plan["rollout"], plan, inventory, "starter", True, T0)
        rid = str(plan["rollout"])
        per_commit = 200
        while store.audit_head(rid)[0] < events:
            left = events - store.audit_head(rid)[0]
            ch = Changes()
            for n in range(min(per_commit, left)):
                ch.event(T0, "operator-bench", "note.added", {"n": n, "text": "an operator's note " * 4})
            store.transact(rid, fixed(ch))
        store.close()
        reader = open_store(state)
        began = time.perf_counter()
        report = reader.verify_audit(rid)
        took = time.perf_counter() - began
        assert report.ok, report.problem
        reader.close()
        return took, report.events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    ms = args.latency * 1000
    print(f"DynamoDB state store against the local AWS emulation ({ms:.0f} ms per request, its own process):")
    for operators in (1, 4):
        rate, driven, took = under_a_driver(args.latency, operators, args.devices)
        print(f"  {operators} operator(s) while a driver ticks a {args.devices}-device rollout: {rate:6.2f} "
              f"commands/s (driver: {driven:5.2f} commits/s, ticking {took:.1f} s)")
    took, events = verify_time(args.latency, args.events)
    print(f"  audit verify of a {events:,}-event log from a fresh store: {took:.2f} s")


if __name__ == "__main__":
    main()
