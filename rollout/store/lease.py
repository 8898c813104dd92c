"""The driver's lease: one driver per rollout at a time, with a fencing number.

``acquire_lease`` succeeds when nobody holds the rollout or the holder's lease has expired; it
then takes a fencing number one above every number ever issued for the rollout. Every write of
the driver carries ``Fence(lease_id, number)`` and the store refuses it once another driver took
over (``rollout.store.sqlite.StaleWriterError``). A force-unlock needs the exact lease id and is audited.
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

from rollout.core.names import display_name
from rollout.errors import InputError, RolloutError
from rollout.store.api import Changes, Fence, LeaseRow, StateStore, TxView

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


def acquire_lease(store: StateStore, rollout_id: str, holder: str, now: float, ttl: float = DEFAULT_TTL,
                  host: str | None = None) -> Lease:
    host = host or socket.gethostname()
    lease_id = uuid.uuid4().hex

    def build(view: TxView) -> Changes:
        view.status()  # raises NotFoundError for an unknown rollout
        row = view.lease()
        if row is not None and row.expires_at > now and not is_holder_gone(row.host, row.pid, host):
            raise LeaseHeldError(
                f"rollout {rollout_id} is being driven by {row.holder} on {row.host} (pid {row.pid}) "
                f"since {_when(row.acquired_at)}; its lease expires at {_when(row.expires_at)}. "
                f"Wait for it, or if that driver is gone: rollout unlock --lease-id {row.lease_id}")
        number = view.last_fence() + 1
        ch = Changes(lease=LeaseRow(lease_id, holder, host, os.getpid(), now, now + ttl, number), last_fence=number)
        ch.event(dt.datetime.fromtimestamp(now, dt.UTC), holder, "lease.acquired",
                 {"host": host, "fence": number, "expires_at": _when(now + ttl),
                  "took_over": row.holder if row is not None else None})
        return ch

    changes = store.transact(rollout_id, build)
    assert changes.last_fence is not None
    return Lease(rollout_id, lease_id, Fence(lease_id, changes.last_fence), holder, host, now + ttl)


def renew_lease(store: StateStore, lease: Lease, now: float, ttl: float = DEFAULT_TTL) -> Lease:
    def build(view: TxView) -> Changes:
        row = view.lease()
        assert row is not None  # the fence check already proved it is ours
        return Changes(lease=LeaseRow(row.lease_id, row.holder, row.host, row.pid, row.acquired_at, now + ttl,
                                      row.fence))

    store.transact(lease.rollout_id, build, lease.fence)
    return Lease(lease.rollout_id, lease.lease_id, lease.fence, lease.holder, lease.host, now + ttl)


def release_lease(store: StateStore, lease: Lease, now: float) -> None:
    def build(view: TxView) -> Changes:
        row = view.lease()
        if row is None or row.lease_id != lease.lease_id:
            return Changes()
        ch = Changes(lease=None)
        ch.event(dt.datetime.fromtimestamp(now, dt.UTC), lease.holder, "lease.released", {"fence": lease.fence.number})
        return ch

    store.transact(lease.rollout_id, build)


def force_unlock(store: StateStore, rollout_id: str, lease_id: str, by: str, now: float) -> str:
    """Remove the lease ``lease_id`` (it must be the current one); returns who held it."""
    by = display_name(by, what="--as")

    def build(view: TxView) -> Changes:
        row = view.lease()
        if row is None:
            raise InputError(f"rollout {rollout_id} has no lease to unlock.")
        if row.lease_id != lease_id:
            raise InputError(f"lease id {lease_id!r} is not the current lease of rollout {rollout_id} "
                             f"(held by {row.holder} on {row.host}); copy the id from the driver's message.")
        ch = Changes(lease=None)
        ch.event(dt.datetime.fromtimestamp(now, dt.UTC), by, "lease.force_unlocked",
                 {"lease_id": lease_id, "holder": row.holder, "host": row.host, "fence": row.fence})
        return ch

    changes = store.transact(rollout_id, build)
    return str(changes.events[0].data["holder"])
