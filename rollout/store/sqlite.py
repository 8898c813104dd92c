"""Durable rollout state in one SQLite file (default ``.rollout/state.db``).

- WAL journal with ``synchronous=FULL``; every write transaction opens with ``BEGIN IMMEDIATE``,
  so a second writer waits (``busy_timeout``) instead of failing with "database is locked".
- A state file on a network filesystem (NFS, SMB/CIFS, sshfs, ...) is refused: SQLite's locking
  is not reliable there.
- Schema changes are ordered migrations, each applied in the same transaction as its record.
- Driver writes are *fenced*: they carry the lease (``rollout.store.lease``) and the transaction checks
  that this lease still holds the rollout, so a driver paused past its lease cannot write after
  another driver took over.
- Every change appends an event to the hash-chained audit log (``rollout.core.audit``) in the same
  transaction; the rollout's row keeps the head (count, last hash) for truncation checks.
- Each backend call is recorded as an intent before it runs and as done after (``intents``), so
  a killed driver resumes by finishing the open intents with the same operation ids.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rollout.core.audit import GENESIS, AuditReport, Event, verify_chain
from rollout.core.device import Device, parse_record
from rollout.core.model import (
    Approval,
    DevicePhase,
    DeviceState,
    Issue,
    RolloutStatus,
    WaveState,
)
from rollout.errors import InputError, NotFoundError, StateFileError
from rollout.files import create_private
from rollout.store.api import (
    Build,
    Changes,
    Fence,
    Intent,
    LeaseRow,
    RolloutDump,
    SentNotice,
    StaleWriterError,
)
from rollout.store.locations import DEFAULT_STATE
from rollout.store.notice_records import sqlite_record, sqlite_sent
from rollout.store.rows import (
    DEVICE_PHASES,
    approval_from_row,
    issue_from_row,
    status_from_row,
    utc,
    wave_from_row,
)
from rollout.store.schema import MIGRATIONS
from rollout.store.sqlite_apply import (
    SqliteView,
    append_event,
    apply_changes,
    export_rollout,
    import_rollout,
)
from rollout.store.sqlite_checks import check_writable, sqlite_errors

__all__ = ["DEFAULT_STATE", "Fence", "SqliteStore", "StaleWriterError", "filesystem_type", "iso", "utc"]

NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "afs", "9p", "ncpfs",
                                 "fuse.s3fs", "glusterfs", "ceph", "lustre"})


_DEVICE_PHASES = DEVICE_PHASES


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def filesystem_type(path: Path) -> str:
    """The filesystem type of the mount that holds ``path`` (from /proc/mounts; '' if unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    target = str(path.resolve())
    best, kind = "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3:
            point = parts[1].replace("\\040", " ")
            if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                best, kind = point, parts[2]
    return kind


def lease_from_row(row: Any) -> LeaseRow | None:
    if row is None:
        return None
    return LeaseRow(row["lease_id"], row["holder"], row["host"], int(row["pid"]), float(row["acquired_at"]),
                    float(row["expires_at"]), int(row["fence"]))


class SqliteStore:
    """The SQLite implementation of ``rollout.store.api.StateStore``."""

    def __init__(self, path: str | Path = DEFAULT_STATE, *, create: bool = True) -> None:
        """Open (with ``create``, create) the state file, and check it before anything reads it:
        a missing file (unless ``create``), a read-only one, one that is not SQLite or whose pages
        ``PRAGMA quick_check`` finds damaged is refused with what to do (``StateFileError``)."""
        self.path = Path(path)
        self.location = f"sqlite:{self.path}"
        if not create and not self.path.is_file():
            raise InputError(f"{self.path}: no such state file (nothing was created); check --state or "
                             "ROLLOUT_STATE, or start a rollout there with `rollout start`.")
        if self.path.exists() and not self.path.is_file():
            raise InputError(f"{self.path}: not a regular file; --state must name a SQLite state file.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fs = filesystem_type(self.path.parent)
        if fs in NETWORK_FILESYSTEMS:
            raise InputError(f"{self.path}: on a {fs} network filesystem, where SQLite locking is unreliable; "
                             "keep the state file on a local disk, or use a DynamoDB state store.")
        check_writable(self.path)
        create_private(self.path)  # employees' names and addresses: readable by this user only
        with sqlite_errors(self.path, "opening"):
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=60, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA busy_timeout=60000")
            self.db.execute("PRAGMA foreign_keys=ON")
            damage = [str(r[0]) for r in self.db.execute("PRAGMA quick_check(5)")]
            if damage != ["ok"]:
                self.db.close()
                raise StateFileError(f"{self.path}: the state file is damaged ({'; '.join(damage)[:300]}); "
                                     "nothing was read or written. Restore it from a backup, or copy what "
                                     "still reads with `sqlite3 FILE .recover`.")
            self._migrate()

    def close(self) -> None:
        self.db.close()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def write(self, rollout_id: str | None = None, fence: Fence | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE); with ``fence``, refused unless the lease still holds."""
        with sqlite_errors(self.path, "writing"):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if fence is not None and rollout_id is not None:
                    self._check_fence(rollout_id, fence)
                yield self.db
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def transact(self, rollout_id: str, build: Build, fence: Fence | None = None) -> Changes:
        """Build the change set inside one write transaction and apply it (see ``rollout.store.api``)."""
        with self.write(rollout_id, fence) as db:
            changes = build(SqliteView(self, db, rollout_id))
            apply_changes(self, db, rollout_id, changes)
        return changes

    def _check_fence(self, rollout_id: str, fence: Fence) -> None:
        row = self.db.execute("SELECT lease_id, fence, holder, host FROM leases WHERE rollout_id=?",
                              (rollout_id,)).fetchone()
        if row is None or row["lease_id"] != fence.lease_id or row["fence"] != fence.number:
            holder = f"{row['holder']} on {row['host']} (fence {row['fence']})" if row else "nobody"
            raise StaleWriterError(f"rollout {rollout_id}: this driver's lease (fence {fence.number}) is no longer "
                                   f"valid; it is now held by {holder}. Nothing was written; stop this driver.")

    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
        done = {r[0] for r in self.db.execute("SELECT version FROM schema_migrations")}
        for version, sql in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            with self.write() as db:
                if db.execute("SELECT 1 FROM schema_migrations WHERE version=?", (version,)).fetchone():
                    continue
                for statement in sql.split(";\n"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)",
                           (version, dt.datetime.now(dt.UTC).isoformat()))

    # -- events -------------------------------------------------------------------------------

    def append_event(self, db: sqlite3.Connection, rollout_id: str, at: dt.datetime, actor: str, kind: str,
                     data: dict[str, Any]) -> None:
        """Append to the hash chain inside the caller's transaction and move the head."""
        append_event(db, rollout_id, at, actor, kind, data)

    def events(self, rollout_id: str) -> Iterator[Event]:
        for r in self.db.execute("SELECT * FROM events WHERE rollout_id=? ORDER BY rowid", (rollout_id,)):
            yield Event(r["seq"], r["at"], r["actor"], r["kind"], json.loads(r["data"]), r["prev_hash"], r["hash"])

    def verify_audit(self, rollout_id: str) -> AuditReport:
        """The whole file first (``PRAGMA integrity_check``: a damaged page is reported, not read past);
        then head and log from one read snapshot, so a write landing meanwhile is no false alarm."""
        damage = self.integrity_check()
        if damage != "ok":
            head_count, head_hash = self.audit_head(rollout_id) if "malformed" not in damage else (0, "")
            return AuditReport(False, head_count, head_hash, None,
                               f"the state file {self.path} is damaged ({damage[:300]}); restore it from a backup")
        self.db.execute("BEGIN")
        try:
            head = self._rollout_row(rollout_id)
            events = list(self.events(rollout_id))
        finally:
            self.db.execute("COMMIT")
        return verify_chain(events, head["event_count"], head["head_hash"])

    # -- rollouts -----------------------------------------------------------------------------

    def create_rollout(self, status: RolloutStatus, waves: Sequence[WaveState], devices: Sequence[DeviceState],
                       inventory: Sequence[Device], plan: dict[str, Any], now: dt.datetime, *,
                       backend: dict[str, Any] | None = None, log: bool = True) -> None:
        """Record a new rollout, how it is driven, and its ``rollout.started`` (and ``rollout.backend``)
        events, in one transaction (``log=False``: no event, for imports)."""
        with self.write() as db:
            if db.execute("SELECT 1 FROM rollouts WHERE id=?", (status.rollout_id,)).fetchone():
                raise InputError(f"rollout {status.rollout_id!r} already exists in {self.path}; "
                                 "use `rollout status` or start it under another --rollout id.")
            db.execute(
                "INSERT INTO rollouts (id, plan_hash, plan_json, started_by, started_at, separation_of_duties, "
                "paused, pause_reason, halted, halt_reason, event_count, head_hash) VALUES (?,?,?,?,?,?,0,'',0,'',0,?)",
                (status.rollout_id, status.plan_hash, json.dumps(plan, ensure_ascii=False), status.started_by,
                 iso(status.started_at), int(status.separation_of_duties), GENESIS))
            db.executemany(
                "INSERT INTO waves (rollout_id, idx, name, hash, phase, phase_since, approvals_required, "
                "bake_seconds, gates, canary) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(status.rollout_id, w.index, w.name, w.hash, w.phase.value, iso(w.phase_since),
                  json.dumps(list(w.approvals_required)), w.bake_seconds, json.dumps(dict(w.gates)), int(w.canary))
                 for w in waves])
            db.executemany(
                "INSERT INTO devices (rollout_id, device_id, wave, phase, phase_since, attrs) VALUES (?,?,?,?,?,?)",
                [(status.rollout_id, d.device_id, d.wave, d.phase.value, iso(d.phase_since),
                  json.dumps(inv.to_record(), ensure_ascii=False)) for d, inv in zip(devices, inventory)])
            if backend is not None:
                db.execute("UPDATE rollouts SET backend=? WHERE id=?", (json.dumps(backend), status.rollout_id))
            if log:
                self.append_event(db, status.rollout_id, now, status.started_by, "rollout.started",
                                  {"plan_hash": status.plan_hash, "waves": len(waves), "devices": len(devices)})
                if backend is not None:
                    self.append_event(db, status.rollout_id, now, status.started_by, "rollout.backend", backend)

    def rollout_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM rollouts ORDER BY started_at")]

    def _rollout_row(self, rollout_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = self.db.execute("SELECT * FROM rollouts WHERE id=?", (rollout_id,)).fetchone()
        if row is None:
            known = ", ".join(self.rollout_ids()) or "none"
            raise NotFoundError(f"no rollout {rollout_id!r} in {self.path} (rollouts there: {known}); "
                                "start one with `rollout start --plan plan.json`.")
        return row

    def plan_json(self, rollout_id: str) -> dict[str, Any]:
        return json.loads(self._rollout_row(rollout_id)["plan_json"])  # type: ignore[no-any-return]

    def status(self, rollout_id: str) -> RolloutStatus:
        return status_from_row(rollout_id, self._rollout_row(rollout_id))

    def waves(self, rollout_id: str) -> list[WaveState]:
        return [wave_from_row(r) for r in self.db.execute("SELECT * FROM waves WHERE rollout_id=? ORDER BY idx",
                                                          (rollout_id,))]

    def devices(self, rollout_id: str, ids: Sequence[str] | None = None) -> dict[str, DeviceState]:
        """Device rows of the rollout: all, or just ``ids``."""
        columns = "SELECT device_id, wave, phase, phase_since, migrated_at, steps_done, error, ref FROM devices "
        if ids is None:
            return self._device_states(self.db.execute(columns + "WHERE rollout_id=?", (rollout_id,)))
        out: dict[str, DeviceState] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            out.update(self._device_states(self.db.execute(
                columns + f"WHERE rollout_id=? AND device_id IN ({marks})", (rollout_id, *chunk))))
        return out

    @staticmethod
    def _device_states(rows: Iterable[Any]) -> dict[str, DeviceState]:
        phases = _DEVICE_PHASES
        return {r[0]: DeviceState(r[0], r[1], phases[r[2]], utc(r[3]) or dt.datetime.min, utc(r[4]), r[5], r[6],
                                  r[7]) for r in rows}

    def device_rows_epoch(self, rollout_id: str) -> int:
        """Changes a driver's cache of device rows must notice (writers other than the driver: replan)."""
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE rollout_id=? AND "
                              "kind='rollout.replanned'", (rollout_id,)).fetchone()
        return int(row[0])

    def device_counts(self, rollout_id: str) -> dict[DevicePhase, int]:
        rows = self.db.execute("SELECT phase, COUNT(*) FROM devices WHERE rollout_id=? GROUP BY phase", (rollout_id,))
        return {_DEVICE_PHASES[r[0]]: int(r[1]) for r in rows}

    def wave_device_counts(self, rollout_id: str) -> dict[int, dict[DevicePhase, int]]:
        counts: dict[int, dict[DevicePhase, int]] = {}
        for wave, phase, n in self.db.execute("SELECT wave, phase, COUNT(*) FROM devices WHERE rollout_id=? "
                                              "GROUP BY wave, phase", (rollout_id,)):
            counts.setdefault(int(wave), {})[_DEVICE_PHASES[phase]] = int(n)
        return counts

    def device_ids_in(self, rollout_id: str, phases: Sequence[DevicePhase]) -> list[str]:
        marks = ",".join("?" * len(phases))
        return [r[0] for r in self.db.execute(f"SELECT device_id FROM devices WHERE rollout_id=? AND phase IN "
                                              f"({marks})", (rollout_id, *(p.value for p in phases)))]

    def count_devices(self, rollout_id: str, phases: Iterable[DevicePhase]) -> int:
        return sum(self.device_counts(rollout_id).get(p, 0) for p in phases)

    def inventory(self, rollout_id: str, ids: Sequence[str] | None = None) -> dict[str, Device]:
        """The devices' inventory attributes as recorded at start: all, or just ``ids``."""
        if ids is None:
            rows = self.db.execute("SELECT device_id, attrs FROM devices WHERE rollout_id=?", (rollout_id,))
            return {r[0]: parse_record(json.loads(r[1])) for r in rows}
        out: dict[str, Device] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(f"SELECT device_id, attrs FROM devices WHERE rollout_id=? AND device_id "
                                     f"IN ({marks})", (rollout_id, *chunk)):
                out[r[0]] = parse_record(json.loads(r[1]))
        return out

    def inventory_keys(self, rollout_id: str) -> set[str]:
        """Every inventory column of the rollout's devices (for checking selectors)."""
        rows = self.db.execute("SELECT DISTINCT key FROM devices, json_each(devices.attrs) WHERE rollout_id=?",
                               (rollout_id,))
        return {r[0] for r in rows}

    def approvals(self, rollout_id: str) -> list[Approval]:
        return [approval_from_row(r) for r in self.db.execute("SELECT * FROM approvals WHERE rollout_id=? ORDER BY rowid",
                                                              (rollout_id,))]

    def issues(self, rollout_id: str) -> list[Issue]:
        return [issue_from_row(r) for r in self.db.execute("SELECT * FROM issues WHERE rollout_id=? ORDER BY id",
                                                           (rollout_id,))]

    def decisions(self, rollout_id: str) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.db.execute(
            "SELECT record FROM decisions WHERE rollout_id=? ORDER BY seq", (rollout_id,))]

    def backend_settings(self, rollout_id: str) -> dict[str, Any]:
        return json.loads(self._rollout_row(rollout_id)["backend"])  # type: ignore[no-any-return]

    def steps_of(self, rollout_id: str, device_ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for start in range(0, len(device_ids), 500):
            chunk = list(device_ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(f"SELECT device_id, steps_done FROM devices WHERE rollout_id=? AND device_id "
                                     f"IN ({marks})", (rollout_id, *chunk)):
                out[r[0]] = r[1]
        return out

    def open_intents(self, rollout_id: str) -> list[Intent]:
        return [Intent(r["op_id"], r["verb"], r["wave"], tuple(json.loads(r["device_ids"])), r["max_errors"])
                for r in self.db.execute("SELECT * FROM intents WHERE rollout_id=? AND state='open' ORDER BY rowid",
                                         (rollout_id,))]

    def lease_row(self, rollout_id: str) -> LeaseRow | None:
        return lease_from_row(self.db.execute("SELECT * FROM leases WHERE rollout_id=?", (rollout_id,)).fetchone())

    def audit_head(self, rollout_id: str) -> tuple[int, str]:
        row = self._rollout_row(rollout_id)
        return int(row["event_count"]), str(row["head_hash"])

    def last_event_time(self, rollout_id: str) -> dt.datetime:
        row = self.db.execute("SELECT MAX(at) FROM events WHERE rollout_id=?", (rollout_id,)).fetchone()
        if row[0] is None:
            self._rollout_row(rollout_id)
        return dt.datetime.fromisoformat(row[0])

    def export_rollout(self, rollout_id: str) -> RolloutDump:
        return export_rollout(self, rollout_id)

    def import_rollout(self, dump: RolloutDump) -> None:
        import_rollout(self, dump)

    def notices_sent(self, rollout_id: str, wave: str, template_version: str) -> dict[str, SentNotice]:
        return sqlite_sent(self.db, rollout_id, wave, template_version)

    def record_notice_sent(self, rollout_id: str, notice: SentNotice) -> None:
        with self.write() as db:
            sqlite_record(db, rollout_id, notice)

    def integrity_check(self) -> str:
        """``ok``, or the problems SQLite's full check finds (at most 20 lines, one per line)."""
        try:
            return "\n".join(str(r[0]) for r in self.db.execute("PRAGMA integrity_check(20)"))
        except sqlite3.DatabaseError as err:
            return f"malformed: {err}"
