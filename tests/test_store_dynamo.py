"""What only the DynamoDB store has to get right: a commit whose writer died before it was applied,
a writer that wakes up late with rows older than the table's, and a missing table."""

from __future__ import annotations

from typing import Any

import pytest

import rollout.store.dynamo as store_dynamo
from rollout.core.decision import Decision, DeviceMove
from rollout.core.model import DevicePhase
from rollout.drive.operations import add_issue, start_rollout
from rollout.drive.recorder import apply_decision
from rollout.errors import InputError
from rollout.store.dynamo import DynamoStore
from rollout.store.dynamo_io import materialize
from rollout.store.factory import open_store
from tests.rollout_builders import T0, small_rollout
from tests.store_builders import (
    REGION,
    TABLE,
    dynamodb_table,
    local_aws,
    local_aws_server,
)

__all__ = ["dynamodb_table", "local_aws", "local_aws_server"]

D = DevicePhase


class Crash(Exception):
    pass


def dynamo(url: str) -> DynamoStore:
    store = open_store(url)
    assert isinstance(store, DynamoStore)
    return store


def started(store: DynamoStore) -> tuple[str, list[str]]:
    plan, inventory = small_rollout(300)
    start_rollout(store, plan["rollout"], plan, inventory, "starter", True, T0)
    return str(plan["rollout"]), sorted(inventory)


def test_a_commit_its_writer_did_not_apply_is_applied_by_the_next_reader(dynamodb_table: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    writer = dynamo(dynamodb_table)
    rid, ids = started(writer)

    def die(*args: Any) -> None:
        raise Crash("killed after the commit point, before any row was written")

    moves = Decision(device_moves=[DeviceMove(d, D.PENDING, D.HELD, {"error": "held by #1"}) for d in ids])
    with monkeypatch.context() as patched, pytest.raises(Crash):
        patched.setattr(store_dynamo, "materialize", die)
        apply_decision(writer, rid, None, moves, T0, "driver")
    reader = dynamo(dynamodb_table)  # a fresh process: it knows nothing but the table
    assert reader.device_counts(rid) == {D.HELD: 300}
    assert [e.kind for e in reader.events(rid)][-1] == "devices.moved"
    assert reader.verify_audit(rid).ok
    head = reader.head(rid)
    assert head["applied"] == head["seq"]
    assert add_issue(writer, rid, "after the crash", "site=tokyo", "minor", "pm", T0) == 1  # the writer goes on


def test_a_writer_that_applies_its_commit_late_never_overwrites_newer_rows(dynamodb_table: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    paused = dynamo(dynamodb_table)
    rid, ids = started(paused)
    held: list[tuple[Any, ...]] = []
    with monkeypatch.context() as patched:
        patched.setattr(store_dynamo, "materialize", lambda *args: held.append(args))
        apply_decision(paused, rid, None, Decision(device_moves=[DeviceMove(ids[0], D.PENDING, D.HELD)]), T0,
                       "paused")
    (late,) = held  # the paused writer's phase 2, not run yet

    other = dynamo(dynamodb_table)  # applies the pending commit itself, then moves the device on
    apply_decision(other, rid, None, Decision(device_moves=[DeviceMove(ids[0], D.HELD, D.PENDING,
                                                                       {"error": "released"})]), T0, "other")
    store, rollout_id, record, buckets, _ = late
    materialize(store, rollout_id, record, buckets, None)  # wakes up and writes its old rows
    fresh = dynamo(dynamodb_table)
    device = fresh.devices(rid, [ids[0]])[ids[0]]
    assert (device.phase, device.error) == (D.PENDING, "released")
    assert fresh.verify_audit(rid).ok


def test_a_missing_table_names_the_command_that_creates_it(local_aws: Any) -> None:
    with pytest.raises(InputError, match=r"no such DynamoDB table; create it with `rollout state init --state "
                                         rf"dynamodb://nope\?region={REGION}`"):
        open_store(f"dynamodb://nope?region={REGION}")


def test_a_state_url_with_an_unknown_option_is_refused() -> None:
    with pytest.raises(InputError, match="unknown option 'regoin'"):
        open_store("dynamodb://t?regoin=ap-northeast-1")


def test_the_store_calls_only_what_its_policy_grants(dynamodb_table: str) -> None:
    from rollout.core.permissions import STATE_STORE_ACTIONS
    from rollout.store.lease import acquire_lease, release_lease

    store = dynamo(dynamodb_table)
    called: set[str] = set()
    store.client.meta.events.register("before-call.dynamodb", lambda model, **kw: called.add(f"dynamodb:{model.name}"))
    rid, ids = started(store)
    lease = acquire_lease(store, rid, "driver", 1000.0)
    apply_decision(store, rid, lease.fence, Decision(device_moves=[DeviceMove(ids[0], D.PENDING, D.HELD)]), T0,
                   "driver")
    store.verify_audit(rid)
    release_lease(store, lease, 1001.0)
    dynamo(dynamodb_table).export_rollout(rid)
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:GetItem",
            "dynamodb:BatchWriteItem"} <= called
    assert called <= set(STATE_STORE_ACTIONS)


def test_a_commit_whose_answer_was_lost_is_kept_not_deleted_by_its_retry(dynamodb_table: str) -> None:
    """botocore retries an UpdateItem whose answer was lost; the retry fails its condition (the first
    landed). The store asks HEAD and keeps its commit instead of deleting its record."""
    from botocore.exceptions import ReadTimeoutError
    from botocore.httpsession import URLLib3Session

    store = dynamo(dynamodb_table)
    rid, ids = started(store)
    http, lost = URLLib3Session(), []

    def lose_first_commit_answer(request: Any, event_name: str = "", **kwargs: Any) -> Any:
        if event_name.endswith("UpdateItem") and b"#seq = :s" in request.body and not lost:
            lost.append(http.send(request))
            raise ReadTimeoutError(endpoint_url=request.url)
        return None

    store.client.meta.events.register_first("before-send.dynamodb.UpdateItem", lose_first_commit_answer)
    add_issue(store, rid, "lost answer", "site=tokyo", "minor", "pm", T0)
    assert lost, "the fault was not injected"
    fresh = dynamo(dynamodb_table)
    assert [i.title for i in fresh.issues(rid)] == ["lost answer"]
    assert fresh.verify_audit(rid).ok
    add_issue(fresh, rid, "and after it", "site=tokyo", "minor", "pm", T0)
    assert len(store.issues(rid)) == 2


def test_a_long_lived_reader_follows_a_writer_that_reuses_its_head(dynamodb_table: str) -> None:
    writer = DynamoStore(TABLE, dynamo(dynamodb_table).client, head_ttl=30.0)  # reuses HEAD between commits
    rid, _ = started(writer)
    reader = dynamo(dynamodb_table)
    assert reader.issues(rid) == []  # loaded now; it must catch up from the commit records from here
    for n in range(4):
        add_issue(writer, rid, f"issue {n}", "site=tokyo", "minor", "pm", T0)
    assert [i.title for i in reader.issues(rid)] == [f"issue {n}" for n in range(4)]
    assert reader.verify_audit(rid).ok
