"""Benchmark the AWS backend and the DynamoDB state store against moto's server on loopback.

1. Devices migrated per second for a 2,000-device wave (membership, kitting document), one call at a
   time (``concurrency 1``) versus the backend's concurrent executor (``concurrency 16``), in one run,
   as a ratio. moto runs in a process of its own, handling one request at a time (as
   ``rollout.awslocal`` does), so the figure is bounded by moto's speed on this machine; the same
   comparison is repeated with 20 ms of emulated network latency per request, which is what the
   executor hides against real AWS.
2. The DynamoDB store: time to start a 10,000-device rollout, to record one tick that moves all of
   its 10,000 devices, and for a second operator to load the rollout.

Usage: ``python bench/bench_aws.py [--devices 2000] [--store-devices 10000]``. Prints its figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rollout.awslocal.server import FAKE_KEY, FAKE_SECRET, REGION  # noqa: E402
from rollout.backends.aws.backend import AwsBackend  # noqa: E402
from rollout.backends.aws.clients import AwsSettings  # noqa: E402
from rollout.plan.fleet import generate_fleet  # noqa: E402

UNLIMITED = {"identitystore": 0.0, "ssm": 0.0, "dynamodb": 0.0, "cloudwatch": 0.0, "sts": 0.0}
NOW = dt.datetime(2027, 1, 12, 9, tzinfo=dt.UTC)


@contextmanager
def moto_server(latency: float) -> Iterator[str]:
    """``python -m rollout.awslocal`` in its own process; this process's AWS SDK pointed at it."""
    proc = subprocess.Popen([sys.executable, "-m", "rollout.awslocal", "--latency", str(latency)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    endpoint = proc.stdout.readline().strip()
    saved = dict(os.environ)
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION})
    try:
        yield endpoint
    finally:
        os.environ.clear()
        os.environ.update(saved)
        proc.terminate()
        proc.wait(timeout=30)


def migrate_rate(devices: int, concurrency: int, latency: float) -> tuple[float, int]:
    """(devices per second, AWS calls) for one wave of ``devices`` on a fresh server."""
    from rollout.awslocal.site import provision

    with moto_server(latency):
        fleet = generate_fleet(devices, 2027, managed_nodes=True)
        contracts = provision(fleet)
        backend = AwsBackend("bench", contracts, {"wave-1": 1},
                             AwsSettings(concurrency=concurrency, rates=UNLIMITED, assume_role=False))
        began = time.perf_counter()
        results = backend.migrate("bench-op", "wave-1", fleet, {}, NOW)
        took = time.perf_counter() - began
        backend.close()
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        return devices / took, sum(backend.caller.stats.calls.values())


def store_figures(devices: int) -> dict[str, float]:
    from rollout.core.decision import Decision, DeviceMove
    from rollout.core.model import DevicePhase
    from rollout.drive.operations import start_rollout
    from rollout.drive.recorder import apply_decision
    from rollout.plan.planfile import plan_to_json
    from rollout.plan.planner import plan_waves
    from rollout.store.factory import init_store, open_store
    from tests.conftest import make_inventory, make_policy

    inventory = make_inventory(n=devices, seed=7)
    plan = plan_to_json(plan_waves(inventory, make_policy()))
    by_id = {d.device_id: d for d in inventory.devices}
    out: dict[str, float] = {}
    with moto_server(0.0):
        url = f"dynamodb://bench-state?region={REGION}&cache=0"
        init_store(url)
        store = open_store(url)
        began = time.perf_counter()
        start_rollout(store, plan["rollout"], plan, by_id, "starter", True, NOW)
        out["start"] = time.perf_counter() - began
        moves = [DeviceMove(d, DevicePhase.PENDING, DevicePhase.HELD, {"error": "held by issue #1"}) for d in by_id]
        began = time.perf_counter()
        apply_decision(store, plan["rollout"], None, Decision(device_moves=moves), NOW, "bench")
        out["record"] = time.perf_counter() - began
        began = time.perf_counter()
        other = open_store(url)
        counts = other.device_counts(plan["rollout"])
        out["load"] = time.perf_counter() - began
        assert counts == {DevicePhase.HELD: devices}, counts
        store.close()
        other.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--latency-devices", type=int, default=500)
    parser.add_argument("--store-devices", type=int, default=10_000)
    args = parser.parse_args()
    print(f"AWS backend, one {args.devices:,}-device wave against moto on loopback (its own process):")
    seq, calls = migrate_rate(args.devices, 1, 0.0)
    con, _ = migrate_rate(args.devices, 16, 0.0)
    print(f"  sequential, one call at a time: {seq:8.1f} devices/s ({calls:,} AWS calls)")
    print(f"  concurrent executor (16):       {con:8.1f} devices/s   ratio {con / seq:.2f}x")
    print(f"with 20 ms of network latency per request, a {args.latency_devices:,}-device wave:")
    seq_l, _ = migrate_rate(args.latency_devices, 1, 0.02)
    con_l, _ = migrate_rate(args.latency_devices, 16, 0.02)
    print(f"  sequential:                     {seq_l:8.1f} devices/s")
    print(f"  concurrent executor (16):       {con_l:8.1f} devices/s   ratio {con_l / seq_l:.2f}x")
    figures = store_figures(args.store_devices)
    print(f"DynamoDB state store, a {args.store_devices:,}-device rollout (moto on loopback):")
    print(f"  start the rollout:              {figures['start']:8.2f} s")
    print(f"  record a tick moving every device: {figures['record']:5.2f} s")
    print(f"  a second operator loads it:     {figures['load']:8.2f} s")


if __name__ == "__main__":
    main()
