"""A short, derandomized fuzz run of the inventory importer: only InventoryError may escape.

Three inputs: arbitrary bytes, valid CSV/JSON/JSON Lines damaged byte by byte, and valid files
whose fields are arbitrary Unicode. A load that succeeds must hold unique device ids and serials,
and (for the Unicode fields) give back exactly the values that were written.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rollout.errors import InventoryError, RolloutError
from rollout.plan.inventory import Inventory, parse_inventory
from tests.inventory_builders import csv_text, device_row, json_text, jsonl_text

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WRITERS: dict[str, Callable[[list[dict[str, str]]], str]] = {".csv": csv_text, ".json": json_text,
                                                             ".jsonl": jsonl_text}
SUFFIXES = st.sampled_from(sorted(WRITERS))
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "cp932", "utf-16"])
SITES = st.sampled_from([None, ("tokyo", "osaka")])
INSERTS = st.sampled_from([b'"', b",", b"\n", b"\r", b"\r\n", b"[", b"]", b"{", b"}", b"\\", b"\x00",
                           b"\t", b";", b"\xef\xbb\xbf", b"\x81", b"\xe9\xab", b"\xfd", b'"",', b"1" * 5000])


def parse_or_reject(data: bytes, suffix: str, known_sites: tuple[str, ...] | None = None) -> Inventory | None:
    """Parse; None when rejected. Any exception but InventoryError fails the test."""
    source = f"fleet{suffix}"
    try:
        inventory = parse_inventory(data, source=source, suffix=suffix, known_sites=known_sites)
    except InventoryError as err:
        assert isinstance(err, RolloutError) and err.problems
        assert all(p.where.startswith(source) for p in err.problems)
        return None
    ids = [d.device_id for d in inventory.devices]
    serials = [d.serial.upper() for d in inventory.devices]
    assert len(set(ids)) == len(ids) and len(set(serials)) == len(serials)
    assert all(d.device_id and d.user for d in inventory.devices)
    return inventory


@st.composite
def damaged_files(draw: st.DrawFn) -> tuple[bytes, str]:
    suffix = draw(SUFFIXES)
    rows = [device_row(i) for i in range(1, draw(st.integers(1, 4)) + 1)]
    data = bytearray(WRITERS[suffix](rows).encode(draw(ENCODINGS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate-line"]))
        if action == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "truncate":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(INSERTS)
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif action == "duplicate-line" and data:
            lines = bytes(data).split(b"\n")
            lines.insert(at % len(lines), lines[at % len(lines)])
            data = bytearray(b"\n".join(lines))
    return bytes(data), suffix


field_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12)


@st.composite
def unicode_rows(draw: st.DrawFn) -> list[dict[str, str]]:
    n = draw(st.integers(1, 4))
    rows = []
    for i in range(1, n + 1):
        fields = {k: draw(field_text) for k in ("device_id", "hostname", "department", "model", "owner_name")}
        rows.append(device_row(i, **{k: v for k, v in fields.items() if draw(st.booleans())}))
    return rows


@FUZZ
@given(data=st.binary(max_size=600), suffix=SUFFIXES, known_sites=SITES)
def test_arbitrary_bytes_give_an_inventory_or_an_inventory_error(data: bytes, suffix: str,
                                                                 known_sites: tuple[str, ...] | None) -> None:
    event(str(parse_or_reject(data, suffix, known_sites) is not None))


@FUZZ
@given(damaged=damaged_files(), known_sites=SITES)
def test_damaged_valid_files_give_an_inventory_or_an_inventory_error(damaged: tuple[bytes, str],
                                                                     known_sites: tuple[str, ...] | None) -> None:
    event(str(parse_or_reject(*damaged, known_sites) is not None))


@FUZZ
@given(rows=unicode_rows(), suffix=SUFFIXES)
def test_unicode_fields_come_back_exactly_or_are_rejected(rows: list[dict[str, str]], suffix: str) -> None:
    inventory = parse_or_reject(WRITERS[suffix](rows).encode("utf-8"), suffix)
    event(str(inventory is not None))
    if inventory is not None:
        assert [d.to_record() for d in inventory.devices] == [
            {k: v.strip() for k, v in r.items() if k != "owner_name" or v.strip()} for r in rows
        ]


def test_a_minified_json_array_with_a_repeated_id_is_rejected() -> None:
    # Both records start on line 1: the duplicate check once compared lines and let this through.
    data = json_text([device_row(1), device_row(1)]).replace("\n", "").encode()
    assert parse_or_reject(data, ".json") is None


def test_json_the_parser_refuses_beyond_syntax_is_an_inventory_error() -> None:
    for data, suffix in [(b"[" * 100_000, ".json"), (b"[" * 100_000 + b"\n", ".jsonl"),
                         (b'[{"device_id": ' + b"1" * 5000 + b"}]", ".json")]:
        assert parse_or_reject(data, suffix) is None
