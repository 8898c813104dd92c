"""Choosing the state store: ``--state sqlite:PATH`` (the default) or ``--state dynamodb://TABLE?region=R``.

- ``sqlite:PATH`` (or a plain path): one SQLite file on a local disk, for one operator's machine.
- ``dynamodb://TABLE?region=R``: a DynamoDB table for a team (create it with ``rollout state init``);
  ``endpoint=URL`` points at another endpoint (DynamoDB Local, moto); ``cache=SECONDS`` (default 1)
  lets reads reuse the rollout's head for that long (they may lag another operator's write by as
  much; writes are always checked against the table). Credentials and region come from the usual
  AWS SDK chain when not given. ``AWS_ENDPOINT_URL`` is honoured too.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.errors import InputError
from rollout.store.api import StateStore
from rollout.store.sqlite import SqliteStore


@dataclass(frozen=True)
class DynamoUrl:
    table: str
    region: str | None
    endpoint: str | None
    cache: float = 1.0


def parse_dynamo_url(state: str) -> DynamoUrl:
    parsed = urllib.parse.urlsplit(state)
    query = urllib.parse.parse_qs(parsed.query)
    unknown = sorted(set(query) - {"region", "endpoint", "cache"})
    table = parsed.netloc or parsed.path.lstrip("/")
    if unknown or not table:
        raise InputError(f"--state {state!r}: expected dynamodb://TABLE?region=REGION"
                         + (f" (unknown option {unknown[0]!r})" if unknown else " (no table name)") + ".")
    try:
        cache = float(query.get("cache", ["1"])[0])
    except ValueError:
        cache = -1.0
    if cache < 0:
        raise InputError(f"--state {state!r}: cache must be a number of seconds (0 or more).")
    return DynamoUrl(table, query.get("region", [None])[0], query.get("endpoint", [None])[0], cache)


def dynamodb_client(url: DynamoUrl) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": 10}, max_pool_connections=32,
                    connect_timeout=5, read_timeout=20)
    try:
        return boto3.session.Session().client("dynamodb", region_name=url.region, endpoint_url=url.endpoint,
                                              config=config)
    except Exception as err:  # botocore.exceptions.NoRegionError and the like
        raise InputError(f"dynamodb://{url.table}: {err}; give ?region=REGION or set AWS_DEFAULT_REGION.") from None


def open_store(state: str, *, create: bool = True) -> StateStore:
    """The store ``state`` names (see the module docstring). Without ``create`` a SQLite file that does
    not exist is an error, not a new empty store (every CLI command but ``start`` opens it so)."""
    if state.startswith("dynamodb://"):
        from rollout.store.dynamo import DynamoStore

        url = parse_dynamo_url(state)
        return DynamoStore(url.table, dynamodb_client(url), region=url.region, head_ttl=url.cache)
    kind, sep, rest = state.partition(":")
    if sep and kind == "sqlite":
        return SqliteStore(rest, create=create)
    if sep and "/" not in kind and kind not in ("", ".") and len(kind) > 1:
        raise InputError(f"--state {state!r}: unknown store {kind!r}; use sqlite:PATH or dynamodb://TABLE?region=R.")
    return SqliteStore(Path(state), create=create)


def init_store(state: str) -> str:
    """Create the DynamoDB table ``state`` names (nothing to do for SQLite); says what it did."""
    if not state.startswith("dynamodb://"):
        open_store(state).close()
        return f"{state}: ready (SQLite creates its file on first use)."
    from rollout.store.dynamo_items import create_state_table

    url = parse_dynamo_url(state)
    created = create_state_table(dynamodb_client(url), url.table)
    return f"{state}: table {'created' if created else 'exists already'}."


@dataclass(frozen=True)
class Migrated:
    rollout_id: str
    source: str
    target: str
    devices: int
    events: int
    head_hash: str


def migrate_rollout(source_url: str, target_url: str, rollout_id: str | None, *, now: float | None = None) -> Migrated:
    """Copy a rollout between stores, events and hashes unchanged; refused while a driver holds its
    lease, and checked on arrival (the copy's audit log must verify to the same head)."""
    import time

    from rollout.errors import NotFoundError

    source, target = open_store(source_url), open_store(target_url)
    try:
        ids = source.rollout_ids()
        rid = rollout_id or (ids[0] if len(ids) == 1 else "")
        if not rid:
            raise InputError(f"{source.location} holds {len(ids)} rollouts ({', '.join(ids) or 'none'}); "
                             "pass --rollout ID.")
        lease = source.lease_row(rid)
        if lease is not None and lease.expires_at > (now or time.time()):
            raise InputError(f"rollout {rid} is being driven by {lease.holder} on {lease.host}; stop that driver "
                             "(or wait for its lease to expire) before moving the rollout.")
        try:
            target.status(rid)
            raise InputError(f"rollout {rid} already exists in {target.location}; nothing was copied.")
        except NotFoundError:
            pass
        dump = source.export_rollout(rid)
        target.import_rollout(dump)
        report = target.verify_audit(rid)
        if not report.ok or target.audit_head(rid) != source.audit_head(rid):
            raise InputError(f"the copy of {rid} in {target.location} does not verify ({report.problem}); "
                             "delete it there and try again.")
        return Migrated(rid, source.location, target.location, len(dump.devices), report.events, report.head_hash)
    finally:
        source.close()
        target.close()
