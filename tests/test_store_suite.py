"""One suite for every state store: SQLite and DynamoDB (moto) must behave the same.

Each test runs against both. A second ``stores()`` call is a second operator (another process)
on the same state: it must see everything the first one wrote, and races between them must be
refused or resolved, never lost.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from rollout.core.decision import Decision, DeviceMove, WaveMove
from rollout.core.model import DevicePhase, IssueStatus, Severity, StepResult, WavePhase
from rollout.drive.operations import (
    add_issue,
    approve,
    pause,
    replan,
    request_rollback,
    waive_separation_of_duties,
    resume,
    set_issue,
    start_rollout,
)
from rollout.drive.recorder import apply_decision, finish_intent, record_intent
from rollout.errors import InputError, NotFoundError
from rollout.store.api import ConflictError, Intent, SentNotice, StaleWriterError, StateStore
from rollout.store.factory import init_store, open_store
from rollout.store.lease import (
    LeaseHeldError,
    acquire_lease,
    force_unlock,
    release_lease,
    renew_lease,
)
from tests.rollout_builders import T0, small_rollout
from tests.store_builders import (
    KINDS,
    REGION,
    TABLE,
    OpenStore,
    dynamodb_table,
    local_aws,
    local_aws_server,
    open_kind,
    snapshot,
)

__all__ = ["dynamodb_table", "local_aws", "local_aws_server"]  # fixtures the DynamoDB runs use

D, W = DevicePhase, WavePhase
HOUR = dt.timedelta(hours=1)


@pytest.fixture(params=KINDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> OpenStore:
    return open_kind(request.param, tmp_path, request)


def started(store: StateStore, n: int = 200) -> str:
    plan, inventory = small_rollout(n)
    start_rollout(store, plan["rollout"], plan, inventory, "starter", True, T0)
    return str(plan["rollout"])


def applying(store: StateStore, rid: str) -> None:
    """The canary started, as the engine starts it: migrate intents are only taken for an applying wave."""
    apply_decision(store, rid, None, Decision(wave_moves=[WaveMove(0, W.PLANNED, W.APPROVED, "approved"),
                                                          WaveMove(0, W.APPROVED, W.APPLYING, "started")]), T0,
                   "driver")


def test_a_started_rollout_reads_back_as_it_was_written(stores: OpenStore) -> None:
    store = stores()
    plan, inventory = small_rollout(200)
    start_rollout(store, plan["rollout"], plan, inventory, "starter", True, T0)
    rid = plan["rollout"]
    other = stores()
    for s in (store, other):
        assert s.rollout_ids() == [rid]
        assert s.plan_json(rid) == plan
        assert [(w.index, w.name, w.hash, w.phase) for w in s.waves(rid)] == \
            [(w["index"], w["name"], w["hash"], W.PLANNED) for w in plan["waves"]]
        assert sorted(s.devices(rid)) == sorted(inventory)
        assert s.inventory(rid) == inventory
        assert s.device_counts(rid) == {D.PENDING: 200}
        assert s.status(rid).started_by == "starter" and s.status(rid).separation_of_duties
        assert [e.kind for e in s.events(rid)] == ["rollout.started"]
        assert s.verify_audit(rid).ok
        assert s.last_event_time(rid) == T0
    with pytest.raises(InputError, match="already exists"):
        start_rollout(other, rid, plan, inventory, "starter", True, T0)
    with pytest.raises(NotFoundError, match="no rollout 'nope'"):
        store.status("nope")


def test_commands_of_two_operators_are_all_recorded_in_order(stores: OpenStore) -> None:
    first, second = stores(), stores()
    rid = started(first)
    approve(first, rid, "canary", "pm-1", "pm", "looks fine", T0 + HOUR)
    approve(second, rid, "canary", "pm-1", "pm", "again", T0 + 2 * HOUR)  # the same approval: kept once
    approve(second, rid, "canary", "sec-1", "security", "", T0 + 2 * HOUR)
    issue = add_issue(first, rid, "printing breaks", "model=dynabook G83", None, "user-1", T0 + 3 * HOUR)
    assert add_issue(second, rid, "VPN slow", "site=osaka", "minor", "user-2", T0 + 3 * HOUR) == issue + 1
    set_issue(second, rid, issue, "pm-1", T0 + 4 * HOUR, severity="blocker")
    pause(first, rid, "pm-1", "waiting for the printer fix", T0 + 5 * HOUR)
    for s in (first, second):
        assert [(a.by, a.role, a.comment) for a in s.approvals(rid)] == [("pm-1", "pm", "looks fine"),
                                                                         ("sec-1", "security", "")]
        issues = s.issues(rid)
        assert [(i.id, i.severity, i.status, i.decided_by) for i in issues] == \
            [(issue, Severity.BLOCKER, IssueStatus.OPEN, "pm-1"), (issue + 1, Severity.MINOR, IssueStatus.OPEN, "user-2")]
        assert s.status(rid).paused and s.status(rid).pause_reason == "waiting for the printer fix"
        kinds = [e.kind for e in s.events(rid)]
        assert kinds == ["rollout.started"] + ["approval.added"] * 3 + ["issue.reported"] * 2 + \
            ["issue.triaged", "rollout.paused"]
        assert s.verify_audit(rid).ok


def test_a_compare_and_set_that_lost_writes_nothing(stores: OpenStore) -> None:
    driver, operator = stores(), stores()
    rid = started(driver)
    wave = driver.waves(rid)[0]
    device = next(d for d in driver.devices(rid).values() if d.wave == 0)
    before = snapshot(operator, rid)
    stale = Decision(wave_moves=[WaveMove(0, W.APPROVED, W.APPLYING, "started")],
                     device_moves=[DeviceMove(device.device_id, D.PENDING, D.HELD)])
    with pytest.raises(ConflictError, match="wave 0 is no longer approved"):
        apply_decision(driver, rid, None, stale, T0, "driver")
    assert snapshot(operator, rid) == before
    good = Decision(wave_moves=[WaveMove(0, wave.phase, W.APPROVED, "approved")],
                    device_moves=[DeviceMove(device.device_id, D.PENDING, D.HELD, {"error": "held by #1"}),
                                  DeviceMove(device.device_id, D.HELD, D.PENDING, {"error": ""})])
    apply_decision(driver, rid, None, good, T0 + HOUR, "driver")
    assert operator.waves(rid)[0].phase == W.APPROVED
    assert operator.devices(rid, [device.device_id])[device.device_id].phase == D.PENDING  # both moves, in order


def test_a_tick_that_moves_thousands_of_devices_lands_whole(stores: OpenStore) -> None:
    store = stores()
    rid = started(store, n=2500)
    moves = [DeviceMove(d, D.PENDING, D.HELD, {"error": "held by issue #1"}) for d in sorted(store.devices(rid))]
    apply_decision(store, rid, None, Decision(device_moves=moves), T0 + HOUR, "driver")
    other = stores()
    assert other.device_counts(rid) == {D.HELD: 2500}
    assert all(d.error == "held by issue #1" for d in other.devices(rid).values())
    event = list(other.events(rid))[-1]
    assert event.kind == "devices.moved" and len(event.data["devices"]) == 2500
    assert other.verify_audit(rid).ok


def test_intents_are_open_until_done_and_results_land_on_the_devices(stores: OpenStore) -> None:
    store = stores()
    rid = started(store)
    applying(store, rid)
    ids = tuple(sorted(d.device_id for d in store.devices(rid).values() if d.wave == 0))[:5]
    intent = Intent("op-1", "migrate", 0, ids, 4)
    record_intent(store, rid, None, intent, T0, "driver")
    assert stores().open_intents(rid) == [intent]  # with the error budget it was given
    assert {d.phase for d in store.devices(rid, ids).values()} == {D.MIGRATING}
    results = [StepResult(d, d != ids[0], 7 if d != ids[0] else 1, T0 + HOUR, "" if d != ids[0] else "no such user",
                          ref="cmd-1") for d in ids]
    finish_intent(store, rid, None, intent, results, T0 + HOUR, "driver")
    other = stores()
    assert other.open_intents(rid) == []
    rows = other.devices(rid, ids)
    assert (rows[ids[0]].phase, rows[ids[0]].error, rows[ids[0]].steps_done) == (D.FAILED, "no such user", 1)
    assert {(rows[d].phase, rows[d].migrated_at, rows[d].steps_done, rows[d].ref) for d in ids[1:]} == \
        {(D.MIGRATED, T0 + HOUR, 7, "cmd-1")}
    assert other.steps_of(rid, ids) == {d: rows[d].steps_done for d in ids}


def test_leases_one_holder_takeover_after_expiry_exact_unlock(stores: OpenStore) -> None:
    first, second = stores(), stores()
    rid = started(first)
    held = acquire_lease(first, rid, "alice", 1000.0, ttl=5, host="host-a")
    with pytest.raises(LeaseHeldError, match="being driven by alice on host-a"):
        acquire_lease(second, rid, "bob", 1004.0, host="host-b")
    taken = acquire_lease(second, rid, "bob", 1006.0, host="host-b")
    assert taken.fence.number == held.fence.number + 1
    lease = first.lease_row(rid)
    assert lease is not None and (lease.holder, lease.fence) == ("bob", taken.fence.number)
    with pytest.raises(InputError, match="not the current lease"):
        force_unlock(first, rid, held.lease_id, "ops-lead", 1007.0)
    assert force_unlock(first, rid, taken.lease_id, "ops-lead", 1008.0) == "bob"
    third = acquire_lease(first, rid, "carol", 1009.0)
    assert third.fence.number == taken.fence.number + 1
    release_lease(first, third, 1010.0)
    assert second.lease_row(rid) is None
    assert [e.kind for e in second.events(rid)][-5:] == ["lease.acquired", "lease.acquired", "lease.force_unlocked",
                                                         "lease.acquired", "lease.released"]


def test_every_write_of_a_driver_past_its_lease_is_refused(stores: OpenStore) -> None:
    paused, fresh = stores(), stores()
    rid = started(paused)
    stale = acquire_lease(paused, rid, "paused-driver", 1000.0, ttl=5)
    current = acquire_lease(fresh, rid, "new-driver", 1006.0)
    device = next(d for d in paused.devices(rid).values() if d.wave == 0)
    intent = Intent("op-1", "migrate", 0, (device.device_id,))
    move = Decision(wave_moves=[WaveMove(0, W.PLANNED, W.APPROVED, "approved")])
    before = snapshot(fresh, rid)
    for write in (lambda: apply_decision(paused, rid, stale.fence, move, T0, "paused-driver"),
                  lambda: record_intent(paused, rid, stale.fence, intent, T0, "paused-driver"),
                  lambda: finish_intent(paused, rid, stale.fence, intent,
                                        [StepResult(device.device_id, True, 7, T0)], T0, "paused-driver"),
                  lambda: renew_lease(paused, stale, 1007.0)):
        with pytest.raises(StaleWriterError, match="new-driver"):
            write()
        assert snapshot(fresh, rid) == before
    apply_decision(fresh, rid, current.fence, move, T0, "new-driver")
    assert paused.waves(rid)[0].phase == W.APPROVED


def test_replan_changes_waiting_waves_and_tells_cached_readers(stores: OpenStore) -> None:
    store = stores()
    plan, inventory = small_rollout(200)
    start_rollout(store, plan["rollout"], plan, inventory, "starter", True, T0)
    rid = plan["rollout"]
    approve(store, rid, "wave-1", "pm-1", "pm", "", T0)
    epoch = store.device_rows_epoch(rid)
    moved = plan["waves"][2]["devices"][0]
    new = {**plan, "plan_hash": "new-hash", "waves": [dict(w) for w in plan["waves"]]}
    new["waves"][2] = {**new["waves"][2], "hash": "h2", "devices": [d for d in new["waves"][2]["devices"] if d != moved]}
    new["waves"][3] = {**new["waves"][3], "hash": "h3", "devices": sorted(new["waves"][3]["devices"] + [moved])}
    assert replan(store, rid, new, "pm-1", T0 + HOUR) == ["wave-2", "wave-3"]
    other = stores()
    assert other.device_rows_epoch(rid) != epoch
    assert other.plan_json(rid)["plan_hash"] == "new-hash" and other.status(rid).plan_hash == "new-hash"
    assert other.devices(rid, [moved])[moved].wave == 3
    assert [w.hash for w in other.waves(rid)][2:4] == ["h2", "h3"]


def test_a_migration_is_not_taken_once_its_wave_was_rolled_back(stores: OpenStore) -> None:
    store = stores()
    rid = started(store)
    applying(store, rid)
    request_rollback(stores(), rid, "canary", "pm-1", "printing", T0)
    ids = tuple(sorted(d.device_id for d in store.devices(rid).values() if d.wave == 0))[:3]
    before = snapshot(store, rid)
    with pytest.raises(ConflictError, match="wave 0 is no longer applying"):
        record_intent(store, rid, None, Intent("op-9", "migrate", 0, ids), T0, "driver")
    assert snapshot(store, rid) == before
    record_intent(store, rid, None, Intent("op-10", "revert", 0, ids), T0, "driver")  # reverts always go on


def test_resume_and_rollback_on_demand(stores: OpenStore) -> None:
    store = stores()
    rid = started(store)
    apply_decision(store, rid, None, Decision(wave_moves=[WaveMove(0, W.PLANNED, W.APPROVED, "a"),
                                                          WaveMove(0, W.APPROVED, W.APPLYING, "b"),
                                                          WaveMove(0, W.APPLYING, W.BAKING, "c"),
                                                          WaveMove(0, W.BAKING, W.HELD, "d")]), T0, "driver")
    assert resume(store, rid, "pm-1", T0 + HOUR) == ["canary"]
    assert stores().waves(rid)[0].phase == W.BAKING
    request_rollback(store, rid, "canary", "pm-1", "printing", T0 + 2 * HOUR)
    other = stores()
    assert other.waves(rid)[0].phase == W.FAILED and other.status(rid).halted
    assert "rolled back on demand by pm-1: printing" in other.status(rid).halt_reason


def test_two_operators_writing_at_once_lose_nothing(stores: OpenStore) -> None:
    first = stores()
    rid = started(first)
    writers = [stores() for _ in range(3)]
    errors: list[BaseException] = []

    def write(store: StateStore, who: int) -> None:
        try:
            for i in range(15):
                add_issue(store, rid, f"issue {who}-{i}", "site=tokyo", "minor", f"user-{who}", T0)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    issues = first.issues(rid)
    assert sorted(i.id for i in issues) == list(range(1, 46))  # unique ids, none lost
    assert sorted(i.title for i in issues) == sorted(f"issue {w}-{i}" for w in range(3) for i in range(15))
    assert first.verify_audit(rid).ok and first.audit_head(rid)[0] == 46


@pytest.mark.parametrize("target", KINDS)
def test_a_rollout_moves_between_stores_unchanged(stores: OpenStore, target: str, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    source = stores()
    rid = started(source)
    approve(source, rid, "canary", "pm-1", "pm", "", T0)
    add_issue(source, rid, "printing", "model=dynabook G83", "blocker", "pm-1", T0)
    ids = tuple(sorted(d.device_id for d in source.devices(rid).values() if d.wave == 0))[:3]
    applying(source, rid)
    record_intent(source, rid, None, Intent("op-1", "migrate", 0, ids), T0, "driver")
    acquire_lease(source, rid, "driver", 1000.0)
    waive_separation_of_duties(source, rid, "security-1", "security", "a two-person team", T0)
    sent = SentNotice("canary", "v1", "taro@example.com", "Taro@Example.com", "msg-1", T0.isoformat())
    source.record_notice_sent(rid, sent)
    if target == "sqlite":
        destination = open_store(f"sqlite:{tmp_path / 'copy.db'}")
    else:
        url = request.getfixturevalue("dynamodb_table") if source.location.startswith("sqlite") else \
            f"dynamodb://{TABLE}-copy?region={REGION}&cache=0"
        init_store(url)
        destination = open_store(url)
    destination.import_rollout(source.export_rollout(rid))
    copied = snapshot(destination, rid)
    original = snapshot(source, rid)
    assert copied[:-1] == original[:-1]  # everything but the lease, which stays behind
    assert destination.lease_row(rid) is None
    assert destination.verify_audit(rid).ok and destination.audit_head(rid) == source.audit_head(rid)
    assert destination.open_intents(rid) == [Intent("op-1", "migrate", 0, ids)]
    assert destination.notices_sent(rid, "canary", "v1") == {"taro@example.com": sent}  # none goes twice there
    assert destination.status(rid).duties_waived == source.status(rid).duties_waived
    assert destination.status(rid).duties_waived is not None
    approve(destination, rid, "wave-1", "pm-2", "pm", "", T0 + HOUR)  # and it goes on there
    assert destination.verify_audit(rid).ok
    destination.close()
