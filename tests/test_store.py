"""The SQLite state file: durable settings, ordered migrations applied once, local disks only,
and writers that wait for each other instead of failing with "database is locked"."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import rollout.store.sqlite
from rollout.errors import InputError
from rollout.store.schema import MIGRATIONS
from rollout.store.sqlite import SqliteStore, filesystem_type
from tests.rollout_builders import T0, fresh_store

WRITES = 300


def migrations(path: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall()
    finally:
        db.close()


def test_the_state_file_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    other = sqlite3.connect(tmp_path / "state.db")  # WAL is a property of the file, seen by any reader
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def test_migrations_are_recorded_and_never_applied_twice(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store, rid = fresh_store(path, n=60)
    store.close()
    applied = migrations(path)
    assert [v for v, _ in applied] == list(range(1, len(MIGRATIONS) + 1))
    for _ in range(3):
        reopened = SqliteStore(path)  # a re-run of ALTER TABLE ... ADD COLUMN would raise here
        assert reopened.verify_audit(rid).ok
        reopened.close()
    assert migrations(path) == applied


def test_an_older_file_gets_only_the_migrations_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store, rid = fresh_store(path, n=60)
    store.close()
    db = sqlite3.connect(path, isolation_level=None)  # take the file back to schema version 1
    db.execute("ALTER TABLE rollouts DROP COLUMN backend")
    db.execute("ALTER TABLE devices DROP COLUMN ref")
    db.execute("ALTER TABLE intents DROP COLUMN max_errors")
    db.execute("ALTER TABLE rollouts DROP COLUMN duties_waived")
    db.execute("DROP TABLE notices_sent")
    db.execute("DELETE FROM schema_migrations WHERE version > 1")
    db.close()
    first = migrations(path)
    store = SqliteStore(path)
    assert store.backend_settings(rid) == {}
    assert migrations(path)[:1] == first
    assert [v for v, _ in migrations(path)] == list(range(1, len(MIGRATIONS) + 1))


def test_processes_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_open_and_close, [path] * 4)
    assert [v for v, _ in migrations(path)] == list(range(1, len(MIGRATIONS) + 1))


def _open_and_close(path: Path) -> None:
    SqliteStore(path).close()


@pytest.mark.parametrize("kind", ["nfs", "nfs4", "cifs", "smb3", "fuse.sshfs"])
def test_a_state_file_on_a_network_filesystem_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         kind: str) -> None:
    monkeypatch.setattr(rollout.store.sqlite, "filesystem_type", lambda path: kind)
    with pytest.raises(InputError, match=f"on a {kind} network filesystem.*local disk"):
        SqliteStore(tmp_path / "share" / "state.db")
    assert not (tmp_path / "share" / "state.db").exists()


def test_a_state_file_on_a_local_filesystem_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollout.store.sqlite, "filesystem_type", lambda path: "ext4")
    SqliteStore(tmp_path / "state.db").close()


def test_filesystem_type_is_the_longest_mount_point_holding_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    mounts = "\n".join([
        "/dev/sda1 / ext4 rw 0 0",
        "server:/export /mnt/share nfs4 rw 0 0",
        "/dev/sdb1 /mnt/share/local xfs rw 0 0",
        "//nas/team /mnt/team\\040drive cifs rw 0 0",
    ])
    real_read_text = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        return mounts if str(self) == "/proc/mounts" else real_read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)
    assert filesystem_type(Path("/mnt/share/rollout")) == "nfs4"
    assert filesystem_type(Path("/mnt/share")) == "nfs4"
    assert filesystem_type(Path("/mnt/share/local/state")) == "xfs"
    assert filesystem_type(Path("/mnt/shared")) == "ext4"  # a longer name, not a path under /mnt/share
    assert filesystem_type(Path("/mnt/team drive/x")) == "cifs"


def _append_events(path: Path, rollout_id: str, writer: int) -> None:
    store = SqliteStore(path)
    for i in range(WRITES):
        with store.write() as db:
            store.append_event(db, rollout_id, T0 + dt.timedelta(seconds=i), f"writer-{writer}", "note.added",
                               {"i": i})
    store.close()


def test_two_writer_processes_wait_for_each_other(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store, rid = fresh_store(path, n=60)
    before = store.verify_audit(rid).events
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.starmap(_append_events, [(path, rid, 0), (path, rid, 1)])  # raises if either was refused
    report = store.verify_audit(rid)
    assert report.ok and report.events == before + 2 * WRITES
    actors = [e.actor for e in store.events(rid)]
    assert actors.count("writer-0") == actors.count("writer-1") == WRITES


def test_a_writer_waits_for_a_long_transaction_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    holder, rid = fresh_store(path, n=60)
    waiter = SqliteStore(path)
    inside = threading.Event()
    waited: list[float] = []

    def write_later() -> None:
        inside.wait()
        began = time.monotonic()
        with waiter.write() as db:
            waiter.append_event(db, rid, T0, "second", "note.added", {})
        waited.append(time.monotonic() - began)

    thread = threading.Thread(target=write_later)
    thread.start()
    with holder.write() as db:  # BEGIN IMMEDIATE: holds the write lock
        holder.append_event(db, rid, T0, "first", "note.added", {})
        inside.set()
        time.sleep(1.0)
    thread.join(timeout=30)
    assert waited and waited[0] >= 0.8  # it waited for the first transaction, then wrote
    assert [e.actor for e in holder.events(rid)][-2:] == ["first", "second"]
    assert holder.verify_audit(rid).ok
