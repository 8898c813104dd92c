"""Builders of inventory files for the inventory tests: rows as dicts, files as exact bytes."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rollout.core.device import COLUMNS

OWNERS = ("髙橋 翔", "山﨑 美咲", "村上 ｹﾝﾀ")
SITES = ("tokyo", "osaka")


def device_row(i: int, **overrides: str) -> dict[str, str]:
    """Inventory row ``i``: valid, unique, and carrying the characters encoders get wrong."""
    row = {
        "device_id": f"PC-髙﨑-{i:03d}",
        "hostname": f"ｱｲｳｶﾞ-{i:03d}",
        "serial": f"SN{i:05d}",
        "user": f"user{i}@example.co.jp",
        "site": SITES[i % len(SITES)],
        "department": "総務部①㈱ｿｳﾑ" if i % 2 else "営業部",
        "model": "FMV LIFEBOOK U9",
        "os": "Windows",
        "os_version": "11 23H2",
        "apps": "文書管理システム;Teams",
        "tags": "pilot" if i == 1 else "",
        "owner_name": OWNERS[i % len(OWNERS)],
    }
    row.update(overrides)
    return row


def fleet_rows(n: int = 40) -> list[dict[str, str]]:
    return [device_row(i) for i in range(1, n + 1)]


def csv_text(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """Rows as CSV text with ``\\n`` line ends; the columns default to the standard ones plus extras."""
    if columns is None:
        columns = list(COLUMNS) + [k for k in rows[0] if k not in COLUMNS]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def json_text(rows: list[dict[str, Any]]) -> str:
    """A JSON array, one object a line, so that record ``k`` starts on line ``k + 2``."""
    return "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n"


def jsonl_text(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
