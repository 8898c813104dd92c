"""The driver's lease: one driver per rollout, fencing numbers, stale writers, force-unlock."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rollout.core.decision import Decision, WaveMove
from rollout.core.model import StepResult, WavePhase
from rollout.drive.recorder import Intent, apply_decision, finish_intent, record_intent
from rollout.errors import InputError
from rollout.store.lease import (
    Lease,
    LeaseHeldError,
    acquire_lease,
    force_unlock,
    release_lease,
    renew_lease,
)
from rollout.store.sqlite import SqliteStore, StaleWriterError
from tests.rollout_builders import (
    ROOT,
    T0,
    cli_env,
    fresh_store,
    rollout_cmd,
    run_rollout,
    write_rehearsal_files,
)

ROUNDS = 300
WORKERS = 4


def take_and_release(path: Path, rollout_id: str, worker: int) -> list[tuple[int, int, int]]:
    """In a child process: take the lease ROUNDS times; returns (fence, held from, held until) in ns."""
    store = SqliteStore(path)
    held: list[tuple[int, int, int]] = []
    while len(held) < ROUNDS:
        try:
            lease = acquire_lease(store, rollout_id, f"worker-{worker}", time.time(), ttl=60)
        except LeaseHeldError:
            continue  # the store's busy timeout already waited for the holder's transaction
        begin = time.monotonic_ns()  # CLOCK_MONOTONIC: one clock for every process on the machine
        renew_lease(store, lease, time.time(), ttl=60)  # a fenced write while holding it
        end = time.monotonic_ns()
        held.append((lease.fence.number, begin, end))
        release_lease(store, lease, time.time())
    store.close()
    return held


def test_four_processes_never_hold_the_lease_at_once(tmp_path: Path) -> None:
    store, rollout_id = fresh_store(tmp_path / "state.db", n=60)
    store.close()
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        results = pool.starmap(take_and_release, [(tmp_path / "state.db", rollout_id, w) for w in range(WORKERS)])
    intervals = sorted(interval for held in results for interval in held)  # by fencing number
    assert len(intervals) == WORKERS * ROUNDS
    fences = [fence for fence, _, _ in intervals]
    assert fences == list(range(1, WORKERS * ROUNDS + 1))  # each number issued once, none skipped
    overlaps = [(a, b) for a, b in zip(intervals, intervals[1:]) if b[1] < a[2]]
    assert not overlaps, f"{len(overlaps)} holders overlapped, first: fences {overlaps[0][0][0]}, {overlaps[0][1][0]}"
    # Ordered by fence, the holding times are ordered too: a later holder got a higher number.
    assert [begin for _, begin, _ in intervals] == sorted(begin for _, begin, _ in intervals)
    store = SqliteStore(tmp_path / "state.db")
    kinds = [e.kind for e in store.events(rollout_id)]
    assert kinds.count("lease.acquired") == kinds.count("lease.released") == WORKERS * ROUNDS
    assert store.verify_audit(rollout_id).ok


def test_two_concurrent_runs_one_drives_the_other_names_the_holder(tmp_path: Path) -> None:
    files = write_rehearsal_files(tmp_path, n=120)
    state = f"sqlite:{tmp_path / 'state.db'}"
    started = run_rollout("start", "--plan", str(files.plan), "--inventory", str(files.inventory),
                          "--scenario", str(files.scenario), "--as", "tanaka", "--state", state)
    assert started.returncode == 0, started.stderr
    # Real time, ticking every 30 s: a winner keeps the lease for the whole test.
    runs = {who: subprocess.Popen(rollout_cmd("run", "--interval", "30", "--state", state, "--as", who),
                                  env=cli_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for who in ("alice", "bob")}
    try:
        deadline = time.monotonic() + 30
        while all(p.poll() is None for p in runs.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        losers = {who: p for who, p in runs.items() if p.poll() is not None}
        assert len(losers) == 1, "exactly one of the two runs must be refused"
        (loser, proc), = losers.items()
        winner = next(who for who in runs if who != loser)
        time.sleep(0.5)
        assert runs[winner].poll() is None, "the winner keeps driving"
        err = proc.communicate()[1]
        assert proc.returncode == 1
        assert f"being driven by {winner} on {socket.gethostname()} (pid {runs[winner].pid}) since 20" in err, err
        assert "rollout unlock --lease-id" in err
    finally:
        for p in runs.values():
            if p.poll() is None:
                p.terminate()
                p.communicate()
    store = SqliteStore(tmp_path / "state.db")
    acquired = [e for e in store.events(store.rollout_ids()[0]) if e.kind == "lease.acquired"]
    assert [e.actor for e in acquired] == [winner]


def _snapshot(store: SqliteStore) -> list[str]:
    return list(store.db.iterdump())


@pytest.fixture
def taken_over(tmp_path: Path) -> tuple[SqliteStore, Lease, Lease]:
    """A driver whose 5 s lease ran out while it was paused, and the driver that took over."""
    store, rollout_id = fresh_store(tmp_path / "state.db", n=60)
    stale = acquire_lease(store, rollout_id, "paused-driver", 1000.0, ttl=5)
    with pytest.raises(LeaseHeldError):
        acquire_lease(store, rollout_id, "new-driver", 1004.0)
    current = acquire_lease(store, rollout_id, "new-driver", 1006.0)
    assert current.fence.number == stale.fence.number + 1
    return store, stale, current


def test_every_write_of_a_driver_paused_past_its_lease_is_refused(taken_over: tuple[SqliteStore, Lease, Lease]) -> None:
    store, stale, current = taken_over
    rid = stale.rollout_id
    wave = store.waves(rid)[0]
    device = next(d for d in store.devices(rid).values() if d.wave == 0)
    move = Decision(wave_moves=[WaveMove(0, wave.phase, WavePhase.APPROVED, "approved")])
    intent = Intent("op-1", "migrate", 0, (device.device_id,))
    now = T0 + dt.timedelta(hours=1)
    writes: dict[str, Callable[[], object]] = {
        "apply_decision": lambda: apply_decision(store, rid, stale.fence, move, now, "paused-driver"),
        "record_intent": lambda: record_intent(store, rid, stale.fence, intent, now, "paused-driver"),
        "finish_intent": lambda: finish_intent(store, rid, stale.fence, intent,
                                               [StepResult(device.device_id, True, 7, now)], now, "paused-driver"),
        "renew": lambda: renew_lease(store, stale, 1007.0),
    }
    before = _snapshot(store)
    for name, write in writes.items():
        with pytest.raises(StaleWriterError, match="new-driver"):
            write()
        assert _snapshot(store) == before, f"{name} wrote something"
    # The driver that took over writes normally.
    apply_decision(store, rid, current.fence, move, now, "new-driver")
    assert store.waves(rid)[0].phase == WavePhase.APPROVED


def test_a_stale_driver_stays_refused_after_the_new_one_released(taken_over: tuple[SqliteStore, Lease, Lease]) -> None:
    store, stale, current = taken_over
    release_lease(store, current, 1010.0)
    before = _snapshot(store)
    with pytest.raises(StaleWriterError, match="nobody"):
        renew_lease(store, stale, 1011.0)
    assert _snapshot(store) == before


def test_force_unlock_needs_the_exact_lease_id_and_is_audited(taken_over: tuple[SqliteStore, Lease, Lease]) -> None:
    store, stale, current = taken_over
    rid = current.rollout_id
    for wrong in (stale.lease_id, current.lease_id[:-1], ""):
        with pytest.raises(InputError, match="not the current lease"):
            force_unlock(store, rid, wrong, "ops-lead", 1020.0)
    with pytest.raises(LeaseHeldError):
        acquire_lease(store, rid, "third-driver", 1020.0)
    assert force_unlock(store, rid, current.lease_id, "ops-lead", 1021.0) == "new-driver"
    last = list(store.events(rid))[-1]
    assert (last.kind, last.actor) == ("lease.force_unlocked", "ops-lead")
    assert last.data["lease_id"] == current.lease_id and last.data["holder"] == "new-driver"
    with pytest.raises(StaleWriterError):
        renew_lease(store, current, 1022.0)  # the unlocked driver cannot write any more
    third = acquire_lease(store, rid, "third-driver", 1022.0)
    assert third.fence.number == current.fence.number + 1
    with pytest.raises(InputError, match="held by third-driver"):  # an old id never breaks a newer lease
        force_unlock(store, rid, current.lease_id, "ops-lead", 1023.0)
    release_lease(store, third, 1024.0)
    with pytest.raises(InputError, match="no lease"):
        force_unlock(store, rid, third.lease_id, "ops-lead", 1025.0)
    assert store.verify_audit(rid).ok


def test_a_killed_drivers_lease_does_not_block_the_next_run(tmp_path: Path) -> None:
    """The lease of a process that died on this host is taken over at once (rollout run again)."""
    store, rollout_id = fresh_store(tmp_path / "state.db", n=60)
    dead = subprocess.Popen(["true"])
    dead.wait()
    with store.write() as db:
        db.execute("INSERT INTO leases VALUES (?,?,?,?,?,?,?,?)",
                   (rollout_id, "dead-lease", "killed-driver", socket.gethostname(), dead.pid, time.time(),
                    time.time() + 60, 1))
    lease = acquire_lease(store, rollout_id, "next-driver", time.time())
    assert lease.holder == "next-driver"
    assert list(store.events(rollout_id))[-1].data["took_over"] == "killed-driver"
    # A live holder, or one on another host, still blocks.
    with pytest.raises(LeaseHeldError):
        acquire_lease(store, rollout_id, "third-driver", time.time())
    with store.write() as db:
        db.execute("UPDATE leases SET host='other-host', pid=? WHERE rollout_id=?", (dead.pid, rollout_id))
    with pytest.raises(LeaseHeldError, match="other-host"):
        acquire_lease(store, rollout_id, "third-driver", time.time())
