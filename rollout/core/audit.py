"""The hash-chained audit log: every event carries the hash of the one before it.

``event_hash(prev, seq, at, actor, kind, data)`` is SHA-256 over the previous hash and the
event's canonical JSON. Editing an event changes its hash (and editing it *and* recomputing its
hash breaks the next event's link, which names the edited one); deleting or reordering events
breaks the next event's link; truncating the tail is caught by the head (count and last hash) that the
store keeps beside the log, updated in the same transaction as each append.

``verify_chain`` walks the events in sequence order and names the first broken entry. It proves
integrity against edits made without recomputing the chain; someone who can rewrite both the log
and its head can forge a consistent history, so keep a copy of ``rollout audit verify``'s head
hash outside the store (a ticket, a chat message) to pin it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rollout.core.canonical import canonical_json

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at: str
    actor: str
    kind: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


def event_hash(prev_hash: str, seq: int, at: str, actor: str, kind: str, data: dict[str, Any]) -> str:
    body = canonical_json({"seq": seq, "at": at, "actor": actor, "kind": kind, "data": data})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def seal_event(prev_hash: str, seq: int, at: str, actor: str, kind: str, data: dict[str, Any]) -> tuple[str, str]:
    """An event's data as every store keeps it (JSON text) and its hash, computed from that text read
    back: what a verifier reads is exactly what was hashed, whichever store holds it (a tuple key or
    a non-string dict key would otherwise hash differently before and after storing)."""
    stored = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return stored, event_hash(prev_hash, seq, at, actor, kind, json.loads(stored))


@dataclass(frozen=True, slots=True)
class AuditReport:
    ok: bool
    events: int
    head_hash: str
    first_broken: int | None = None  # sequence number of the first event that does not verify
    problem: str = ""


def verify_chain(events: Iterable[Event], head_count: int, head_hash: str) -> AuditReport:
    """Check every link and the head; report the first broken entry (see the module docstring)."""
    prev, expected_seq, last_hash, count = GENESIS, 1, GENESIS, 0
    for event in events:
        count += 1
        if event.seq != expected_seq:
            what = "missing (deleted)" if event.seq > expected_seq else "out of order"
            return AuditReport(False, count, last_hash, expected_seq, f"event {expected_seq} is {what}")
        if event.prev_hash != prev:
            if event.seq > 1 and event_hash(event.prev_hash, event.seq, event.at, event.actor, event.kind,
                                            event.data) == event.hash:
                # This event is intact and names the hash its predecessor had: the predecessor was
                # rewritten and its own hash recomputed to match.
                return AuditReport(False, count - 1, last_hash, event.seq - 1,
                                   f"event {event.seq - 1} was edited and its hash recomputed: event {event.seq} "
                                   "recorded a different hash for it")
            return AuditReport(False, count, last_hash, event.seq,
                               f"event {event.seq} does not link to event {event.seq - 1} (reordered or deleted)")
        recomputed = event_hash(prev, event.seq, event.at, event.actor, event.kind, event.data)
        if recomputed != event.hash:
            return AuditReport(False, count, last_hash, event.seq, f"event {event.seq} was edited: its hash differs")
        prev = last_hash = event.hash
        expected_seq += 1
    if count != head_count or last_hash != head_hash:
        return AuditReport(False, count, last_hash, count + 1 if count < head_count else count,
                           f"the log has {count} events ending in {last_hash[:12]} but its head records "
                           f"{head_count} ending in {head_hash[:12]} (truncated or rewritten)")
    return AuditReport(True, count, last_hash)
