"""The DynamoDB store's writes: commit records, materializing them, creating and importing rollouts.

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

import datetime as dt
import json
import uuid
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from rollout.core.audit import GENESIS, event_hash
from rollout.store.dynamo_items import batch_put, blob_parts, blob_value, from_item, query_all, to_item
from rollout.errors import InputError, StateStoreError
from rollout.plan.inventory import Device
from rollout.core.model import DeviceState, RolloutStatus, WaveState
from rollout.store.api import ConflictError, Fence, RolloutDump
from rollout.store.rows import approval_to_row, device_to_row, encode, issue_to_row, wave_to_row

if TYPE_CHECKING:
    from rollout.store.dynamo import DynamoStore

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


def bucket_of(device_id: str, buckets: int) -> int:
    return zlib.crc32(device_id.encode("utf-8")) % buckets


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


def write_commit(store: DynamoStore, rollout_id: str, seq: int, head: dict[str, Any], removed: Sequence[str],
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


def _landed(store: DynamoStore, rollout_id: str, seq: int, nonce: str) -> bool:
    """Whether commit ``seq`` with ``nonce`` is HEAD's (or an ancestor of it: someone committed since)."""
    head = store.head(rollout_id)
    if int(head["seq"]) < seq:
        return False
    if int(head["seq"]) == seq:
        return str(head.get("nonce")) == nonce
    later = read_records(store, rollout_id, head, seq + 1)  # oldest first: its prev_nonce names commit seq
    return str(later[0].get("prev_nonce")) == nonce


def read_records(store: DynamoStore, rollout_id: str, head: dict[str, Any], first: int) -> list[dict[str, Any]]:
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


def _conditional_put(store: DynamoStore, item: dict[str, Any]) -> None:
    try:
        store.client.put_item(TableName=store.table, Item=to_item(item),
                              ConditionExpression="attribute_not_exists(#seq) OR #seq <= :k",
                              ExpressionAttributeNames={"#seq": "_v"},
                              ExpressionAttributeValues={":k": {"N": str(item["_v"])}})
    except ClientError as err:  # a newer commit holds the row: this one was applied before it
        _ignore_condition(err)


def device_bucket_key(store: DynamoStore, rollout_id: str, bucket: int) -> tuple[str, str]:
    return f"{store.pk(rollout_id)}#D#{bucket % PARTITIONS:02d}", f"B#{bucket:05d}"


def materialize(store: DynamoStore, rollout_id: str, record: dict[str, Any], buckets: int,
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


CLAIM_STALE_SECONDS = 600  # a creation that stopped this long ago may be taken over by the same plan


def _claim(store: DynamoStore, status: RolloutStatus) -> str:
    """Claim HEAD for creating the rollout; returns this creation's token. A second ``rollout start``
    is refused while another creation is under way; one that died more than ``CLAIM_STALE_SECONDS``
    ago may be finished by starting the same plan again."""
    import time

    rid = status.rollout_id
    head = store.head(rid, missing_ok=True)
    if head.get("state") == "ready":
        _index(store, rid, str(head["started_at"]))  # in case the creator died just before writing it
        raise InputError(f"rollout {rid!r} already exists in {store.location}; "
                         "use `rollout status` or start it under another --rollout id.")
    now = time.time()
    token = f"{int(now * 1e6):020d}-{new_nonce()}"  # orders creations by time
    try:
        store.client.put_item(
            TableName=store.table, Item=to_item({"pk": store.pk(rid), "sk": "HEAD", "state": "creating",
                                                 "plan_hash": status.plan_hash, "creator": token, "claimed_at": now}),
            ConditionExpression="attribute_not_exists(pk) OR (#s = :creating AND plan_hash = :ph AND claimed_at < :old)",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues=to_item({":creating": "creating", ":ph": status.plan_hash,
                                               ":old": now - CLAIM_STALE_SECONDS}))
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise InputError(f"rollout {rid!r} already exists in {store.location}, or another `rollout start` is "
                             "creating it right now; start it under another --rollout id, or try again in "
                             f"{CLAIM_STALE_SECONDS // 60} minutes if that one died.") from None
        raise
    return token


def _index(store: DynamoStore, rollout_id: str, started_at: str) -> None:
    store.client.put_item(TableName=store.table, Item=to_item({"pk": "ROLLOUTS", "sk": rollout_id,
                                                               "started_at": started_at}))


def _rows(store: DynamoStore, rid: str, waves: Sequence[WaveState], devices: Sequence[DeviceState],
          inventory: Sequence[Device], plan: dict[str, Any]) -> list[dict[str, Any]]:
    pk, buckets = store.pk(rid), bucket_count(len(devices))
    items: list[dict[str, Any]] = [{"pk": pk, "sk": f"WAVE#{w.index:04d}", **wave_to_row(w), "_v": 1} for w in waves]
    rows: dict[int, dict[str, Any]] = {}
    attrs: dict[int, dict[str, Any]] = {}
    for d, record in zip(devices, inventory):
        b = bucket_of(d.device_id, buckets)
        rows.setdefault(b, {})[d.device_id] = device_to_row(d)
        attrs.setdefault(b, {})[d.device_id] = record.to_record()
    for b in range(buckets):
        bpk, bsk = device_bucket_key(store, rid, b)
        items.append({"pk": bpk, "sk": bsk, "rows": one_part(rows.get(b, {})), "_v": 1})
        items.append({"pk": f"{pk}#A#{b % PARTITIONS:02d}", "sk": bsk, "a": one_part(attrs.get(b, {}))})
    items += [{"pk": pk, "sk": f"PLAN#{1:09d}#{n:03d}", "b": part} for n, part in enumerate(blob_parts(plan))]
    return items


def _put_all(store: DynamoStore, items: list[dict[str, Any]]) -> None:
    chunks = [items[i:i + 100] for i in range(0, len(items), 100)]
    for job in [store.pool.submit(batch_put, store.client, store.table, chunk) for chunk in chunks]:
        job.result()


def _head_fields(status: RolloutStatus, backend: dict[str, Any], devices: int) -> dict[str, Any]:
    return {"state": "ready", "plan_hash": status.plan_hash, "started_by": status.started_by,
            "started_at": encode(status.started_at), "separation_of_duties": status.separation_of_duties,
            "paused": status.paused, "pause_reason": status.pause_reason, "halted": status.halted,
            "halt_reason": status.halt_reason, "backend": json.dumps(backend), "seq": 1, "applied": 1,
            "issue_max": 0, "decision_max": 0, "intent_n": 0, "approval_n": 0, "replans": 0, "plan_ref": 1,
            "last_fence": 0, "buckets": bucket_count(devices), "nonce": ""}


def _ready(store: DynamoStore, rid: str, head: dict[str, Any], started_at: str, token: str) -> None:
    """The commit point of a creation: HEAD turns ready, only if this creation still holds the claim."""
    names = {f"#h{i}": k for i, k in enumerate(head)}
    values = {f":h{i}": v for i, v in enumerate(head.values())}
    try:
        store.client.update_item(
            TableName=store.table, Key=to_item({"pk": store.pk(rid), "sk": "HEAD"}),
            UpdateExpression="SET " + ", ".join(f"#h{i} = :h{i}" for i in range(len(head))),
            ConditionExpression="#state = :creating AND creator = :me",
            ExpressionAttributeNames={**names, "#state": "state"},
            ExpressionAttributeValues=to_item({**values, ":creating": "creating", ":me": token}))
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise InputError(f"rollout {rid!r}: another `rollout start` took over this creation; see "
                             "`rollout status`.") from None
        raise
    _index(store, rid, started_at)


def create(store: DynamoStore, status: RolloutStatus, waves: list[WaveState], devices: list[DeviceState],
           inventory: list[Device], plan: dict[str, Any], now: dt.datetime,
           backend: dict[str, Any] | None = None) -> None:
    """Claim HEAD, write the rows (invisible until HEAD is ready), the first events, then HEAD ready."""
    rid = status.rollout_id
    token = _claim(store, status)
    _put_all(store, _rows(store, rid, waves, devices, inventory, plan))
    stamp, prev = now.isoformat(), GENESIS
    first = [("rollout.started", {"plan_hash": status.plan_hash, "waves": len(waves), "devices": len(devices)})]
    if backend is not None:
        first.append(("rollout.backend", json.loads(json.dumps(backend))))
    for seq, (kind, data) in enumerate(first, start=1):
        digest = event_hash(prev, seq, stamp, status.started_by, kind, data)
        try:
            store.client.put_item(TableName=store.table, Item=to_item(pack({
                "pk": store.pk(rid), "sk": f"EVENT#{seq:09d}", "seq": seq, "_v": 1, "at": stamp,
                "actor": status.started_by, "kind": kind, "data": json.dumps(data, ensure_ascii=False, sort_keys=True),
                "prev_hash": prev, "hash": digest, "creator": token})),
                ConditionExpression="attribute_not_exists(pk) OR creator <= :me",
                ExpressionAttributeValues=to_item({":me": token}))
        except ClientError as err:  # a later creation took over: it writes its own, and this one's _ready fails
            _ignore_condition(err)
        prev = digest
    _ready(store, rid, {**_head_fields(status, backend or {}, len(devices)), "event_count": len(first),
                        "head_hash": prev}, encode(status.started_at), token)


def export_rollout(store: DynamoStore, rollout_id: str) -> RolloutDump:
    replica = store.replica(rollout_id)
    decisions = [(int(replica.decisions[s]["wave"]), json.loads(replica.decisions[s]["record"]))
                 for s in sorted(replica.decisions)]
    from rollout.store.dynamo import intent_of

    intents = [(intent_of(r), r["state"], r["created_at"], r["done_at"])
               for r in sorted(replica.intents.values(), key=lambda r: int(r["n"]))]
    return RolloutDump(
        status=store.status(rollout_id), plan=store.plan_json(rollout_id), backend=store.backend_settings(rollout_id),
        waves=store.waves(rollout_id), devices=list(store.devices(rollout_id).values()),
        inventory=store.inventory(rollout_id), approvals=store.approvals(rollout_id), issues=store.issues(rollout_id),
        decisions=decisions, intents=intents, events=list(store.events(rollout_id)),
        last_fence=int(replica.head.get("last_fence") or 0), replans=int(replica.head.get("replans") or 0))


def import_rollout(store: DynamoStore, dump: RolloutDump, approval_key: Callable[[Any], str]) -> None:
    """Write the dump's rows and events verbatim; HEAD turns ready last, with the chain's head."""
    s, rid = dump.status, dump.status.rollout_id
    pk = store.pk(rid)
    token = _claim(store, s)
    items = _rows(store, rid, dump.waves, dump.devices, [dump.inventory[d.device_id] for d in dump.devices], dump.plan)
    items += [{"pk": pk, "sk": f"APPR#{approval_key(a)}", **approval_to_row(a), "n": n, "_v": 1}
              for n, a in enumerate(dump.approvals, start=1)]
    items += [{"pk": pk, "sk": f"ISSUE#{i.id:06d}", **issue_to_row(i), "_v": 1} for i in dump.issues]
    items += [{"pk": pk, "sk": f"DEC#{n:06d}", "wave": wave, "_v": 1,
               "record": json.dumps(record, ensure_ascii=False, sort_keys=True)}
              for n, (wave, record) in enumerate(dump.decisions, start=1)]
    items += [{"pk": pk, "sk": f"INTENT#{i.op_id}", "op_id": i.op_id, "verb": i.verb, "wave": i.wave,
               "device_ids": json.dumps(list(i.device_ids)), "state": state, "created_at": created, "done_at": done,
               "n": n, "max_errors": i.max_errors, "_v": 1} for n, (i, state, created, done) in enumerate(dump.intents, start=1)]
    items += [pack({"pk": pk, "sk": f"EVENT#{e.seq:09d}", "seq": e.seq, "_v": 1, "at": e.at, "actor": e.actor, "kind": e.kind,
                    "data": json.dumps(e.data, ensure_ascii=False, sort_keys=True), "prev_hash": e.prev_hash,
                    "hash": e.hash}) for e in dump.events]
    _put_all(store, items)
    head = {**_head_fields(s, dump.backend, len(dump.devices)), "event_count": len(dump.events),
            "head_hash": dump.events[-1].hash if dump.events else GENESIS,
            "issue_max": max((i.id for i in dump.issues), default=0), "decision_max": len(dump.decisions),
            "intent_n": len(dump.intents), "approval_n": len(dump.approvals), "replans": dump.replans,
            "last_fence": dump.last_fence}
    _ready(store, rid, head, encode(s.started_at), token)
