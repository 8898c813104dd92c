"""The team state store: one DynamoDB table that several operators and CI can all reach.

``--state dynamodb://TABLE?region=R`` (``rollout state init`` creates the table). It implements
``rollout.store.api.StateStore`` like the SQLite store and passes the same test suite.

How a write stays atomic and fenced at any size (a tick may move 10,000 devices; a DynamoDB
transaction holds at most 100 items):

1. Every rollout has a HEAD item: its fields, the audit chain's head, the lease, and ``seq`` (the
   last commit) and ``applied`` (the last commit materialized). Commits are totally ordered by it.
2. Commit ``k``: the commit record (the full new rows, zlib-compressed) is put under a fresh
   nonce, then HEAD is updated with ONE conditional UpdateItem - the commit point - on
   ``seq = applied = k-1`` (no one committed since this writer read, nothing is half-applied) and,
   for a driver, on the lease still being its own (``lease_id``, ``lease_fence``). A lost race is
   retried from a fresh read; a lost lease is ``StaleWriterError``; a row that changed is
   ``ConflictError``. No multi-item transaction is needed, so nothing limits a commit to 100 items.
3. Then the rows are materialized from the record: conditional puts (``seq <= k``), in parallel,
   device rows in buckets of ~50 per item, and HEAD's ``applied`` is moved to ``k``. Anyone who
   finds a commit not yet applied (the writer crashed between 2 and 3) materializes it first; doing
   it twice is harmless, and a paused writer can never put an old row over a newer one (the ``seq``
   condition), because commit ``k+1`` is only accepted after ``k`` was applied completely.

Each store instance keeps a replica of the rollout's rows, loaded as of HEAD's ``applied`` (never
``seq``: the rows may not hold that commit yet) and brought up to date from the commit records
since the seq it last saw, so reads cost one GetItem of HEAD and compare-and-set is checked
against the state as of ``seq``. The commit path is in ``rollout.store.dynamo_io``,
creation, export and import in ``rollout.store.dynamo_create``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rollout.core.audit import AuditReport, Event, verify_chain
from rollout.core.device import Device, parse_record
from rollout.core.model import (
    Approval,
    DevicePhase,
    DeviceState,
    Issue,
    RolloutStatus,
    WaveState,
)
from rollout.errors import InputError, NotFoundError
from rollout.faults import FaultSwitch
from rollout.store.api import (
    Build,
    Changes,
    ConflictError,
    Fence,
    Intent,
    LeaseRow,
    RolloutDump,
    SentNotice,
    StaleWriterError,
)
from rollout.store.dynamo_commit import plan_commit
from rollout.store.dynamo_create import create, export_rollout, import_rollout
from rollout.store.dynamo_io import (
    PARTITIONS,
    event_of,
    events_between,
    materialize,
    new_nonce,
    read_records,
    unpack,
    write_commit,
)
from rollout.store.dynamo_items import blob_value, from_item, query_all
from rollout.store.dynamo_notices import dynamo_record, dynamo_sent
from rollout.store.dynamo_replica import DynamoView, Replica, apply_record, approval_key, ids_in_phases, intent_of
from rollout.store.dynamo_replica import lease_of, phase_counts, wave_phase_counts
from rollout.store.rows import (
    approval_from_row,
    device_from_row,
    issue_from_row,
    status_from_row,
    wave_from_row,
)

MAX_ATTEMPTS = 60
log = logging.getLogger("rollout.store")


class DynamoStore:
    """The DynamoDB implementation of ``rollout.store.api.StateStore``."""

    def __init__(self, table: str, client: Any, *, region: str | None = None, workers: int = 16,
                 head_ttl: float = 1.0) -> None:
        self.table, self.client, self.head_ttl = table, client, head_ttl
        self._heads: dict[str, tuple[float, dict[str, Any]]] = {}
        self.location = f"dynamodb://{table}" + (f"?region={region}" if region else "")
        self._replicas: dict[str, Replica] = {}
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="zt-state")
        #: Called at ``store_committed`` (after this store's commit point, before its rows are written),
        #: ``store_materialized`` (after applying another writer's commit, before HEAD is read again) and
        #: ``store_audit_head`` (after ``verify_audit`` read HEAD): tests run other stores in these gaps,
        #: ``ROLLOUT_FAULT_KILL_AT=store_committed:N`` kills the process there.
        self.checkpoint: Callable[[str], None] = FaultSwitch()
        try:
            client.describe_table(TableName=table)
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceNotFoundException":
                raise InputError(f"{self.location}: no such DynamoDB table; create it with "
                                 f"`rollout state init --state {self.location}`.") from None
            raise

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    @staticmethod
    def pk(rollout_id: str) -> str:
        return f"R#{rollout_id}"

    def head(self, rollout_id: str, *, missing_ok: bool = False) -> dict[str, Any]:
        got = self.client.get_item(TableName=self.table, Key={"pk": {"S": self.pk(rollout_id)}, "sk": {"S": "HEAD"}},
                                   ConsistentRead=True)
        head = from_item(got["Item"]) if "Item" in got else {}
        if head.get("state") != "ready" and not missing_ok:
            known = ", ".join(self.rollout_ids()) or "none"
            raise NotFoundError(f"no rollout {rollout_id!r} in {self.location} (rollouts there: {known}); "
                                "start one with `rollout start --plan plan.json`.")
        return head

    # -- the replica ----------------------------------------------------------------------------

    def replica(self, rollout_id: str) -> Replica:
        """The replica, up to date with HEAD (materializing a commit its writer left unfinished).

        Reads within ``head_ttl`` seconds of the last HEAD this store saw reuse it: a read may be
        that much behind another operator's write, never behind this store's own, and every write
        is checked against the real HEAD anyway."""
        seen = self._heads.get(rollout_id)
        if seen is not None and time.monotonic() - seen[0] < self.head_ttl and rollout_id in self._replicas:
            return self._replicas[rollout_id]
        head = self.head(rollout_id)
        if int(head["applied"]) < int(head["seq"]):
            self._apply_pending(rollout_id, head)
            head = self.head(rollout_id)  # another commit may have landed since, its rows not yet written
        replica = self._replicas.get(rollout_id)
        if replica is None:
            replica = self._load(rollout_id, head)
            self._replicas[rollout_id] = replica
            head = replica.head  # the load may have caught up past the HEAD read before it
        if int(head["seq"]) > replica.seq:
            for record in read_records(self, rollout_id, head, replica.seq + 1):
                apply_record(replica, record)
            replica.seq = int(head["seq"])
        replica.head = head
        self._heads[rollout_id] = (time.monotonic(), head)
        return replica

    def _apply_pending(self, rollout_id: str, head: dict[str, Any]) -> dict[str, Any]:
        """Materialize HEAD's commit, which its writer committed but has not applied (yet, or ever);
        returns its record. A failure leaves it to the next reader: reads do not need it (a replica
        catches up from the records), and a write cannot commit until it is applied."""
        (record,) = read_records(self, rollout_id, head, int(head["seq"]))
        try:
            materialize(self, rollout_id, record, int(head["buckets"]), None)
        except (ClientError, BotoCoreError) as err:
            log.debug("rollout %s: commit %s left for the next reader to apply: %s", rollout_id, record["seq"], err)
        self.checkpoint("store_materialized")
        return record

    def _load(self, rollout_id: str, head: dict[str, Any]) -> Replica:
        """Every row of the rollout, as of HEAD's ``applied`` (the rows hold every commit up to it, and
        maybe parts of the next), then the commit records after it; rows a concurrent commit already
        rewrote keep their newer seq. Never as of ``seq``: a commit past ``applied`` may not be in the
        rows yet, and the catch-up below would never look at it again."""
        replica = Replica(head, int(head["applied"]))
        pk = self.pk(rollout_id)
        for prefix, kind, key in (("WAVE#", "waves", "idx"), ("APPR#", "approvals", ""), ("ISSUE#", "issues", "id"),
                                  ("DEC#", "decisions", ""), ("INTENT#", "intents", "op_id")):
            for item in query_all(self.client, self.table, pk, prefix):
                row = unpack(item)
                name = row[key] if key else (item["sk"][5:] if kind == "approvals" else int(item["sk"][4:]))
                replica.table(kind)[name] = row
        for items in self.pool.map(lambda n: list(query_all(self.client, self.table, f"{pk}#D#{n:02d}")),
                                   range(PARTITIONS)):
            for item in items:
                bucket = int(item["sk"][2:])
                rows = blob_value([item["rows"]])
                for device_id, row in rows.items():
                    replica.devices[device_id] = {**row, "_v": int(item["_v"])}
                replica.buckets[bucket] = sorted(rows)
        while True:  # a commit that landed while the rows were read: catch up from its record
            now = self.head(rollout_id)
            if int(now["seq"]) == replica.seq:
                return replica
            for record in read_records(self, rollout_id, now, replica.seq + 1):
                apply_record(replica, record)
            replica.seq, replica.head = int(now["seq"]), now

    # -- writing ----------------------------------------------------------------------------------

    def transact(self, rollout_id: str, build: Build, fence: Fence | None = None) -> Changes:
        """Build and commit one change set (see the module docstring); retried on a lost race."""
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                self._heads.pop(rollout_id, None)  # lost a race: read HEAD again
            replica = self.replica(rollout_id)
            if fence is not None:  # as SQLite does: a stale driver hears so before anything else
                self._check_fence(rollout_id, replica.head, fence)
            changes = build(DynamoView(rollout_id, replica))
            plan = plan_commit(rollout_id, replica, changes, approval_key)
            if plan.empty:
                return changes
            if plan.record is not None:
                plan.record["prev_nonce"] = replica.head.get("nonce") or ""
                plan.head["nonce"] = new_nonce()
            expected = replica.seq if plan.record is not None else None
            if write_commit(self, rollout_id, plan.seq, plan.head, plan.removed, plan.record, expected, fence):
                replica.head.update(plan.head)  # before anything below can fail: HEAD has moved
                for name in plan.removed:
                    replica.head.pop(name, None)
                if plan.record is not None:
                    apply_record(replica, plan.record)
                    replica.seq = plan.seq
                    self._apply_own(rollout_id, plan.record, replica)
                return changes
            if fence is not None:
                self._check_fence(rollout_id, self.head(rollout_id), fence)
            time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** attempt)))
        raise ConflictError(f"rollout {rollout_id}: {MAX_ATTEMPTS} writers raced this one in {self.location}; "
                            "nothing was written, try again.")

    def _apply_own(self, rollout_id: str, record: dict[str, Any], replica: Replica) -> None:
        """Phase 2 of this store's own commit. The commit point has passed: a failure here loses
        nothing (the next reader, or this store's next write, applies the record), so it is reported
        as what it is instead of an error that invites running the command again."""
        self.checkpoint("store_committed")
        try:
            materialize(self, rollout_id, record, int(replica.head["buckets"]), replica.bucket_rows)
        except (ClientError, BotoCoreError) as err:
            log.warning("rollout %s: committed; rows will be applied by the next reader (commit %s in %s; "
                        "writing its rows failed: %s). Nothing is lost: do not run the command again.",
                        rollout_id, record["seq"], self.location, err)

    def _check_fence(self, rollout_id: str, head: dict[str, Any], fence: Fence) -> None:
        lease = lease_of(head)
        if lease is None or lease.lease_id != fence.lease_id or lease.fence != fence.number:
            holder = f"{lease.holder} on {lease.host} (fence {lease.fence})" if lease else "nobody"
            raise StaleWriterError(f"rollout {rollout_id}: this driver's lease (fence {fence.number}) is no longer "
                                   f"valid; it is now held by {holder}. Nothing was written; stop this driver.")

    def create_rollout(self, status: RolloutStatus, waves: Sequence[WaveState], devices: Sequence[DeviceState],
                       inventory: Sequence[Device], plan: dict[str, Any], now: dt.datetime, *,
                       backend: dict[str, Any] | None = None) -> None:
        create(self, status, list(waves), list(devices), list(inventory), plan, now, backend)

    def export_rollout(self, rollout_id: str) -> RolloutDump:
        return export_rollout(self, rollout_id)

    def import_rollout(self, dump: RolloutDump) -> None:
        import_rollout(self, dump, approval_key)

    # -- reads --------------------------------------------------------------------------------------

    def rollout_ids(self) -> list[str]:
        rows = list(query_all(self.client, self.table, "ROLLOUTS"))
        return [r["sk"] for r in sorted(rows, key=lambda r: (r["started_at"], r["sk"]))]

    def status(self, rollout_id: str) -> RolloutStatus:
        return status_from_row(rollout_id, self.replica(rollout_id).head)

    def waves(self, rollout_id: str) -> list[WaveState]:
        replica = self.replica(rollout_id)
        return [wave_from_row(replica.waves[i]) for i in sorted(replica.waves)]

    def devices(self, rollout_id: str, ids: Sequence[str] | None = None) -> dict[str, DeviceState]:
        rows = self.replica(rollout_id).devices
        wanted = rows if ids is None else {i: rows[i] for i in ids if i in rows}
        return {device_id: device_from_row(device_id, row) for device_id, row in wanted.items()}

    def device_counts(self, rollout_id: str) -> dict[DevicePhase, int]:
        return phase_counts(self.replica(rollout_id).devices.values())

    def wave_device_counts(self, rollout_id: str) -> dict[int, dict[DevicePhase, int]]:
        return wave_phase_counts(self.replica(rollout_id).devices.values())

    def device_ids_in(self, rollout_id: str, phases: Sequence[DevicePhase]) -> list[str]:
        return ids_in_phases(self.replica(rollout_id).devices, phases)

    def count_devices(self, rollout_id: str, phases: Sequence[DevicePhase]) -> int:
        return sum(self.device_counts(rollout_id).get(p, 0) for p in phases)

    def device_rows_epoch(self, rollout_id: str) -> int:
        return int(self.replica(rollout_id).head.get("replans") or 0)

    def steps_of(self, rollout_id: str, device_ids: Sequence[str]) -> dict[str, int]:
        rows = self.replica(rollout_id).devices
        return {d: int(rows[d]["steps_done"] or 0) for d in device_ids if d in rows}

    def inventory(self, rollout_id: str, ids: Sequence[str] | None = None) -> dict[str, Device]:
        replica = self.replica(rollout_id)
        if replica.inventory is None:
            pk = self.pk(rollout_id)
            parts = self.pool.map(lambda n: list(query_all(self.client, self.table, f"{pk}#A#{n:02d}")),
                                  range(PARTITIONS))
            replica.inventory = {device_id: parse_record(record) for items in parts for item in items
                                 for device_id, record in blob_value([item["a"]]).items()}
        every = replica.inventory
        return dict(every) if ids is None else {i: every[i] for i in ids if i in every}

    def inventory_keys(self, rollout_id: str) -> set[str]:
        return {key for device in self.inventory(rollout_id).values() for key in device.to_record()}

    def approvals(self, rollout_id: str) -> list[Approval]:
        rows = sorted(self.replica(rollout_id).approvals.values(), key=lambda r: int(r["n"]))
        return [approval_from_row(r) for r in rows]

    def issues(self, rollout_id: str) -> list[Issue]:
        replica = self.replica(rollout_id)
        return [issue_from_row(replica.issues[i]) for i in sorted(replica.issues)]

    def decisions(self, rollout_id: str) -> list[dict[str, Any]]:
        replica = self.replica(rollout_id)
        return [json.loads(replica.decisions[s]["record"]) for s in sorted(replica.decisions)]

    def open_intents(self, rollout_id: str) -> list[Intent]:
        rows = sorted(self.replica(rollout_id).intents.values(), key=lambda r: int(r["n"]))
        return [intent_of(r) for r in rows if r["state"] == "open"]

    def lease_row(self, rollout_id: str) -> LeaseRow | None:
        return lease_of(self.replica(rollout_id).head)

    def plan_json(self, rollout_id: str) -> dict[str, Any]:
        replica = self.replica(rollout_id)
        ref = int(replica.head["plan_ref"])
        if replica.plan is None or replica.plan[0] != ref:
            items = query_all(self.client, self.table, self.pk(rollout_id), f"PLAN#{ref:09d}#")
            replica.plan = (ref, blob_value([i["b"] for i in sorted(items, key=lambda i: i["sk"])]))
        return replica.plan[1]

    def backend_settings(self, rollout_id: str) -> dict[str, Any]:
        return json.loads(self.replica(rollout_id).head.get("backend") or "{}")  # type: ignore[no-any-return]

    def events(self, rollout_id: str) -> Iterator[Event]:
        """The audit log up to the head this store sees (an event being appended is not half-read)."""
        yield from events_between(self, rollout_id, 1, int(self.replica(rollout_id).head["event_count"]))

    def audit_head(self, rollout_id: str) -> tuple[int, str]:
        head = self.replica(rollout_id).head
        return int(head["event_count"]), str(head["head_hash"])

    def verify_audit(self, rollout_id: str) -> AuditReport:
        """The chain as of one HEAD, read fresh: its events and nothing after them, whoever writes
        meanwhile. A commit HEAD names but its writer has not applied is applied first (its events
        come from its record if that fails). Events past HEAD's count are either commits that landed
        after the HEAD read (a second HEAD read names them: they are left to the next verify) or
        written outside zt-rollout, which breaks the chain."""
        head = self.head(rollout_id)
        pending = self._apply_pending(rollout_id, head) if int(head["applied"]) < int(head["seq"]) else None
        count, head_hash = int(head["event_count"]), str(head["head_hash"])
        self.checkpoint("store_audit_head")
        events = list(events_between(self, rollout_id, 1, count))
        if pending is not None:  # its events from its record, if writing them as rows failed
            have = {e.seq for e in events}
            events = sorted(events + [event_of(r) for r in pending["events"] if int(r["seq"]) not in have],
                            key=lambda e: e.seq)
        tail = list(events_between(self, rollout_id, count + 1, 10**9 - 1))
        if tail:
            committed = int(self.head(rollout_id)["event_count"])
            events += [e for e in tail if e.seq > committed]  # past every head: written outside zt-rollout
        return verify_chain(events, count, head_hash)

    def notices_sent(self, rollout_id: str, wave: str, template_version: str) -> dict[str, SentNotice]:
        return dynamo_sent(self.client, self.table, self.pk(rollout_id), wave, template_version)

    def record_notice_sent(self, rollout_id: str, notice: SentNotice) -> None:
        dynamo_record(self.client, self.table, self.pk(rollout_id), notice)

    def last_event_time(self, rollout_id: str) -> dt.datetime:
        head = self.replica(rollout_id).head
        count = int(head["event_count"])
        got = self.client.get_item(TableName=self.table, ConsistentRead=True,
                                   Key={"pk": {"S": self.pk(rollout_id)}, "sk": {"S": f"EVENT#{count:09d}"}})
        if "Item" in got:
            return dt.datetime.fromisoformat(from_item(got["Item"])["at"])
        # its commit is not applied yet (applying it failed): the event is in the commit's record
        records = read_records(self, rollout_id, head, int(head["applied"]) + 1)
        (event,) = [e for r in records for e in r["events"] if int(e["seq"]) == count]
        return dt.datetime.fromisoformat(str(event["at"]))
