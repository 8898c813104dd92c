"""The DynamoDB store's creation of a rollout, and the export and import that ``rollout state migrate`` uses.

- ``create``: claim HEAD (``state: creating``, or take over a creation stopped more than
  ``CLAIM_STALE_SECONDS`` ago), put the rows (invisible until HEAD is ready), the first events, then
  mark HEAD ready. A second creation of the same rollout is refused.
- ``export_rollout`` / ``import_rollout``: a rollout's rows and events as stored, so the audit
  chain verifies in the other store unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from rollout.core.audit import GENESIS, seal_event
from rollout.core.device import Device
from rollout.core.model import DeviceState, RolloutStatus, WaveState
from rollout.errors import InputError
from rollout.store.api import RolloutDump
from rollout.store.dynamo_io import (
    PARTITIONS,
    TableHandle,
    _ignore_condition,
    bucket_count,
    device_bucket_key,
    new_nonce,
    one_part,
    pack,
)
from rollout.store.dynamo_items import (
    batch_put,
    blob_parts,
    to_item,
)
from rollout.store.dynamo_notices import dynamo_all, notice_item
from rollout.store.dynamo_replica import bucket_of, intent_of
from rollout.store.rows import (
    approval_to_row,
    device_to_row,
    encode,
    issue_to_row,
    wave_to_row,
)

CLAIM_STALE_SECONDS = 600  # a creation that stopped this long ago may be taken over by the same plan


def _claim(store: TableHandle, status: RolloutStatus) -> str:
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


def _index(store: TableHandle, rollout_id: str, started_at: str) -> None:
    store.client.put_item(TableName=store.table, Item=to_item({"pk": "ROLLOUTS", "sk": rollout_id,
                                                               "started_at": started_at}))


def _rows(store: TableHandle, rid: str, waves: Sequence[WaveState], devices: Sequence[DeviceState],
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


def _put_all(store: TableHandle, items: list[dict[str, Any]]) -> None:
    chunks = [items[i:i + 100] for i in range(0, len(items), 100)]
    for job in [store.pool.submit(batch_put, store.client, store.table, chunk) for chunk in chunks]:
        job.result()


def _head_fields(status: RolloutStatus, backend: dict[str, Any], devices: int) -> dict[str, Any]:
    return {"state": "ready", "plan_hash": status.plan_hash, "started_by": status.started_by,
            "started_at": encode(status.started_at), "separation_of_duties": status.separation_of_duties,
            "paused": status.paused, "pause_reason": status.pause_reason, "halted": status.halted,
            "halt_reason": status.halt_reason, "backend": json.dumps(backend), "seq": 1, "applied": 1,
            "duties_waived": json.dumps(dict(status.duties_waived)) if status.duties_waived else "",
            "issue_max": 0, "decision_max": 0, "intent_n": 0, "approval_n": 0, "replans": 0, "plan_ref": 1,
            "last_fence": 0, "buckets": bucket_count(devices), "nonce": ""}


def _ready(store: TableHandle, rid: str, head: dict[str, Any], started_at: str, token: str) -> None:
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


def create(store: TableHandle, status: RolloutStatus, waves: list[WaveState], devices: list[DeviceState],
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
        stored, digest = seal_event(prev, seq, stamp, status.started_by, kind, data)
        try:
            store.client.put_item(TableName=store.table, Item=to_item(pack({
                "pk": store.pk(rid), "sk": f"EVENT#{seq:09d}", "seq": seq, "_v": 1, "at": stamp,
                "actor": status.started_by, "kind": kind, "data": stored,
                "prev_hash": prev, "hash": digest, "creator": token})),
                ConditionExpression="attribute_not_exists(pk) OR creator <= :me",
                ExpressionAttributeValues=to_item({":me": token}))
        except ClientError as err:  # a later creation took over: it writes its own, and this one's _ready fails
            _ignore_condition(err)
        prev = digest
    _ready(store, rid, {**_head_fields(status, backend or {}, len(devices)), "event_count": len(first),
                        "head_hash": prev}, encode(status.started_at), token)


def export_rollout(store: TableHandle, rollout_id: str) -> RolloutDump:
    replica = store.replica(rollout_id)
    decisions = [(int(replica.decisions[s]["wave"]), json.loads(replica.decisions[s]["record"]))
                 for s in sorted(replica.decisions)]
    intents = [(intent_of(r), r["state"], r["created_at"], r["done_at"])
               for r in sorted(replica.intents.values(), key=lambda r: int(r["n"]))]
    return RolloutDump(
        status=store.status(rollout_id), plan=store.plan_json(rollout_id), backend=store.backend_settings(rollout_id),
        waves=store.waves(rollout_id), devices=list(store.devices(rollout_id).values()),
        inventory=store.inventory(rollout_id), approvals=store.approvals(rollout_id), issues=store.issues(rollout_id),
        decisions=decisions, intents=intents, events=list(store.events(rollout_id)),
        last_fence=int(replica.head.get("last_fence") or 0), replans=int(replica.head.get("replans") or 0),
        notices=dynamo_all(store.client, store.table, store.pk(rollout_id)))


def import_rollout(store: TableHandle, dump: RolloutDump, approval_key: Callable[[Any], str]) -> None:
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
    items += [notice_item(pk, n) for n in dump.notices]
    _put_all(store, items)
    head = {**_head_fields(s, dump.backend, len(dump.devices)), "event_count": len(dump.events),
            "head_hash": dump.events[-1].hash if dump.events else GENESIS,
            "issue_max": max((i.id for i in dump.issues), default=0), "decision_max": len(dump.decisions),
            "intent_n": len(dump.intents), "approval_n": len(dump.approvals), "replans": dump.replans,
            "last_fence": dump.last_fence}
    _ready(store, rid, head, encode(s.started_at), token)
