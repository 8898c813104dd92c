"""What only the DynamoDB store has to get right: a commit whose writer died before it was applied,
a writer that wakes up late with rows older than the table's, and a missing table."""

from __future__ import annotations

from typing import Any

import pytest

import rollout.store_dynamo as store_dynamo
from rollout.engine import Decision, DeviceMove
from rollout.errors import InputError
from rollout.model import DevicePhase
from rollout.operations import add_issue, start_rollout
from rollout.recorder import apply_decision
from rollout.state import open_store
from rollout.store_dynamo import DynamoStore
from rollout.store_dynamo_io import materialize
from tests.rollout_builders import T0, small_rollout
from tests.store_builders import REGION, dynamodb_table, local_aws, local_aws_server

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
