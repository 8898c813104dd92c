"""The DynamoDB store's races, forced one interleaving at a time through ``DynamoStore.checkpoint``:
a fresh store that loads while another writer is between its commit point and its rows, a verify
that reads the log while others commit, row writes that fail after the commit point, and an
acquire built on a view older than the holder's renewal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rollout.core.decision import Decision, DeviceMove
from rollout.core.model import DevicePhase, IssueStatus, Severity
from rollout.drive.operations import add_issue, set_issue
from rollout.drive.recorder import apply_decision
from rollout.store.api import StaleWriterError
from rollout.store.dynamo import DynamoStore
from rollout.store.factory import open_store
from rollout.store.lease import acquire_lease, renew_lease
from tests.rollout_builders import T0, small_rollout
from tests.store_builders import TABLE, dynamodb_table, local_aws, local_aws_server

__all__ = ["dynamodb_table", "local_aws", "local_aws_server"]

D = DevicePhase


class Killed(Exception):
    """The writer stops here, as a SIGKILL would stop it."""


def dynamo(url: str) -> DynamoStore:
    store = open_store(url)
    assert isinstance(store, DynamoStore)
    return store


def started(url: str) -> tuple[str, list[str]]:
    from rollout.drive.operations import start_rollout

    plan, inventory = small_rollout(300)
    store = dynamo(url)
    start_rollout(store, plan["rollout"], plan, inventory, "starter", True, T0)
    store.close()
    return str(plan["rollout"]), sorted(inventory)


def at(point: str, then: Callable[[], None]) -> Callable[[str], None]:
    """A checkpoint that runs ``then`` the first time the store reaches ``point``."""
    done: list[str] = []

    def hook(reached: str) -> None:
        if reached == point and not done:
            done.append(reached)
            then()

    return hook


def killed_after_commit(reached: str) -> None:
    if reached == "store_committed":
        raise Killed("after the commit point, before any row was written")


def test_a_store_loaded_while_two_commits_land_loses_neither(dynamodb_table: str) -> None:
    """Alice sets an issue's severity and is paused after her commit point; Carol's fresh process
    applies Alice's commit, and before it reads HEAD again Bob resolves the issue (and dies before
    his rows); Carol then sets the severity to major. The issue ends major *and* resolved."""
    rid, _ = started(dynamodb_table)
    issue = add_issue(dynamo(dynamodb_table), rid, "VPN drops", "site=tokyo", None, "operator-a", T0)
    alice, bob = dynamo(dynamodb_table), dynamo(dynamodb_table)
    bob.checkpoint = killed_after_commit

    def bob_resolves() -> None:
        with pytest.raises(Killed):
            set_issue(bob, rid, issue, "operator-b", T0, status="resolved")

    def carol_loads_and_triages() -> None:
        carol = dynamo(dynamodb_table)
        carol.checkpoint = at("store_materialized", bob_resolves)
        set_issue(carol, rid, issue, "operator-c", T0, severity="major")

    alice.checkpoint = at("store_committed", carol_loads_and_triages)
    set_issue(alice, rid, issue, "operator-a", T0, severity="minor")

    fresh = dynamo(dynamodb_table)
    (row,) = fresh.issues(rid)
    assert (row.severity, row.status) == (Severity.MAJOR, IssueStatus.RESOLVED)
    triaged = [e.data for e in fresh.events(rid) if e.kind == "issue.triaged"]
    assert [t.get("severity") or t.get("status") for t in triaged] == ["minor", "resolved", "major"]
    assert fresh.verify_audit(rid).ok


def test_a_store_loaded_between_commits_never_puts_a_stale_device_bucket(dynamodb_table: str) -> None:
    """The same gap with device rows: the fresh store's next write puts whole buckets, which must
    hold the move it loaded in between."""
    rid, ids = started(dynamodb_table)
    first, second = ids[0], ids[1]
    alice, bob = dynamo(dynamodb_table), dynamo(dynamodb_table)
    bob.checkpoint = killed_after_commit

    def bob_moves_every_device() -> None:
        moves = [DeviceMove(d, D.PENDING, D.HELD, {"error": "held by #1"}) for d in ids if d != first]
        with pytest.raises(Killed):
            apply_decision(bob, rid, None, Decision(device_moves=moves), T0, "driver-b")

    def carol_moves_one() -> None:
        carol = dynamo(dynamodb_table)
        carol.checkpoint = at("store_materialized", bob_moves_every_device)
        assert carol.device_counts(rid)  # loads now, in the gap
        carol.checkpoint = lambda point: None
        apply_decision(carol, rid, None, Decision(device_moves=[DeviceMove(second, D.HELD, D.PENDING,
                                                                           {"error": "released"})]), T0, "driver-c")

    alice.checkpoint = at("store_committed", carol_moves_one)
    apply_decision(alice, rid, None, Decision(device_moves=[DeviceMove(first, D.PENDING, D.HELD)]), T0, "driver-a")

    fresh = dynamo(dynamodb_table)
    assert fresh.device_counts(rid) == {D.HELD: 299, D.PENDING: 1}
    assert fresh.devices(rid, [second])[second].phase == D.PENDING
    assert fresh.verify_audit(rid).ok


def test_verify_while_others_commit_checks_the_log_as_of_its_head(dynamodb_table: str) -> None:
    rid, _ = started(dynamodb_table)
    verifier, writer, dying = dynamo(dynamodb_table), dynamo(dynamodb_table), dynamo(dynamodb_table)
    dying.checkpoint = killed_after_commit

    def two_commits_land() -> None:
        add_issue(writer, rid, "applied", "site=tokyo", "minor", "operator-a", T0)
        with pytest.raises(Killed):  # committed, its event row not yet written
            add_issue(dying, rid, "pending", "site=tokyo", "minor", "operator-b", T0)

    before = verifier.audit_head(rid)
    verifier.checkpoint = at("store_audit_head", two_commits_land)
    report = verifier.verify_audit(rid)
    assert report.ok, report.problem
    assert (report.events, report.head_hash) == before
    again = verifier.verify_audit(rid)  # the next verify takes them in, the pending one applied first
    assert again.ok and again.events == before[0] + 2


def test_verify_still_finds_an_event_written_past_every_head(dynamodb_table: str) -> None:
    rid, _ = started(dynamodb_table)
    store = dynamo(dynamodb_table)
    count, head_hash = store.audit_head(rid)
    store.client.put_item(TableName=TABLE, Item={
        "pk": {"S": store.pk(rid)}, "sk": {"S": f"EVENT#{count + 1:09d}"}, "seq": {"N": str(count + 1)},
        "at": {"S": T0.isoformat()}, "actor": {"S": "intruder"}, "kind": {"S": "issue.triaged"},
        "data": {"S": "{}"}, "prev_hash": {"S": head_hash}, "hash": {"S": "0" * 64}})
    report = dynamo(dynamodb_table).verify_audit(rid)
    assert not report.ok
    assert f"event {count + 1}" in (report.problem or "")


def fail_row_writes(store: DynamoStore) -> list[str]:
    """Every row put after the commit point fails (the commit record and HEAD still land)."""
    failed: list[str] = []

    def refuse(params: dict[str, Any], **kwargs: Any) -> None:
        if "<= :k" in str(params.get("ConditionExpression", "")):
            failed.append(str(params["Item"]["sk"]["S"]))
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected row failure"}}, "PutItem")

    store.client.meta.events.register("before-parameter-build.dynamodb.PutItem", refuse)
    return failed


def test_rows_failing_after_the_commit_point_report_committed_not_a_failure(
        dynamodb_table: str, caplog: pytest.LogCaptureFixture) -> None:
    rid, _ = started(dynamodb_table)
    store = dynamo(dynamodb_table)
    failed = fail_row_writes(store)
    with caplog.at_level(logging.WARNING, logger="rollout.store"):
        issue = add_issue(store, rid, "printer gone", "site=tokyo", "minor", "operator-a", T0)
    assert failed, "the fault was not injected"
    assert issue == 1
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "rollout.store"]
    assert "committed; rows will be applied by the next reader" in warning
    assert warning.endswith("do not run the command again.")
    reader = dynamo(dynamodb_table)  # a fresh process applies the rows
    assert [i.title for i in reader.issues(rid)] == ["printer gone"]
    assert reader.verify_audit(rid).ok
    head = reader.head(rid)
    assert head["applied"] == head["seq"]


def test_an_acquire_built_before_a_renewal_wins_but_the_old_driver_writes_nothing(dynamodb_table: str) -> None:
    """A renewal changes only HEAD's lease fields (no new commit), so a takeover decided on a view
    from before it still lands. Fencing is what protects the rollout: the old driver's writes fail."""
    rid, ids = started(dynamodb_table)
    old_driver = dynamo(dynamodb_table)
    late = DynamoStore(TABLE, old_driver.client, head_ttl=3600.0)  # keeps the view it read
    lease = acquire_lease(old_driver, rid, "driver-a", 1000.0, ttl=60)
    late.status(rid)  # reads HEAD now: the lease expires at 1060
    renewed = renew_lease(old_driver, lease, 1050.0, ttl=60)  # holds it until 1110
    taken = acquire_lease(late, rid, "driver-b", 1070.0, ttl=60)  # sees an expired lease
    assert taken.fence.number > lease.fence.number
    before = dynamo(dynamodb_table).export_rollout(rid)
    with pytest.raises(StaleWriterError, match="held by driver-b"):
        apply_decision(old_driver, rid, renewed.fence,
                       Decision(device_moves=[DeviceMove(ids[0], D.PENDING, D.HELD)]), T0, "driver-a")
    with pytest.raises(StaleWriterError):
        renew_lease(old_driver, renewed, 1080.0, ttl=60)
    after = dynamo(dynamodb_table)
    assert after.export_rollout(rid) == before
    holder = after.lease_row(rid)
    assert holder is not None and holder.holder == "driver-b"
    fences = [e.data["fence"] for e in after.events(rid) if e.kind == "lease.acquired"]
    assert fences == sorted(set(fences)) == [lease.fence.number, taken.fence.number]


def test_a_reader_that_cannot_apply_a_pending_commit_still_reads_it(dynamodb_table: str) -> None:
    """A writer died after its commit point, and this reader's own row writes fail too: it still
    sees the commit (from its record), its last event's time, and a log that verifies."""
    rid, _ = started(dynamodb_table)
    dying = dynamo(dynamodb_table)
    dying.checkpoint = killed_after_commit
    with pytest.raises(Killed):
        add_issue(dying, rid, "pending", "site=tokyo", "minor", "operator-b", T0.replace(hour=11))
    reader = dynamo(dynamodb_table)
    failed = fail_row_writes(reader)
    assert [i.title for i in reader.issues(rid)] == ["pending"]
    assert reader.last_event_time(rid) == T0.replace(hour=11)
    report = reader.verify_audit(rid)
    assert report.ok and report.events == 2, report.problem
    assert failed, "the fault was not injected"
    head = reader.head(rid)
    assert head["applied"] < head["seq"]  # still left for the next reader
