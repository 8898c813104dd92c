"""The record of employee notices sent, in either state store: the ledger that makes sending idempotent.

A notice is identified by (rollout, wave, template version, recipient key); the key is the address
NFKC-normalised and case-folded (``recipient_key``), so ``Taro@Example.com`` and
``taro@example.com`` are one person. Once recorded, a notice is never recorded again (SQLite:
``INSERT OR IGNORE``; DynamoDB: a put conditional on the item not existing), and the first message id
stays. The records live with the rollout's state, not in the folder the notices were rendered to,
so rendering another wave into the same folder, or sending from another folder, sends nothing twice.

SQLite table ``notices_sent`` (migration 5 in ``rollout.store.schema``); DynamoDB items
``pk = R#<rollout>``, ``sk = NOTICE#<wave>#<template version>#<recipient key>``
(``rollout.store.dynamo_notices``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import unicodedata

from rollout.store.api import SentNotice


def recipient_key(address: str) -> str:
    """The form two spellings of one address share: NFKC, case-folded, outer spaces removed."""
    return unicodedata.normalize("NFKC", address).casefold().strip()


def sqlite_sent(db: sqlite3.Connection, rollout_id: str, wave: str, version: str) -> dict[str, SentNotice]:
    """The notices of (rollout, wave, template version) sent so far, by recipient key."""
    rows = db.execute("SELECT wave, template_version, recipient_key, recipient, message_id, sent_at "
                      "FROM notices_sent WHERE rollout_id=? AND wave=? AND template_version=?",
                      (rollout_id, wave, version)).fetchall()
    return {r[2]: SentNotice(*r) for r in rows}


def sqlite_all(db: sqlite3.Connection, rollout_id: str) -> list[SentNotice]:
    """Every notice of the rollout sent so far (for ``rollout state migrate``)."""
    rows = db.execute("SELECT wave, template_version, recipient_key, recipient, message_id, sent_at FROM notices_sent "
                      "WHERE rollout_id=? ORDER BY sent_at, wave, recipient_key", (rollout_id,)).fetchall()
    return [SentNotice(*r) for r in rows]


def sqlite_record(db: sqlite3.Connection, rollout_id: str, notice: SentNotice) -> None:
    """Record one sent notice inside the caller's transaction; an earlier record of it wins."""
    db.execute("INSERT OR IGNORE INTO notices_sent VALUES (?, ?, ?, ?, ?, ?, ?)",
               (rollout_id, notice.wave, notice.template_version, notice.recipient_key, notice.recipient,
                notice.message_id, notice.sent_at))


def now_iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat()
