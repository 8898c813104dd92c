"""The contention harness: a team acting on one rollout at once, in separate OS processes.

The local AWS emulation runs in a process of its own (``python -m rollout.awslocal``: each request
atomic, as in AWS). A driver process takes the rollout through every wave in simulated time; two
operator processes approve the waves (one per role), another reports and triages issues and changes
them while the others do; a reader verifies the audit log again and again. The harness SIGKILLs
drivers and operators at random moments, kills some drivers right after a commit point
(``ROLLOUT_FAULT_KILL_AT=store_committed:N``), and makes row writes after the commit point fail
at random (``CONTENTION_ROW_FAULTS``). Then, on what is left:

- the audit log verifies, and no reader ever saw a failed verify while others wrote;
- every event's effect is in the rows: each issue's severity and status are the last ones its
  events set, every approval event has its approval, each wave is in the phase its last event moved
  it to;
- no device is lost or in two states (in the DynamoDB table, each device is in exactly one bucket),
  none is left migrating or reverting, no intent is left open;
- fencing numbers strictly increase, and no driver writes after another took the lease over;
- ``state migrate`` to SQLite gives exactly the DynamoDB view.

The same workload runs against SQLite as the control. ``pr`` runs on every pull request; the
``nightly`` variant runs longer with more kills.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rollout.backends.factory import simulator_settings
from rollout.backends.simulator import Scenario
from rollout.core.model import DevicePhase, RolloutPhase, WavePhase, rollout_phase
from rollout.drive.loop import begin_rollout
from rollout.store.api import StateStore
from rollout.store.factory import init_store, migrate_rollout, open_store
from rollout.plan.planfile import plan_to_json
from rollout.plan.planner import plan_waves
from tests.conftest import make_inventory, make_policy
from tests.rollout_builders import ROOT, SMALL_WAVES, T0
from tests.store_builders import REGION, snapshot

pytestmark = pytest.mark.slow

# Nothing fails on its own: every wave passes unless the workload breaks something.
CALM: dict[str, Any] = {"seed": 2027, "baseline_failure": 0.0, "checkin_delay": {"min": "30m", "max": "2h"},
                        "offline": 0.0, "tickets_per_device": 0.0, "faults": []}
OPERATORS = ("operator-pm", "operator-security", "operator-triage")
WAVE_PHASES = {p.value for p in WavePhase}


# The pull request's rollout: a canary and the rest, short bakes (moto answers one request at a time).
TWO_WAVES: list[dict[str, Any]] = [
    {"name": "canary", "canary": True, "size": 8, "bake": "12h", "approvals": ["pm", "security"]},
    {"name": "final", "size": "rest", "bake": "12h", "approvals": ["pm"]},
]


@dataclass(frozen=True)
class Workload:
    devices: int
    waves: list[dict[str, Any]]
    random_kills: int  # drivers SIGKILLed at a random moment
    commit_kills: int  # drivers killed right after a commit point
    row_faults: float


@dataclass
class Run:
    state: str
    rollout_id: str
    devices: list[str]
    work: Path
    env: dict[str, str]
    log: list[str] = field(default_factory=list)

    @property
    def driver_state(self) -> str:
        """The driver reuses HEAD for up to a second between its own writes, as ``rollout run`` does by
        default (every write is still checked against the table); the others read it every time."""
        return self.state.replace("&cache=0", "")


@pytest.fixture
def emulation(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """``python -m rollout.awslocal`` in its own process; this process and its children use it."""
    proc = subprocess.Popen([sys.executable, "-m", "rollout.awslocal"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    endpoint = proc.stdout.readline().strip()
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def worker(run: Run, role: str, name: str, seed: int, **extra: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.contention_worker", role, name, run.state, run.rollout_id, str(seed),
            str(run.work / "stop")]
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, **run.env, "PYTHONPATH": str(ROOT), **extra},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def begin(state: str, work: Path, workload: Workload, env: dict[str, str]) -> Run:
    inventory = make_inventory(n=workload.devices, seed=7)
    plan = plan_to_json(plan_waves(inventory, make_policy(waves=workload.waves)))
    store = open_store(state)
    settings = simulator_settings(Scenario.model_validate(CALM), work / "world.db")
    begin_rollout(store, plan, {d.device_id: d for d in inventory.devices}, "starter", True, settings, T0)
    store.close()
    return Run(state, str(plan["rollout"]), sorted(d.device_id for d in inventory.devices), work, env)


def phase_of(state: str, rollout_id: str) -> RolloutPhase:
    store = open_store(state)
    try:
        return rollout_phase(store.status(rollout_id), store.waves(rollout_id))
    finally:
        store.close()


def run_workload(run: Run, workload: Workload, seed: int) -> None:
    """Drivers one after another (killed as the workload says) while operators and a reader act."""
    rng = random.Random(seed)
    others = {name: worker(run, "operator", name, seed) for name in OPERATORS}
    others["reader"] = worker(run, "reader", "reader", seed)
    kills = ["random"] * workload.random_kills + ["commit"] * workload.commit_kills
    rng.shuffle(kills)
    try:
        for n in range(1, 200):
            if phase_of(run.state, run.rollout_id) == RolloutPhase.COMPLETED:
                return
            kill = kills.pop() if kills else ""
            extra = {"ROLLOUT_FAULT_KILL_AT": f"store_committed:{rng.randint(1, 12)}"} if kill == "commit" else {}
            driver = worker(run, "driver", f"driver-{n}", seed + n, **extra, CONTENTION_STATE=run.driver_state)
            try:
                _, err = driver.communicate(timeout=rng.uniform(0.8, 2.5) if kill == "random" else 240)
            except subprocess.TimeoutExpired:
                driver.kill()
                _, err = driver.communicate()
            run.log.append(f"driver-{n}: {driver.returncode}")
            assert driver.returncode in (0, 3, -signal.SIGKILL), f"driver-{n} exited {driver.returncode}:\n{err}"
            if rng.random() < 0.4:  # an operator killed mid-command, and started again
                name = rng.choice(OPERATORS)
                others[name].kill()
                others[name].wait()
                others[name] = worker(run, "operator", name, seed + 1000 + n)
            if driver.returncode == 3:
                time.sleep(0.3)  # waiting for a person: let the operators act
        raise AssertionError(f"the rollout did not complete: {run.log[-10:]}")
    finally:
        (run.work / "stop").touch()
        for proc in others.values():
            _, err = proc.communicate(timeout=120)
            assert proc.returncode in (0, -signal.SIGKILL), err


def fold_issues(events: list[Any]) -> dict[int, tuple[str | None, str]]:
    issues: dict[int, tuple[str | None, str]] = {}
    for e in events:
        if e.kind == "issue.reported":
            issues[e.data["id"]] = (e.data["severity"], "open")
        elif e.kind == "issue.triaged":
            severity, status = issues[e.data["id"]]
            issues[e.data["id"]] = (e.data.get("severity") or severity, e.data.get("status") or status)
    return issues


def check_invariants(run: Run) -> StateStore:
    store = open_store(run.state)
    report = store.verify_audit(run.rollout_id)
    assert report.ok, report.problem
    alarms = sorted(run.work.glob("stop.*.alarms"))
    assert not alarms, f"verify failed while others wrote: {alarms[0].read_text(encoding='utf-8')[:500]}"
    events = list(store.events(run.rollout_id))
    # Every event's effect is in the rows.
    assert {i.id: (i.severity.value if i.severity else None, i.status.value)
            for i in store.issues(run.rollout_id)} == fold_issues(events)
    assert {(a.wave, a.wave_hash, a.by, a.role) for a in store.approvals(run.rollout_id)} == \
        {(e.data["wave"], e.data["wave_hash"], e.actor, e.data["role"]) for e in events if e.kind == "approval.added"}
    last_phase = {e.data["wave"]: e.kind.split(".", 1)[1] for e in events
                  if e.kind.startswith("wave.") and e.kind.split(".", 1)[1] in WAVE_PHASES}
    waves = store.waves(run.rollout_id)
    assert {w.index: w.phase.value for w in waves if w.index in last_phase} == last_phase
    assert all(w.phase == WavePhase.PASSED for w in waves), [(w.name, w.phase) for w in waves]
    # No device lost, none in two states, none left half-way.
    devices = store.export_rollout(run.rollout_id).devices
    assert sorted(d.device_id for d in devices) == run.devices
    assert not [d for d in devices if d.phase in (DevicePhase.MIGRATING, DevicePhase.REVERTING)]
    assert store.open_intents(run.rollout_id) == []
    # Fences strictly increase; no driver writes once another holds the lease.
    fences = [e.data["fence"] for e in events if e.kind == "lease.acquired"]
    assert fences == sorted(set(fences)) and fences, fences
    holder = None
    for e in events:
        if e.kind == "lease.acquired":
            holder = e.actor
        elif e.actor.startswith("driver-"):
            assert e.actor == holder, f"event {e.seq} ({e.kind}) by {e.actor} while {holder} held the lease"
    return store


def device_buckets(store: Any, rollout_id: str) -> list[str]:
    """Every device id in the table's device buckets, once per bucket it is in."""
    from rollout.store.dynamo_io import PARTITIONS
    from rollout.store.dynamo_items import blob_value, query_all

    pk = store.pk(rollout_id)
    return [device_id for n in range(PARTITIONS) for item in query_all(store.client, store.table, f"{pk}#D#{n:02d}")
            for device_id in blob_value([item["rows"]])]


WORKLOADS = [pytest.param(Workload(32, TWO_WAVES, 1, 2, 0.03), 1, id="pr"),
             pytest.param(Workload(300, SMALL_WAVES, 12, 12, 0.05), 3, id="nightly", marks=pytest.mark.nightly)]


@pytest.mark.parametrize(("workload", "rounds"), WORKLOADS)
def test_a_team_on_the_dynamodb_store_loses_nothing(emulation: dict[str, str], tmp_path: Path, workload: Workload,
                                                    rounds: int) -> None:
    for seed in range(rounds):
        work = tmp_path / f"round-{seed}"
        work.mkdir()
        state = f"dynamodb://contention-{seed}?region={REGION}&cache=0"
        init_store(state)
        run = begin(state, work, workload, {"CONTENTION_ROW_FAULTS": str(workload.row_faults)})
        run_workload(run, workload, seed)
        assert any(line.endswith(f": {-signal.SIGKILL}") for line in run.log), run.log  # the kills happened
        store = check_invariants(run)
        assert sorted(device_buckets(store, run.rollout_id)) == run.devices
        copy = f"sqlite:{work / 'copy.db'}"
        migrate_rollout(state, copy, run.rollout_id)
        migrated = open_store(copy)
        assert snapshot(migrated, run.rollout_id) == snapshot(store, run.rollout_id)
        migrated.close()
        store.close()


@pytest.mark.parametrize(("workload", "rounds"), WORKLOADS)
def test_the_same_team_on_sqlite_loses_nothing(tmp_path: Path, workload: Workload, rounds: int) -> None:
    """The control: the same workload, kills and invariants against one SQLite file."""
    for seed in range(rounds):
        work = tmp_path / f"round-{seed}"
        work.mkdir()
        run = begin(f"sqlite:{work / 'state.db'}", work, workload, {})
        run_workload(run, workload, seed)
        check_invariants(run).close()
