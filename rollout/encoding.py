"""Deterministic decoding of inventory exports.

Asset registers in Japan export CSV as CP932 (Shift_JIS with the NEC and IBM extensions) or as
UTF-8, often with a byte-order mark. Statistical charset detectors guess, and a wrong guess changes
people's names without a word (髙 read as 郄). So the rule here is fixed, never a guess:

1. an explicit ``encoding`` wins, decoded strictly;
2. a byte-order mark: UTF-8 (``utf-8-sig``) or UTF-16 (``utf-16``);
3. strict UTF-8;
4. strict CP932, unless the bytes show that they are not CP932 text: a line that is itself valid
   non-ASCII UTF-8 (the file mixes encodings), a UTF-8 file cut off inside a character, or a byte
   that CP932 maps to no character (0x80, 0xA0, 0xFD-0xFF);
5. otherwise the file is rejected, naming the byte offset and line of the first bad byte.

Every decision returns the encoding it used so that the CLI can say so.
"""

from __future__ import annotations

import codecs

from rollout.errors import InventoryError, Problem

UTF8 = "utf-8"
UTF8_BOM = "utf-8-sig"
CP932 = "cp932"

# Bytes CP932 decodes to something that is not text: 0x80 -> U+0080, 0xA0/0xFD/0xFE/0xFF -> PUA.
_CP932_NON_TEXT = {"\x80": 0x80, "\uf8f0": 0xA0, "\uf8f1": 0xFD, "\uf8f2": 0xFE, "\uf8f3": 0xFF}


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _reject(source: str, data: bytes, offset: int, message: str) -> InventoryError:
    where = f"{source}:{_line_of(data, offset)}"
    return InventoryError([Problem(where, "encoding", f"{message} (byte offset {offset})")], source=source)


def decode_inventory_bytes(data: bytes, *, source: str, encoding: str | None = None) -> tuple[str, str]:
    """Decode ``data`` by the fixed rule above; return ``(text, encoding_used)``.

    Raises InventoryError naming the line and byte offset when the bytes cannot be decoded
    without guessing.
    """
    if encoding:
        return _decode_explicit(data, source=source, encoding=encoding), encoding
    if data.startswith(codecs.BOM_UTF8):
        return _decode_explicit(data, source=source, encoding=UTF8_BOM), UTF8_BOM
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode_explicit(data, source=source, encoding="utf-16"), "utf-16"
    try:
        return data.decode(UTF8), UTF8
    except UnicodeDecodeError as utf8_error:
        return _decode_cp932_fallback(data, source, utf8_error), CP932


def _decode_explicit(data: bytes, *, source: str, encoding: str) -> str:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InventoryError(
            [Problem(source, "encoding", f"unknown encoding {encoding!r}; use utf-8, utf-8-sig or cp932")],
            source=source,
        ) from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise _reject(source, data, err.start, f"not valid {encoding}: byte 0x{data[err.start]:02x}") from None


def _decode_cp932_fallback(data: bytes, source: str, utf8_error: UnicodeDecodeError) -> str:
    head_is_utf8 = _is_utf8(data[: utf8_error.start])
    if utf8_error.reason == "unexpected end of data" and head_is_utf8 and utf8_error.start > len(data) - 4:
        raise _reject(
            source,
            data,
            utf8_error.start,
            "UTF-8 file cut off inside a multibyte character; re-export it, or pass --encoding cp932 if it is CP932",
        )
    try:
        text = data.decode(CP932)
    except UnicodeDecodeError as sjis_error:
        raise _reject(
            source,
            data,
            sjis_error.start,
            f"neither UTF-8 (bad byte 0x{data[utf8_error.start]:02x} at offset {utf8_error.start}, "
            f"line {_line_of(data, utf8_error.start)}) nor CP932 (bad byte 0x{data[sjis_error.start]:02x}); "
            "re-export the file as UTF-8 or pass --encoding",
        ) from None
    _check_cp932_is_text(text, data, source)
    _check_not_mixed(data, source, utf8_error.start)
    return text


def _is_utf8(chunk: bytes) -> bool:
    try:
        chunk.decode(UTF8)
    except UnicodeDecodeError:
        return False
    return True


def _check_cp932_is_text(text: str, data: bytes, source: str) -> None:
    for char, byte in _CP932_NON_TEXT.items():
        if char in text:
            offset = _find_single_byte(data, byte)
            raise _reject(source, data, offset, f"byte 0x{byte:02x} is not a character in CP932 text")


def _find_single_byte(data: bytes, byte: int) -> int:
    """Offset of ``byte`` where it stands as a character of its own in CP932, not as a trail byte."""
    i = 0
    while i < len(data):
        b = data[i]
        if b == byte:
            return i
        i += 2 if (0x81 <= b <= 0x9F or 0xE0 <= b <= 0xFC) else 1
    return 0


def _check_not_mixed(data: bytes, source: str, first_bad_utf8: int) -> None:
    """Reject a file in which some lines are UTF-8 text and others are not."""
    offset = 0
    for raw_line in data.split(b"\n"):
        if not raw_line.isascii() and _is_utf8(raw_line):
            bad_line = _line_of(data, first_bad_utf8)
            raise _reject(
                source,
                data,
                offset,
                f"the file mixes encodings: this line is UTF-8 but line {bad_line} is not; "
                "re-export it in one encoding, or pass --encoding to force one",
            )
        offset += len(raw_line) + 1
