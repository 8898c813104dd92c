"""The encoding corpus: every file round-trips exactly or is rejected naming its line and byte offset.

The bytes are built here, not stored, so each case says how it was made. Accepted files must carry
髙 﨑 ① ㈱ and half-width kana unchanged into the devices, ``rollout plan --format json`` and
``rollout plan explain``; rejected ones must name ``fleet.csv:LINE`` and the byte offset.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rollout.cli.main import cli
from rollout.errors import InventoryError
from rollout.plan.encoding import decode_inventory_bytes
from rollout.plan.inventory import load_inventory
from tests.inventory_builders import csv_text, device_row, fleet_rows

ROWS = fleet_rows(40)
TEXT = csv_text(ROWS)
LAST_LINE = len(ROWS) + 1  # the header is line 1
UTF8, SJIS = TEXT.encode("utf-8"), TEXT.encode("cp932")


@dataclass(frozen=True)
class Accepted:
    encoding: str


@dataclass(frozen=True)
class Rejected:
    line: int
    offset: int
    says: str


def _with_byte(byte: int) -> tuple[bytes, int]:
    """CP932 corpus whose line 3 has ``byte`` standing alone; returns (data, its offset)."""
    rows = [device_row(1), device_row(2, hostname="bad~host"), *ROWS[2:]]
    data = csv_text(rows).encode("cp932")
    offset = data.index(b"~")
    return data[:offset] + bytes([byte]) + data[offset + 1 :], offset


def _mixed() -> bytes:
    """Lines 1-40 exported as UTF-8, line 41 appended by a tool that wrote CP932."""
    head, last = TEXT.rstrip("\n").rsplit("\n", 1)
    return (head + "\n").encode("utf-8") + (last + "\n").encode("cp932")


CUT_UTF8 = UTF8.rstrip(b"\n")[:-1]  # the last character, 咲 (3 bytes), loses its last byte
CUT_SJIS = SJIS.rstrip(b"\n")[:-1]  # the last character, 咲 (2 bytes), keeps only its lead byte
CUT_UTF16 = TEXT.encode("utf-16")[:-1]  # the final newline loses half its code unit
BOM_THEN_SJIS = codecs.BOM_UTF8 + SJIS
FIRST_SJIS_BYTE = 3 + next(i for i, b in enumerate(SJIS) if b >= 0x80)
MIXED = _mixed()
MIXED_AT = MIXED.index("PC-髙".encode("cp932")) + 3  # the first CP932 byte, on the last line

CORPUS: dict[str, tuple[Callable[[], bytes], Accepted | Rejected]] = {
    "utf-8": (lambda: UTF8, Accepted("utf-8")),
    "utf-8 with BOM": (lambda: codecs.BOM_UTF8 + UTF8, Accepted("utf-8-sig")),
    "utf-16-le with BOM": (lambda: codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), Accepted("utf-16")),
    "utf-16-be with BOM": (lambda: codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), Accepted("utf-16")),
    "cp932 (NEC-selected 髙 EEE0)": (lambda: SJIS, Accepted("cp932")),
    "cp932 (IBM 髙 FBFC)": (lambda: SJIS.replace(b"\xee\xe0", b"\xfb\xfc"), Accepted("cp932")),
    "utf-8 cut inside a character": (lambda: CUT_UTF8, Rejected(LAST_LINE, len(CUT_UTF8) - 2, "cut off inside")),
    "cp932 cut after a lead byte": (lambda: CUT_SJIS, Rejected(LAST_LINE, len(CUT_SJIS) - 1, "nor CP932")),
    "utf-16 cut inside a code unit": (lambda: CUT_UTF16, Rejected(LAST_LINE, len(CUT_UTF16) - 1, "utf-16")),
    "utf-8 BOM then cp932 bytes": (lambda: BOM_THEN_SJIS, Rejected(2, FIRST_SJIS_BYTE, "not valid utf-8-sig")),
    "mixed utf-8 and cp932 lines": (lambda: MIXED, Rejected(LAST_LINE, MIXED_AT, "mixes encodings")),
    "cp932 with 0x80": (lambda: _with_byte(0x80)[0], Rejected(3, _with_byte(0x80)[1], "0x80 is not a character")),
    "cp932 with 0xA0": (lambda: _with_byte(0xA0)[0], Rejected(3, _with_byte(0xA0)[1], "0xa0 is not a character")),
    "cp932 with 0xFD": (lambda: _with_byte(0xFD)[0], Rejected(3, _with_byte(0xFD)[1], "0xfd is not a character")),
}
ACCEPTED = [name for name, (_, want) in CORPUS.items() if isinstance(want, Accepted)]


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def policy(write_policy: Callable[..., Path]) -> Path:
    return write_policy(sites=["tokyo", "osaka"])


@pytest.mark.parametrize("name", list(CORPUS))
def test_each_file_round_trips_exactly_or_is_rejected_with_line_and_offset(tmp_path: Path, name: str) -> None:
    make, want = CORPUS[name]
    path = tmp_path / "fleet.csv"
    path.write_bytes(make())
    if isinstance(want, Accepted):
        inventory = load_inventory(path)
        assert inventory.encoding == want.encoding
        assert [d.to_record() for d in inventory.devices] == ROWS
    else:
        with pytest.raises(InventoryError) as caught:
            load_inventory(path)
        (problem,) = caught.value.problems
        assert (problem.where, problem.field) == (f"fleet.csv:{want.line}", "encoding")
        assert problem.message.endswith(f"(byte offset {want.offset})")
        assert want.says in problem.message


@pytest.mark.parametrize("name", ACCEPTED)
def test_plan_json_and_explain_carry_the_characters_unchanged(tmp_path: Path, policy: Path, name: str) -> None:
    make, want = CORPUS[name]
    inventory = tmp_path / "fleet.csv"
    inventory.write_bytes(make())
    planned = _run("plan", "--inventory", str(inventory), "--policy", str(policy), "--format", "json")
    assert planned.exit_code == 0, planned.output
    assert f"40 devices, encoding {want.encoding}." in planned.stderr
    doc = json.loads(planned.stdout)
    assert sorted(d for w in doc["waves"] for d in w["devices"]) == [r["device_id"] for r in ROWS]
    explained = _run("plan", "explain", "PC-髙﨑-003", "--inventory", str(inventory), "--policy", str(policy),
                     "--format", "json")
    assert explained.exit_code == 0, explained.output
    cohorts = {c["cohort"] for c in json.loads(explained.stdout)["cohorts"]}
    assert "department=総務部①㈱ｿｳﾑ" in cohorts


def test_forcing_cp932_on_a_cp932_file_reads_it(tmp_path: Path, policy: Path) -> None:
    inventory = tmp_path / "fleet.csv"
    inventory.write_bytes(SJIS)
    result = _run("lint", "--inventory", str(inventory), "--policy", str(policy), "--encoding", "cp932")
    assert result.exit_code == 0, result.output
    assert "40 devices, encoding cp932." in result.stderr


def test_forcing_utf8_on_a_cp932_file_is_rejected_with_the_offset(tmp_path: Path, policy: Path) -> None:
    inventory = tmp_path / "fleet.csv"
    inventory.write_bytes(SJIS)
    first = FIRST_SJIS_BYTE - 3
    result = _run("lint", "--inventory", str(inventory), "--policy", str(policy), "--encoding", "utf-8")
    assert result.exit_code == 2
    assert f"  fleet.csv:2: encoding: not valid utf-8: byte 0xee (byte offset {first})\n" in result.stderr


def test_forcing_cp932_still_rejects_bytes_that_are_no_character(tmp_path: Path) -> None:
    data, offset = _with_byte(0xFD)
    with pytest.raises(InventoryError, match=rf"fleet.csv:3: encoding: .* \(byte offset {offset}\)"):
        decode_inventory_bytes(data, source="fleet.csv", encoding="cp932")


def test_forcing_utf8_on_a_bom_file_drops_the_bom_instead_of_losing_device_id(tmp_path: Path) -> None:
    path = tmp_path / "fleet.csv"
    path.write_bytes(codecs.BOM_UTF8 + UTF8)
    assert [d.to_record() for d in load_inventory(path, encoding="utf-8").devices] == ROWS


@pytest.mark.parametrize("encoding", ["no-such-codec", "base64"])
def test_an_encoding_that_is_not_a_text_encoding_is_an_input_error(tmp_path: Path, policy: Path,
                                                                   encoding: str) -> None:
    inventory = tmp_path / "fleet.csv"
    inventory.write_bytes(UTF8)
    result = _run("lint", "--inventory", str(inventory), "--policy", str(policy), "--encoding", encoding)
    assert result.exit_code == 2
    assert f"fleet.csv: encoding: unknown text encoding {encoding!r}; use utf-8, utf-8-sig or cp932" in result.stderr


@pytest.mark.parametrize("bytes_of_taka", [b"\xee\xe0", b"\xfb\xfc"], ids=["NEC-selected", "IBM"])
def test_taka_is_never_read_as_the_detectors_guess(bytes_of_taka: bytes) -> None:
    # The classic failure: a detector picks Shift_JIS-2004 (郄) or EUC-KR (Korean) for these bytes.
    guesses = {bytes_of_taka.decode(e, errors="replace") for e in ("shift_jis_2004", "euc_kr")}
    assert "髙" not in guesses
    data = "device_id,owner_name\nPC-1,".encode() + bytes_of_taka + "橋\n".encode("cp932")
    text, used = decode_inventory_bytes(data, source="fleet.csv")
    assert (text, used) == ("device_id,owner_name\nPC-1,髙橋\n", "cp932")
