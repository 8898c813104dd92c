"""The driver's lease: one driver per rollout at a time, with a fencing number.

``acquire_lease`` succeeds when nobody holds the rollout or the holder's lease has expired; it
then takes a fencing number one above every number ever issued for the rollout. Every write of
the driver carries ``Fence(lease_id, number)`` and the store refuses it once another driver took
over (``rollout.store.StaleWriterError``). A force-unlock needs the exact lease id and is audited.
A lease whose holder was a process on this host that no longer exists (killed, crashed) is
taken over at once instead of blocking until it expires: ``rollout run`` again resumes.
Lease times are wall-clock epoch seconds, passed in (the engine's own clock may be simulated).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass

from rollout.errors import InputError, RolloutError
from rollout.store import Fence, SqliteStore

DEFAULT_TTL = 60.0


class LeaseHeldError(RolloutError):
    """Another driver holds the rollout's lease."""


@dataclass(frozen=True, slots=True)
class Lease:
    rollout_id: str
    lease_id: str
    fence: Fence
    holder: str
    host: str
    expires_at: float


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def is_holder_gone(row_host: str, pid: int, host: str) -> bool:
    """Whether the lease holder was a process on this host that no longer exists."""
    if row_host != host or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def acquire_lease(store: SqliteStore, rollout_id: str, holder: str, now: float, ttl: float = DEFAULT_TTL,
                  host: str | None = None) -> Lease:
    host = host or socket.gethostname()
    lease_id = uuid.uuid4().hex
    with store.write() as db:
        store.status(rollout_id)  # raises NotFoundError for an unknown rollout
        row = db.execute("SELECT * FROM leases WHERE rollout_id=?", (rollout_id,)).fetchone()
        if row is not None and row["expires_at"] > now and not is_holder_gone(row["host"], row["pid"], host):
            raise LeaseHeldError(
                f"rollout {rollout_id} is being driven by {row['holder']} on {row['host']} (pid {row['pid']}) "
                f"since {_when(row['acquired_at'])}; its lease expires at {_when(row['expires_at'])}. "
                f"Wait for it, or if that driver is gone: rollout unlock --lease-id {row['lease_id']}")
        last = db.execute("SELECT last_fence FROM fences WHERE rollout_id=?", (rollout_id,)).fetchone()
        number = (last[0] if last else 0) + 1
        db.execute("INSERT INTO fences VALUES (?, ?) ON CONFLICT(rollout_id) DO UPDATE SET last_fence=excluded.last_fence",
                   (rollout_id, number))
        db.execute("INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?,?,?)",
                   (rollout_id, lease_id, holder, host, os.getpid(), now, now + ttl, number))
        store.append_event(db, rollout_id, dt.datetime.fromtimestamp(now, dt.UTC), holder, "lease.acquired",
                           {"host": host, "fence": number, "expires_at": _when(now + ttl),
                            "took_over": row["holder"] if row is not None else None})
    return Lease(rollout_id, lease_id, Fence(lease_id, number), holder, host, now + ttl)


def renew_lease(store: SqliteStore, lease: Lease, now: float, ttl: float = DEFAULT_TTL) -> Lease:
    with store.write(lease.rollout_id, lease.fence) as db:
        db.execute("UPDATE leases SET expires_at=? WHERE rollout_id=? AND lease_id=?",
                   (now + ttl, lease.rollout_id, lease.lease_id))
    return Lease(lease.rollout_id, lease.lease_id, lease.fence, lease.holder, lease.host, now + ttl)


def release_lease(store: SqliteStore, lease: Lease, now: float) -> None:
    with store.write() as db:
        gone = db.execute("DELETE FROM leases WHERE rollout_id=? AND lease_id=?",
                          (lease.rollout_id, lease.lease_id)).rowcount
        if gone:
            store.append_event(db, lease.rollout_id, dt.datetime.fromtimestamp(now, dt.UTC), lease.holder,
                               "lease.released", {"fence": lease.fence.number})


def force_unlock(store: SqliteStore, rollout_id: str, lease_id: str, by: str, now: float) -> str:
    """Remove the lease ``lease_id`` (it must be the current one); returns who held it."""
    with store.write() as db:
        row = db.execute("SELECT * FROM leases WHERE rollout_id=?", (rollout_id,)).fetchone()
        if row is None:
            raise InputError(f"rollout {rollout_id} has no lease to unlock.")
        if row["lease_id"] != lease_id:
            raise InputError(f"lease id {lease_id!r} is not the current lease of rollout {rollout_id} "
                             f"(held by {row['holder']} on {row['host']}); copy the id from the driver's message.")
        db.execute("DELETE FROM leases WHERE rollout_id=?", (rollout_id,))
        store.append_event(db, rollout_id, dt.datetime.fromtimestamp(now, dt.UTC), by, "lease.force_unlocked",
                           {"lease_id": lease_id, "holder": row["holder"], "host": row["host"], "fence": row["fence"]})
        return str(row["holder"])
