"""The record of employee notices sent, in the DynamoDB state store (see ``rollout.store.notice_records``).

Items ``pk = R#<rollout>``, ``sk = NOTICE#<wave>#<template version>#<recipient key>``, beside the
rollout's other items; a record is put only if none exists, so the first message id stays.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rollout.errors import StateStoreError
from rollout.store.api import SentNotice
from rollout.store.dynamo_items import query_all, to_item


def _sk(wave: str, version: str, key: str = "") -> str:
    return f"NOTICE#{wave}#{version}#{key}"


def dynamo_sent(client: Any, table: str, pk: str, wave: str, version: str) -> dict[str, SentNotice]:
    """The same, from the rollout's DynamoDB partition."""
    out = {}
    for item in query_all(client, table, pk, _sk(wave, version)):
        out[str(item["key"])] = SentNotice(wave, version, str(item["key"]), str(item["recipient"]),
                                           str(item["message_id"]), str(item["sent_at"]))
    return out


def dynamo_all(client: Any, table: str, pk: str) -> list[SentNotice]:
    """Every notice of the rollout sent so far (for ``rollout state migrate``)."""
    return sorted((SentNotice(str(i["wave"]), str(i["version"]), str(i["key"]), str(i["recipient"]),
                              str(i["message_id"]), str(i["sent_at"])) for i in query_all(client, table, pk, "NOTICE#")),
                  key=lambda n: (n.sent_at, n.wave, n.recipient_key))


def notice_item(pk: str, notice: SentNotice) -> dict[str, Any]:
    return {"pk": pk, "sk": _sk(notice.wave, notice.template_version, notice.recipient_key), "wave": notice.wave,
            "version": notice.template_version, "key": notice.recipient_key, "recipient": notice.recipient,
            "message_id": notice.message_id, "sent_at": notice.sent_at}


def dynamo_record(client: Any, table: str, pk: str, notice: SentNotice) -> None:
    """Put the record unless one exists (conditional put; a lost race keeps the first record)."""
    item = to_item(notice_item(pk, notice))
    try:
        client.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(sk)")
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return
        raise StateStoreError(f"{table}: could not record the notice sent to {notice.recipient} "
                              f"({err.response.get('Error', {}).get('Code', 'error')}); it was sent, and a later "
                              "send would send it again: fix the table's access, then send again.") from err
    except BotoCoreError as err:
        raise StateStoreError(f"{table}: could not record the notice sent to {notice.recipient} ({err}); it was "
                              "sent, and a later send would send it again: check the connection, then send "
                              "again.") from err
