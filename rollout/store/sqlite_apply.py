"""How the SQLite store applies a change set, and exports or imports a whole rollout.

``apply_changes`` runs inside the caller's ``BEGIN IMMEDIATE`` transaction: compare-and-set
updates (``UPDATE ... WHERE phase = ?``; no row changed raises ``ConflictError`` and the whole
transaction rolls back), inserts, the lease, then the events appended to the hash chain.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from rollout.core.audit import seal_event
from rollout.core.device import Device
from rollout.core.model import DeviceState, RolloutStatus, WavePhase, WaveState
from rollout.errors import NotFoundError
from rollout.store.api import (
    UNCHANGED,
    Changes,
    ConflictError,
    Fence,
    Intent,
    LeaseRow,
    RolloutDump,
    RowChange,
    StateStore,
)
from rollout.store.notice_records import sqlite_all, sqlite_record
from rollout.store.rows import encode


class SqliteHandle(StateStore, Protocol):
    """What these functions need of the SQLite store (``rollout.store.sqlite.SqliteStore``): the
    readers of ``StateStore``, its connection, and its write transaction. Named here, so that this
    module does not import the store that imports it."""

    db: sqlite3.Connection

    def write(self, rollout_id: str | None = None,
              fence: Fence | None = None) -> AbstractContextManager[sqlite3.Connection]: ...

    def create_rollout(self, status: RolloutStatus, waves: Sequence[WaveState], devices: Sequence[DeviceState],
                       inventory: Sequence[Device], plan: dict[str, Any], now: dt.datetime, *,
                       backend: dict[str, Any] | None = None, log: bool = True) -> None: ...


class SqliteView:
    """``TxView`` over the open write transaction."""

    def __init__(self, store: SqliteHandle, db: sqlite3.Connection, rollout_id: str) -> None:
        self.store, self.db, self.rollout_id = store, db, rollout_id

    def status(self) -> RolloutStatus:
        return self.store.status(self.rollout_id)

    def lease(self) -> LeaseRow | None:
        return self.store.lease_row(self.rollout_id)

    def last_fence(self) -> int:
        row = self.db.execute("SELECT last_fence FROM fences WHERE rollout_id=?", (self.rollout_id,)).fetchone()
        return int(row[0]) if row else 0

    def next_issue_id(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM issues WHERE rollout_id=?",
                              (self.rollout_id,)).fetchone()
        return int(row[0])

    def wave_phase(self, index: int) -> WavePhase:
        row = self.db.execute("SELECT phase FROM waves WHERE rollout_id=? AND idx=?", (self.rollout_id, index)).fetchone()
        if row is None:
            raise NotFoundError(f"rollout {self.rollout_id} has no wave {index}")
        return WavePhase(row[0])


def _update(db: sqlite3.Connection, table: str, key_column: str, rollout_id: str, change: RowChange,
            what: str) -> None:
    sets = ", ".join(f"{name}=?" for name in change.fields)
    where = "".join(f" AND {name}=?" for name in change.expect)
    args = [encode(v) for v in change.fields.values()] + [rollout_id, change.key] + \
        [encode(v) for v in change.expect.values()]
    changed = db.execute(f"UPDATE {table} SET {sets} WHERE rollout_id=? AND {key_column}=?{where}", args).rowcount
    if not changed:
        if change.expect:
            expected = ", ".join(str(encode(v)) for v in change.expect.values())
            raise ConflictError(f"{what} {change.key} is no longer {expected}")
        raise NotFoundError(f"{what} {change.key} does not exist")


def apply_changes(store: SqliteHandle, db: sqlite3.Connection, rollout_id: str, changes: Changes) -> None:
    """Write ``changes`` in the open transaction; any failure rolls all of it back."""
    if changes.rollout:
        sets = ", ".join(f"{name}=?" for name in changes.rollout)
        db.execute(f"UPDATE rollouts SET {sets} WHERE id=?", [encode(v) for v in changes.rollout.values()] + [rollout_id])
    for change in changes.waves:
        _update(db, "waves", "idx", rollout_id, change, "wave")
    for change in changes.devices:
        _update(db, "devices", "device_id", rollout_id, change, "device")
    db.executemany("INSERT OR IGNORE INTO approvals VALUES (?,?,?,?,?,?,?)",
                   [(rollout_id, a.wave, a.wave_hash, a.by, a.role, encode(a.at), a.comment) for a in changes.approvals])
    db.executemany(
        "INSERT INTO issues (rollout_id, id, title, selector, severity, status, reported_during, reported_by, "
        "reported_at, decided_by, decided_at, auto) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        [(rollout_id, i.id, i.title, i.selector, encode(i.severity), encode(i.status), i.reported_during,
          i.reported_by, encode(i.reported_at), i.decided_by, encode(i.decided_at), int(i.auto))
         for i in changes.new_issues])
    for change in changes.issues:
        _update(db, "issues", "id", rollout_id, change, "issue")
    for wave, record in changes.decisions:
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM decisions WHERE rollout_id=?",
                         (rollout_id,)).fetchone()[0]
        db.execute("INSERT INTO decisions VALUES (?,?,?,?)",
                   (rollout_id, seq, wave, json.dumps(record, ensure_ascii=False, sort_keys=True)))
    db.executemany("INSERT INTO intents (rollout_id, op_id, verb, wave, device_ids, state, created_at, max_errors) "
                   "VALUES (?,?,?,?,?,?,?,?)",
                   [(rollout_id, i.op_id, i.verb, i.wave, json.dumps(list(i.device_ids)), "open", encode(at),
                     i.max_errors) for i, at in changes.new_intents])
    db.executemany("UPDATE intents SET state='done', done_at=? WHERE op_id=?",
                   [(encode(at), op_id) for op_id, at in changes.done_intents])
    _apply_lease(db, rollout_id, changes)
    for e in changes.events:
        append_event(db, rollout_id, e.at, e.actor, e.kind, dict(e.data))


def append_event(db: sqlite3.Connection, rollout_id: str, at: dt.datetime, actor: str, kind: str,
                 data: dict[str, Any]) -> None:
    """Append to the hash chain inside the caller's transaction and move the head."""
    row = db.execute("SELECT event_count, head_hash FROM rollouts WHERE id=?", (rollout_id,)).fetchone()
    seq, prev = row["event_count"] + 1, row["head_hash"]
    stamp = at.isoformat()
    stored, digest = seal_event(prev, seq, stamp, actor, kind, data)
    db.execute("INSERT INTO events (rollout_id, seq, at, actor, kind, data, prev_hash, hash) "
               "VALUES (?,?,?,?,?,?,?,?)", (rollout_id, seq, stamp, actor, kind, stored, prev, digest))
    db.execute("UPDATE rollouts SET event_count=?, head_hash=? WHERE id=?", (seq, digest, rollout_id))


def _apply_lease(db: sqlite3.Connection, rollout_id: str, changes: Changes) -> None:
    if changes.last_fence is not None:
        db.execute("INSERT INTO fences VALUES (?, ?) ON CONFLICT(rollout_id) DO UPDATE SET last_fence=excluded.last_fence",
                   (rollout_id, changes.last_fence))
    if changes.lease is UNCHANGED:
        return
    if changes.lease is None:
        db.execute("DELETE FROM leases WHERE rollout_id=?", (rollout_id,))
        return
    lease: LeaseRow = changes.lease
    db.execute("INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?,?,?)",
               (rollout_id, lease.lease_id, lease.holder, lease.host, lease.pid, lease.acquired_at,
                lease.expires_at, lease.fence))


def export_rollout(store: SqliteHandle, rollout_id: str) -> RolloutDump:
    """Everything of one rollout, rows as stored (events verbatim, so the chain verifies elsewhere)."""
    db = store.db
    db.execute("BEGIN")  # one read snapshot
    try:
        status = store.status(rollout_id)
        fence = db.execute("SELECT last_fence FROM fences WHERE rollout_id=?", (rollout_id,)).fetchone()
        decisions = [(int(r[0]), json.loads(r[1])) for r in db.execute(
            "SELECT wave, record FROM decisions WHERE rollout_id=? ORDER BY seq", (rollout_id,))]
        intents = [(Intent(r["op_id"], r["verb"], r["wave"], tuple(json.loads(r["device_ids"])), r["max_errors"]),
                    r["state"], r["created_at"], r["done_at"])
                   for r in db.execute("SELECT * FROM intents WHERE rollout_id=? ORDER BY rowid", (rollout_id,))]
        return RolloutDump(
            status=status, plan=store.plan_json(rollout_id), backend=store.backend_settings(rollout_id),
            waves=store.waves(rollout_id), devices=list(store.devices(rollout_id).values()),
            inventory=store.inventory(rollout_id), approvals=store.approvals(rollout_id),
            issues=store.issues(rollout_id), decisions=decisions, intents=intents,
            events=list(store.events(rollout_id)), last_fence=int(fence[0]) if fence else 0,
            replans=store.device_rows_epoch(rollout_id), notices=sqlite_all(db, rollout_id))
    finally:
        db.execute("COMMIT")


def import_rollout(store: SqliteHandle, dump: RolloutDump) -> None:
    """Write a dumped rollout as it was: the same rows, the same events and hashes."""
    s = dump.status
    store.create_rollout(s, dump.waves, dump.devices, [dump.inventory[d.device_id] for d in dump.devices],
                         dump.plan, s.started_at, log=False)
    rid = s.rollout_id
    with store.write() as db:
        db.execute("UPDATE rollouts SET separation_of_duties=?, paused=?, pause_reason=?, halted=?, halt_reason=?, "
                   "backend=?, duties_waived=? WHERE id=?",
                   (int(s.separation_of_duties), int(s.paused), s.pause_reason, int(s.halted), s.halt_reason,
                    json.dumps(dump.backend), json.dumps(dict(s.duties_waived)) if s.duties_waived else "", rid))
        for w in dump.waves:
            db.execute("UPDATE waves SET bake_started=?, consecutive_errors=?, last_verdict=? WHERE rollout_id=? "
                       "AND idx=?", (encode(w.bake_started), w.consecutive_errors, w.last_verdict, rid, w.index))
        db.executemany("UPDATE devices SET migrated_at=?, steps_done=?, error=?, ref=? WHERE rollout_id=? "
                       "AND device_id=?", [(encode(d.migrated_at), d.steps_done, d.error, d.ref, rid, d.device_id)
                                           for d in dump.devices])
        changes = Changes(approvals=list(dump.approvals), new_issues=list(dump.issues))
        apply_changes(store, db, rid, changes)
        db.executemany("INSERT INTO decisions VALUES (?,?,?,?)",
                       [(rid, seq, wave, json.dumps(record, ensure_ascii=False, sort_keys=True))
                        for seq, (wave, record) in enumerate(dump.decisions, start=1)])
        db.executemany("INSERT INTO intents (rollout_id, op_id, verb, wave, device_ids, state, created_at, done_at, "
                       "max_errors) VALUES (?,?,?,?,?,?,?,?,?)",
                       [(rid, i.op_id, i.verb, i.wave, json.dumps(list(i.device_ids)), state, created, done,
                         i.max_errors) for i, state, created, done in dump.intents])
        db.execute("INSERT INTO fences VALUES (?, ?)", (rid, dump.last_fence))
        for notice in dump.notices:
            sqlite_record(db, rid, notice)
        db.executemany("INSERT INTO events (rollout_id, seq, at, actor, kind, data, prev_hash, hash) "
                       "VALUES (?,?,?,?,?,?,?,?)",
                       [(rid, e.seq, e.at, e.actor, e.kind, json.dumps(e.data, ensure_ascii=False, sort_keys=True),
                         e.prev_hash, e.hash) for e in dump.events])
        head = dump.events[-1].hash if dump.events else ""
        db.execute("UPDATE rollouts SET event_count=?, head_hash=? WHERE id=?", (len(dump.events), head, rid))
