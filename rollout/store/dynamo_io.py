"""The DynamoDB store's commit path: commit records, and materializing them into rows.

- ``write_commit``: phase 1. The record's parts are put under a fresh nonce (invisible: nothing
  points at them yet), then the HEAD item is updated with one conditional UpdateItem. That update
  is the commit point; a writer that lost the race leaves orphan parts, which are deleted.
- ``read_records``: records ``first..last``, found backwards from HEAD's nonce through each
  record's ``prev_nonce``.
- ``materialize``: phase 2. Every row of the record is put with ``seq <= k`` as condition, in
  parallel; device rows live in buckets of about ``BUCKET_DEVICES`` devices (one item each), so a
  10,000-device commit is some 200 puts. Then HEAD's ``applied`` moves to ``k``.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from rollout.core.audit import Event
from rollout.errors import StateStoreError
from rollout.store.api import ConflictError, Fence, StateStore
from rollout.store.dynamo_items import (
    blob_parts,
    blob_value,
    from_item,
    query_all,
    to_item,
)
from rollout.store.dynamo_replica import Replica, bucket_of


class TableHandle(StateStore, Protocol):
    """What these functions need of the DynamoDB store (``rollout.store.dynamo.DynamoStore``): its
    readers, the table and its client, the worker pool, and the HEAD and replica of a rollout. Named
    here, so that this module does not import the store that imports it."""

    table: str
    client: Any
    pool: ThreadPoolExecutor

    def pk(self, rollout_id: str) -> str: ...

    def head(self, rollout_id: str, *, missing_ok: bool = False) -> dict[str, Any]: ...

    def replica(self, rollout_id: str) -> Replica: ...

BUCKET_DEVICES = 50
PARTITIONS = 16
BIG_STRING = 60_000


def one_part(data: Any) -> bytes:
    """A blob that must fit one item (a bucket of ~50 devices is a few KB; 350 KB would be a bug)."""
    parts = blob_parts(data)
    if len(parts) != 1:
        raise StateStoreError(f"a bucket of {len(data)} rows compresses to {sum(map(len, parts)):,} bytes, more than "
                              "one DynamoDB item holds; nothing was written.")
    return parts[0]


def bucket_count(devices: int) -> int:
    return max(1, -(-devices // BUCKET_DEVICES))


def pack(row: dict[str, Any]) -> dict[str, Any]:
    """A row as item attributes: long strings compressed to bytes."""
    return {k: zlib.compress(v.encode("utf-8")) if isinstance(v, str) and len(v) > BIG_STRING else v
            for k, v in row.items()}


def unpack(item: dict[str, Any]) -> dict[str, Any]:
    return {k: zlib.decompress(v).decode("utf-8") if isinstance(v, bytes) else v for k, v in item.items()}


def _ignore_condition(err: ClientError) -> None:
    if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
        raise err


# -- phase 1 ---------------------------------------------------------------------------------------


def write_commit(store: TableHandle, rollout_id: str, seq: int, head: dict[str, Any], removed: Sequence[str],
                 record: dict[str, Any] | None, expected_seq: int | None, fence: Fence | None) -> bool:
    """Put the record's parts, then the conditional HEAD update. False: another writer won.

    ``head`` must already carry the commit's ``nonce`` (``new_nonce``). Whether the update landed is
    decided by HEAD itself when its answer is lost or a retry of it fails its condition (the first
    attempt may have landed): only a HEAD that does not carry this commit's nonce is a loss, and
    only then are the record's parts deleted."""
    pk = store.pk(rollout_id)
    keys: list[str] = []
    if record is not None:
        for n, part in enumerate(blob_parts(record)):
            key = f"COMMIT#{seq:09d}#{head['nonce']}#{n:03d}"
            store.client.put_item(TableName=store.table, Item=to_item({"pk": pk, "sk": key, "b": part}))
            keys.append(key)
    names, values, condition = _commit_condition(expected_seq, fence)
    for i, (name, value) in enumerate(head.items()):
        names[f"#h{i}"], values[f":h{i}"] = name, value
    expression = ("SET " + ", ".join(f"#h{i} = :h{i}" for i in range(len(head)))) if head else ""
    if removed:
        names.update({f"#r{i}": name for i, name in enumerate(removed)})
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
    try:
        store.client.update_item(TableName=store.table, Key=to_item({"pk": pk, "sk": "HEAD"}),
                                 UpdateExpression=expression.strip(), ConditionExpression=condition,
                                 ExpressionAttributeNames=names, ExpressionAttributeValues=to_item(values))
    except (ClientError, BotoCoreError) as err:
        if record is not None and _landed(store, rollout_id, seq, str(head["nonce"])):
            return True  # the answer was lost, or botocore retried an update that had landed
        if not (isinstance(err, ClientError) and err.response["Error"]["Code"] == "ConditionalCheckFailedException"):
            raise StateStoreError(f"{store.location}: the commit of rollout {rollout_id} failed ({err}); "
                                  "nothing was committed; run the command again.") from err
        for key in keys:  # a loser's parts: nothing points at them
            store.client.delete_item(TableName=store.table, Key=to_item({"pk": pk, "sk": key}))
        return False
    return True


def new_nonce() -> str:
    return uuid.uuid4().hex[:16]


def _commit_condition(expected_seq: int | None, fence: Fence | None) -> tuple[dict[str, str], dict[str, Any], str]:
    names = {"#state": "state"}
    values: dict[str, Any] = {":ready": "ready"}
    condition = "#state = :ready"
    if expected_seq is not None:
        names.update({"#seq": "seq", "#applied": "applied"})
        values[":s"] = expected_seq
        condition += " AND #seq = :s AND #applied = :s"
    if fence is not None:
        names.update({"#lid": "lease_id", "#lf": "lease_fence"})
        values.update({":lid": fence.lease_id, ":lf": fence.number})
        condition += " AND #lid = :lid AND #lf = :lf"
    return names, values, condition


def _landed(store: TableHandle, rollout_id: str, seq: int, nonce: str) -> bool:
    """Whether commit ``seq`` with ``nonce`` is HEAD's (or an ancestor of it: someone committed since)."""
    head = store.head(rollout_id)
    if int(head["seq"]) < seq:
        return False
    if int(head["seq"]) == seq:
        return str(head.get("nonce")) == nonce
    later = read_records(store, rollout_id, head, seq + 1)  # oldest first: its prev_nonce names commit seq
    return str(later[0].get("prev_nonce")) == nonce


def read_records(store: TableHandle, rollout_id: str, head: dict[str, Any], first: int) -> list[dict[str, Any]]:
    """Commit records ``first..head['seq']``, oldest first."""
    pk, seq, nonce = store.pk(rollout_id), int(head["seq"]), str(head.get("nonce") or "")
    out: list[dict[str, Any]] = []
    while seq >= first:
        items = sorted(query_all(store.client, store.table, pk, f"COMMIT#{seq:09d}#{nonce}#"), key=lambda i: i["sk"])
        if not items:
            raise ConflictError(f"{store.location}: commit record {seq} of {rollout_id} is missing; the table was "
                                "edited outside zt-rollout.")
        record = blob_value([i["b"] for i in items])
        out.append(record)
        seq, nonce = seq - 1, str(record.get("prev_nonce") or "")
    return out[::-1]


# -- phase 2 ---------------------------------------------------------------------------------------


def _conditional_put(store: TableHandle, item: dict[str, Any]) -> None:
    try:
        store.client.put_item(TableName=store.table, Item=to_item(item),
                              ConditionExpression="attribute_not_exists(#seq) OR #seq <= :k",
                              ExpressionAttributeNames={"#seq": "_v"},
                              ExpressionAttributeValues={":k": {"N": str(item["_v"])}})
    except ClientError as err:  # a newer commit holds the row: this one was applied before it
        _ignore_condition(err)


def device_bucket_key(store: TableHandle, rollout_id: str, bucket: int) -> tuple[str, str]:
    return f"{store.pk(rollout_id)}#D#{bucket % PARTITIONS:02d}", f"B#{bucket:05d}"


def materialize(store: TableHandle, rollout_id: str, record: dict[str, Any], buckets: int,
                full_rows: Callable[[int], dict[str, dict[str, Any]]] | None) -> None:
    """Put the record's rows, then move HEAD's ``applied``. ``full_rows(bucket)``: every device row of
    a bucket after the commit (the writer knows them); without it, buckets are read and merged."""
    seq = int(record["seq"])
    pk = store.pk(rollout_id)
    items = [pack({"pk": pk, "sk": sk, **row, "_v": seq}) for sk, row in row_items(record)]
    touched: dict[int, dict[str, dict[str, Any]]] = {}
    for device_id, row in record["devices"].items():
        touched.setdefault(bucket_of(device_id, buckets), {})[device_id] = row

    def put_bucket(bucket: int) -> None:
        bpk, bsk = device_bucket_key(store, rollout_id, bucket)
        if full_rows is not None:
            rows = full_rows(bucket)
        else:
            got = store.client.get_item(TableName=store.table, Key=to_item({"pk": bpk, "sk": bsk}), ConsistentRead=True)
            current = from_item(got.get("Item", {}))
            if int(current.get("_v") or 0) >= seq:
                return
            rows = {**(blob_value([current["rows"]]) if current else {}), **touched[bucket]}
        _conditional_put(store, {"pk": bpk, "sk": bsk, "rows": one_part(rows), "_v": seq})

    jobs = [store.pool.submit(_conditional_put, store, item) for item in items]
    jobs += [store.pool.submit(put_bucket, b) for b in touched]
    for job in jobs:
        job.result()
    try:
        store.client.update_item(TableName=store.table, Key=to_item({"pk": pk, "sk": "HEAD"}),
                                 UpdateExpression="SET #a = :k", ConditionExpression="#a < :k",
                                 ExpressionAttributeNames={"#a": "applied"}, ExpressionAttributeValues={":k": {"N": str(seq)}})
    except ClientError as err:
        _ignore_condition(err)


def row_items(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(sort key, row) of every row of a record but the devices."""
    out = [(f"WAVE#{int(k):04d}", r) for k, r in record["waves"].items()]
    out += [(f"APPR#{k}", r) for k, r in record["approvals"].items()]
    out += [(f"ISSUE#{int(k):06d}", r) for k, r in record["issues"].items()]
    out += [(f"DEC#{int(k):06d}", r) for k, r in record["decisions"].items()]
    out += [(f"INTENT#{k}", r) for k, r in record["intents"].items()]
    out += [(f"EVENT#{int(e['seq']):09d}", e) for e in record["events"]]
    if record.get("plan") is not None:
        out += [(f"PLAN#{int(record['seq']):09d}#{n:03d}", {"b": part}) for n, part in enumerate(blob_parts(record["plan"]))]
    return out


# -- creating and importing ---------------------------------------------------------------------------


def event_of(row: dict[str, Any]) -> Event:
    """An audit event from its row (or its entry in a commit record)."""
    return Event(int(row["seq"]), row["at"], row["actor"], row["kind"], json.loads(row["data"]), row["prev_hash"],
                 row["hash"])


def events_between(store: TableHandle, rollout_id: str, first: int, last: int) -> Iterator[Event]:
    """Audit events ``first..last`` as rows, in order (a commit not yet applied has none yet)."""
    for item in query_all(store.client, store.table, store.pk(rollout_id),
                          between=(f"EVENT#{first:09d}", f"EVENT#{last:09d}")):
        yield event_of(unpack(item))
