"""Deterministic decoding of inventory exports.

Asset registers in Japan export CSV as CP932 (Shift_JIS with the NEC and IBM extensions) or as
UTF-8, often with a byte-order mark. Statistical charset detectors guess, and a wrong guess changes
people's names without a word (髙 read as 郄). So the rule here is fixed, never a guess:

1. an explicit ``encoding`` wins, decoded strictly (for CP932 that includes the check of step 4
   for bytes that are no character);
2. a byte-order mark: UTF-8 (``utf-8-sig``) or UTF-16 (``utf-16``);
3. strict UTF-8;
4. strict CP932, unless the bytes show that they are not CP932 text: a line that is itself valid
   non-ASCII UTF-8 (the file mixes encodings), a UTF-8 file cut off inside a character, or a byte
   that CP932 maps to no character (0x80, 0xA0, 0xFD-0xFF);
5. otherwise the file is rejected, naming the byte offset and line of the first bad byte.

Every decision returns the encoding it used so that the CLI can say so. A leading byte-order mark
is never data: it is dropped whichever encoding was used. Offsets count bytes from the start of
the file, BOM included; lines are counted in the decoded text (UTF-16 has 0x0A inside characters).
"""

from __future__ import annotations

import codecs

from rollout.errors import InventoryError, Problem

UTF8 = "utf-8"
UTF8_BOM = "utf-8-sig"
CP932 = "cp932"

# Bytes that CP932 decodes to something that is not text: 0x80 -> U+0080, 0xA0/0xFD/0xFE/0xFF -> PUA.
_CP932_NON_TEXT = frozenset({0x80, 0xA0, 0xFD, 0xFE, 0xFF})


def _is_cp932_lead(byte: int) -> bool:
    return 0x81 <= byte <= 0x9F or 0xE0 <= byte <= 0xFC


def _line_of(data: bytes, offset: int, encoding: str | None = None) -> int:
    """Line of byte ``offset``: 0x0A bytes for ASCII-compatible text, decoded newlines otherwise."""
    if encoding is None:
        return data.count(b"\n", 0, offset) + 1
    return data[:offset].decode(encoding, errors="replace").count("\n") + 1


def _reject(source: str, data: bytes, offset: int, message: str, encoding: str | None = None) -> InventoryError:
    where = f"{source}:{_line_of(data, offset, encoding)}"
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
        name = codecs.lookup(encoding).name
        if name == UTF8_BOM and data.startswith(codecs.BOM_UTF8):
            text = _decode_strict(data, len(codecs.BOM_UTF8), UTF8, source, encoding)
        else:
            text = _decode_strict(data, 0, encoding, source, encoding)
    except LookupError:
        raise InventoryError(
            [Problem(source, "encoding", f"unknown text encoding {encoding!r}; use utf-8, utf-8-sig or cp932")],
            source=source,
        ) from None
    if name == CP932:
        _check_cp932_is_text(data, source)
    return text.removeprefix("\ufeff")


def _decode_strict(data: bytes, start: int, codec: str, source: str, encoding: str) -> str:
    """``data[start:]`` decoded with ``codec``; a failure names its offset in the whole file."""
    try:
        return data[start:].decode(codec)
    except UnicodeDecodeError as err:
        offset = start + err.start
        raise _reject(source, data, offset, f"not valid {encoding}: byte 0x{data[offset]:02x}", codec) from None
    except UnicodeError as err:
        raise InventoryError([Problem(source, "encoding", f"not valid {encoding}: {err}")], source=source) from None


def _decode_cp932_fallback(data: bytes, source: str, utf8_error: UnicodeDecodeError) -> str:
    bad = utf8_error.start
    head = data[:bad]
    if _is_utf8(head):
        if utf8_error.reason == "unexpected end of data" and bad > len(data) - 4:
            raise _reject(source, data, bad, "UTF-8 file cut off inside a multibyte character; "
                          "re-export it, or pass --encoding cp932 if it is CP932")
        if not head.isascii():
            raise _reject(source, data, bad, f"byte 0x{data[bad]:02x} is not UTF-8 like the lines before it: "
                          "the file mixes encodings; re-export it in one encoding, or pass --encoding to force one")
    try:
        text = data.decode(CP932)
    except UnicodeDecodeError as sjis_error:
        raise _reject(
            source,
            data,
            sjis_error.start,
            f"neither UTF-8 (bad byte 0x{data[bad]:02x} at offset {bad}, line {_line_of(data, bad)}) "
            f"nor CP932 (bad byte 0x{data[sjis_error.start]:02x}); re-export the file as UTF-8 or pass --encoding",
        ) from None
    _check_cp932_is_text(data, source)
    _check_not_mixed(data, source, bad)
    return text


def _is_utf8(chunk: bytes) -> bool:
    try:
        chunk.decode(UTF8)
    except UnicodeDecodeError:
        return False
    return True


def _check_cp932_is_text(data: bytes, source: str) -> None:
    """Reject the first byte that stands as a character of its own in CP932 and is no character."""
    i = 0
    while i < len(data):
        b = data[i]
        if b in _CP932_NON_TEXT:
            raise _reject(source, data, i, f"byte 0x{b:02x} is not a character in CP932 text")
        i += 2 if _is_cp932_lead(b) else 1


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
