"""Loading a device inventory exported from an asset register or MDM (CSV, JSON or JSON Lines).

Columns: device_id, hostname, serial, user (UPN or e-mail), site, department, model, os,
os_version, apps (``;``-separated), tags (``;``-separated). Any other column is kept as an
attribute that cohort selectors can use (``cost_center=1234``).

Loading is all or nothing: every problem in the file is collected and raised together as an
InventoryError whose lines read ``file:line: field: what is wrong``; nothing partial is returned.
Decoding follows the fixed rule of ``rollout.plan.encoding`` and the encoding used is reported.
A file that stops being readable (a CSV quote or a JSON value that never closes) gets one problem
at the line where it stops, after the problems of the records before it.

Limits, each refused with its line: at most ``MAX_COLUMNS`` (500) columns (checked on the header's
text before it is split, so a five-million-column header costs nothing), ``MAX_FIELD`` (4,096)
characters a field, ``MAX_DEVICES`` (2,000,000) records; no control characters (U+0000-U+001F,
U+007F-U+009F: NUL, line breaks and escapes inside a field) in a value or a column name. At most
``MAX_REPORTED`` (200) problems are listed, then how many more there are.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.core.device import (
    COLUMNS,
    LIST_SEPARATOR,
    REQUIRED_COLUMNS,
    Device,
)
from rollout.errors import InventoryError, Problem
from rollout.plan.encoding import decode_inventory_bytes

MAX_COLUMNS = 500
MAX_FIELD = 4096
MAX_DEVICES = 2_000_000
MAX_REPORTED = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Inventory:
    """A loaded inventory: the devices in file order, where they came from and how it was read."""

    devices: tuple[Device, ...]
    source: str
    encoding: str
    sha256: str
    extra_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.devices)

    def keys(self) -> tuple[str, ...]:
        """Every key a cohort selector may name for this inventory."""
        return COLUMNS + ("app", "tag") + self.extra_columns


def load_inventory(
    path: str | Path,
    *,
    encoding: str | None = None,
    known_sites: Collection[str] | None = None,
) -> Inventory:
    """Read, decode and validate an inventory file; raise InventoryError listing every problem.

    The format follows the suffix: ``.json`` (an array of objects, or ``{"devices": [...]}``),
    ``.jsonl``/``.ndjson`` (one object a line), anything else CSV (comma, or tab when the header
    has tabs and no commas).
    """
    path = Path(path)
    source = path.name
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InventoryError([Problem(str(path), "", f"cannot read: {err.strerror}")], source=source) from None
    return parse_inventory(data, source=source, suffix=path.suffix.lower(), encoding=encoding, known_sites=known_sites)


def parse_inventory(
    data: bytes,
    *,
    source: str,
    suffix: str = ".csv",
    encoding: str | None = None,
    known_sites: Collection[str] | None = None,
) -> Inventory:
    """Like ``load_inventory`` for bytes already in memory; ``source`` names them in errors."""
    text, used = decode_inventory_bytes(data, source=source, encoding=encoding)
    if suffix == ".json":
        rows: Iterable[tuple[int, Mapping[str, Any]]] = _json_rows(text, source)
        header: tuple[str, ...] | None = None
    elif suffix in (".jsonl", ".ndjson"):
        rows, header = _jsonl_rows(text, source), None
    else:
        header, rows = _csv_rows(text, source)
    builder = _Builder(source, known_sites)
    if header is not None:
        builder.check_header(header)
    for line, record in rows:
        builder.add(line, record)
    return builder.finish(used, hashlib.sha256(data).hexdigest())


def _csv_rows(text: str, source: str) -> tuple[tuple[str, ...], Iterator[tuple[int, Mapping[str, Any]]]]:
    end = text.find("\n")
    end = len(text) if end < 0 else end
    tab = text.find("\t", 0, end) >= 0 and text.find(",", 0, end) < 0
    delimiter = "\t" if tab else ","
    columns = text.count(delimiter, 0, end) + 1  # counted before the header is split: it may be huge
    if columns > MAX_COLUMNS:
        raise InventoryError([Problem(f"{source}:1", "header", f"{columns:,} columns, more than the {MAX_COLUMNS} "
                                      "allowed; export only the inventory's columns")], source=source)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        raw_header = next(reader)
    except StopIteration:
        raise InventoryError([Problem(f"{source}:1", "header", "the file is empty")], source=source) from None
    except csv.Error as err:
        raise InventoryError([Problem(f"{source}:1", "header", f"not CSV: {err}")], source=source) from None
    header = tuple(h.strip().lower() for h in raw_header)
    return header, _csv_records(reader, header, source)


def _csv_records(reader: Any, header: tuple[str, ...], source: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    width = len(header)
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield start, {"__error__": f"not valid CSV: {err}"}
            return
        line, start = start, reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            yield line, {"__error__": f"row has {len(row)} fields, the header has {width}"}
            continue
        yield line, dict(zip(header, row))


def _json_rows(text: str, source: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Objects of a JSON array with the line each starts on (the json module gives no positions)."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if text.startswith("{", pos):
        # {"devices": [...]}: locate the array after the key, then scan it like a bare array.
        key_at = text.find('"devices"', pos)
        pos = text.find("[", key_at) if key_at >= 0 else -1
        if pos < 0:
            raise InventoryError([Problem(f"{source}:1", "devices", "expected an array of devices")], source=source)
    elif not text.startswith("[", pos):
        raise InventoryError([Problem(f"{source}:1", "", "expected a JSON array of device objects")], source=source)
    pos += 1
    line, counted_to = 1, 0
    while True:
        pos = _skip_ws(text, pos)
        if text.startswith("]", pos):
            return
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            yield err.lineno, {"__error__": f"not valid JSON: {err.msg}"}
            return
        except (ValueError, RecursionError) as err:
            yield line, {"__error__": _json_limit_message(err)}
            return
        yield line, value if isinstance(value, dict) else {"__error__": "expected a JSON object for each device"}
        pos = _skip_ws(text, pos)
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("]", pos):
            yield text.count("\n", 0, pos) + 1, {"__error__": "not valid JSON: expected ',' or ']'"}
            return


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_limit_message(err: ValueError | RecursionError) -> str:
    """A value the json module refuses beyond its syntax: nesting too deep, a number too long."""
    if isinstance(err, RecursionError):
        return "not valid JSON: nested too deeply"
    return f"not valid JSON: {str(err).split(';')[0]}"


def _jsonl_rows(text: str, source: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """One object a line; lines end at ``\\n`` only, so U+2028 and form feeds stay inside strings."""
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as err:
            yield number, {"__error__": f"not valid JSON: {err.msg}"}
            continue
        except (ValueError, RecursionError) as err:
            yield number, {"__error__": _json_limit_message(err)}
            continue
        yield number, value if isinstance(value, dict) else {"__error__": "expected a JSON object"}


class _Builder:
    """Validates records one by one, collecting every problem; builds the devices at the end."""

    def __init__(self, source: str, known_sites: Collection[str] | None) -> None:
        self.source = source
        self.known_sites = frozenset(known_sites) if known_sites is not None else None
        self.problems: list[Problem] = []
        self.devices: list[Device] = []
        self.ids: dict[str, int] = {}
        self.serials: dict[str, int] = {}
        self.extra: dict[str, None] = {}
        self.lists: dict[str, tuple[str, ...]] = {}
        self.records = 0

    def problem(self, line: int, field: str, message: str) -> None:
        self.problems.append(Problem(f"{self.source}:{line}", field, message))

    def check_header(self, header: tuple[str, ...]) -> None:
        for column in REQUIRED_COLUMNS:
            if column not in header:
                self.problem(1, column, "missing column in the header")
        seen: set[str] = set()
        for column in header:
            bad = _CONTROL.search(column)
            if bad is not None:
                self.problem(1, _CONTROL.sub("?", column[:60]), f"the column name holds the control character "
                                                               f"U+{ord(bad.group()):04X}; remove it and export again")
            if column in seen:
                self.problem(1, column, "column appears twice in the header")
            seen.add(column)
        if self.problems:
            raise InventoryError(self.problems, source=self.source)

    def add(self, line: int, record: Mapping[str, Any]) -> None:
        self.records += 1
        if self.records > MAX_DEVICES:
            self.problem(line, "row", f"more than {MAX_DEVICES:,} devices in one file; split the fleet into "
                                      "several rollouts")
            raise InventoryError(self.reported(), source=self.source)
        if "__error__" in record:
            self.problem(line, "row", str(record["__error__"]))
            return
        if len(record) > MAX_COLUMNS:
            self.problem(line, "row", f"{len(record):,} fields, more than the {MAX_COLUMNS} allowed; "
                                      "export only the inventory's columns")
            return
        values = {str(k).strip().lower(): _text(v) for k, v in record.items()}
        before = len(self.problems)
        if not self._check_text(line, values):
            return
        for column in REQUIRED_COLUMNS:
            if not values.get(column):
                self.problem(line, column, "empty" if column in values else "missing")
        user = values.get("user", "")
        if user and not _looks_like_upn(user):
            self.problem(line, "user", f"{user!r} is not a UPN or e-mail address (name@domain)")
        site = values.get("site", "")
        if site and self.known_sites is not None and site not in self.known_sites:
            known = ", ".join(sorted(self.known_sites))
            self.problem(line, "site", f"unknown site {site!r} (the policy knows: {known})")
        self._check_unique(line, "device_id", values.get("device_id", ""), self.ids)
        self._check_unique(line, "serial", values.get("serial", "").upper(), self.serials)
        if len(self.problems) == before:
            self.devices.append(self._device(values))

    def _check_text(self, line: int, values: Mapping[str, str]) -> bool:
        """Refuse control characters and oversized fields, in values and in column names."""
        ok = True
        for key, value in values.items():
            column = _CONTROL.sub("?", key[:60])
            for text, what in ((key, "the column name"), (value, "the value")):
                bad = _CONTROL.search(text)
                if bad is not None:
                    self.problem(line, column, f"{what} holds the control character U+{ord(bad.group()):04X} at "
                                               f"character {bad.start() + 1}; remove it and export again")
                    ok = False
                elif len(text) > MAX_FIELD:
                    self.problem(line, column, f"{what} is {len(text):,} characters long, more than the "
                                               f"{MAX_FIELD:,} allowed; shorten it")
                    ok = False
        return ok

    def reported(self) -> list[Problem]:
        """The problems to show: the first MAX_REPORTED, then how many more there are."""
        if len(self.problems) <= MAX_REPORTED:
            return self.problems
        rest = len(self.problems) - MAX_REPORTED
        return self.problems[:MAX_REPORTED] + [Problem(self.source, "", f"... and {rest:,} more problems; "
                                                                         "fix these first")]

    def _check_unique(self, line: int, field: str, value: str, seen: dict[str, int]) -> None:
        """The second record with ``value`` is a duplicate, even on the line of the first (minified JSON)."""
        if not value:
            return
        if value in seen:
            self.problem(line, field, f"duplicate of line {seen[value]}")
        else:
            seen[value] = line

    def _device(self, values: dict[str, str]) -> Device:
        intern = sys.intern
        extras = tuple(sorted((k, v) for k, v in values.items() if k not in COLUMNS and v))
        for name, _ in extras:
            self.extra.setdefault(name)
        return Device(
            values["device_id"],
            values["hostname"],
            values["serial"],
            values["user"],
            intern(values["site"]),
            intern(values["department"]),
            intern(values["model"]),
            intern(values["os"]),
            intern(values["os_version"]),
            self._list(values.get("apps", "")),
            self._list(values.get("tags", "")),
            extras,
        )

    def _list(self, raw: str) -> tuple[str, ...]:
        cached = self.lists.get(raw)
        if cached is None:
            items = (sys.intern(item.strip()) for item in raw.split(LIST_SEPARATOR))
            cached = self.lists[raw] = tuple(dict.fromkeys(item for item in items if item))
        return cached

    def finish(self, encoding: str, sha256: str) -> Inventory:
        if self.problems:
            raise InventoryError(self.reported(), source=self.source)
        if not self.devices:
            raise InventoryError([Problem(f"{self.source}:1", "", "no devices in the file")], source=self.source)
        return Inventory(tuple(self.devices), self.source, encoding, sha256, tuple(sorted(self.extra)))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return LIST_SEPARATOR.join(str(v).strip() for v in value)
    return str(value).strip()


def _looks_like_upn(user: str) -> bool:
    """``name@domain``: one ``@``, a non-empty name, a dotted domain, no whitespace anywhere."""
    local, at, domain = user.partition("@")
    return bool(
        at and local and "@" not in domain and "." in domain and not domain.startswith(".")
        and not domain.endswith(".") and len(user.split()) == 1
    )


def write_inventory_csv(devices: Iterable[Device], out: io.TextIOBase | Any, extra_columns: Iterable[str] = ()) -> None:
    """Write devices as an inventory CSV (the format ``load_inventory`` reads)."""
    columns = list(COLUMNS) + list(extra_columns)
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for device in devices:
        writer.writerow(device.to_record())
