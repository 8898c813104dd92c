"""Low-level DynamoDB helpers for the team state store: attribute values, blobs, batches, queries.

- ``to_item``/``from_item`` convert between plain Python values (str, int, float, bool, None,
  bytes) and DynamoDB's typed attribute values.
- Large JSON (plans, commit records, event payloads) is stored as a *blob*: zlib-compressed JSON
  split into parts of at most ``PART_BYTES`` (an item holds at most 400 KB).
- ``batch_put`` writes items 25 at a time (BatchWriteItem), retrying unprocessed items.
- ``query_all`` follows a Query's pages; reads are strongly consistent.
- ``create_state_table`` creates the table (``pk``/``sk`` strings, on-demand, point-in-time recovery).
"""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

PART_BYTES = 350_000
BATCH = 25


def to_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": repr(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, str):
        return {"S": value}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB: encode it first")


def from_value(typed: Mapping[str, Any]) -> Any:
    ((kind, value),) = typed.items()
    if kind == "NULL":
        return None
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind in ("S", "BOOL", "B"):
        return value
    raise TypeError(f"unexpected DynamoDB type {kind}")


def to_item(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: to_value(value) for name, value in values.items()}


def from_item(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {name: from_value(typed) for name, typed in item.items()}


def blob_parts(data: Any) -> list[bytes]:
    """JSON-encode ``data``, compress it and split it into item-sized parts."""
    raw = zlib.compress(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 6)
    return [raw[i:i + PART_BYTES] for i in range(0, len(raw), PART_BYTES)] or [b""]


def blob_value(parts: Sequence[bytes]) -> Any:
    return json.loads(zlib.decompress(b"".join(parts)).decode("utf-8"))


def query_all(client: Any, table: str, pk: str, begins: str | None = None, *, between: tuple[str, str] | None = None,
              projection: str | None = None) -> Iterator[dict[str, Any]]:
    """Every item of partition ``pk`` (whose sort key begins with ``begins``, or lies ``between``)."""
    names = {"#pk": "pk"}
    values: dict[str, Any] = {":pk": {"S": pk}}
    condition = "#pk = :pk"
    if begins is not None:
        names["#sk"] = "sk"
        values[":b"] = {"S": begins}
        condition += " AND begins_with(#sk, :b)"
    elif between is not None:
        names["#sk"] = "sk"
        values[":lo"], values[":hi"] = {"S": between[0]}, {"S": between[1]}
        condition += " AND #sk BETWEEN :lo AND :hi"
    args: dict[str, Any] = {"TableName": table, "KeyConditionExpression": condition, "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values, "ConsistentRead": True}
    if projection:
        args["ProjectionExpression"] = projection
    while True:
        page = client.query(**args)
        for item in page.get("Items", []):
            yield from_item(item)
        if "LastEvaluatedKey" not in page:
            return
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def batch_put(client: Any, table: str, items: Sequence[Mapping[str, Any]]) -> None:
    """Put ``items`` (plain values), 25 per BatchWriteItem, retrying unprocessed items with backoff."""
    for start in range(0, len(items), BATCH):
        pending = [{"PutRequest": {"Item": to_item(item)}} for item in items[start:start + BATCH]]
        delay = 0.05
        while pending:
            answer = client.batch_write_item(RequestItems={table: pending})
            pending = answer.get("UnprocessedItems", {}).get(table, [])
            if pending:
                time.sleep(random.uniform(0, delay))
                delay = min(delay * 2, 5.0)


def create_state_table(client: Any, table: str) -> bool:
    """Create the state table if it does not exist; returns whether it was created."""
    try:
        client.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=[{"Key": "zt-rollout", "Value": "state"}],
        )
    except ClientError as err:
        if err.response["Error"]["Code"] == "ResourceInUseException":
            return False
        raise
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    try:
        client.update_continuous_backups(TableName=table,
                                         PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    except ClientError as err:  # not every endpoint (or account) supports it; the table works without
        if err.response["Error"]["Code"] not in ("UnknownOperationException", "ContinuousBackupsUnavailableException"):
            raise
    return True
