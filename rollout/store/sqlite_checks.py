"""What can be wrong with a SQLite state file, said in words: missing, read-only, not SQLite, damaged, full.

``check_writable(path)`` refuses a file (or, for a new file, a folder) the process cannot write:
SQLite would open it, then fail at the first write, or (in WAL mode) at the first read. Around
every open and write transaction, ``sqlite_errors(path, doing)`` turns SQLite's own messages
("file is not a database", "database disk image is malformed", "database or disk is full",
"attempt to write a readonly database") into a ``StateFileError`` that names the file and the next
step; a failed write transaction has rolled back, so nothing was half-written.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rollout.errors import StateFileError

_HINTS = (
    ("not a database", "it is not a SQLite state file (another file, or damaged at its start)"),
    ("malformed", "it is damaged"),
    ("disk is full", "the disk is full"),
    ("readonly", "it is read-only"),
    ("unable to open", "it cannot be opened"),
    ("disk i/o error", "the disk failed to read or write it"),
)
_NEXT = {
    "the disk is full": "free space on that disk and run the command again",
    "it is read-only": "give this user write access to the file and its folder (WAL mode writes beside it)",
}


def check_writable(path: Path) -> None:
    target = path if path.exists() else path.parent
    if not os.access(target, os.W_OK) or (path.exists() and not os.access(path.parent, os.W_OK)):
        raise StateFileError(f"{path}: read-only for this user; SQLite needs to write the file and its folder "
                             "(its WAL journal lives beside it), even to read. Give write access, or copy the "
                             "file somewhere writable and pass that with --state.")


@contextmanager
def sqlite_errors(path: Path, doing: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as err:
        if isinstance(err, sqlite3.IntegrityError) or "locked" in str(err):
            raise
        message = str(err).lower()
        what = next((hint for key, hint in _HINTS if key in message), f"SQLite failed: {err}")
        step = _NEXT.get(what, "restore it from a backup, or copy what still reads with `sqlite3 FILE .recover`")
        done = ("nothing was read or written" if doing == "opening" else
                "nothing was written by this command (the transaction rolled back)")
        raise StateFileError(f"{path}: {doing} the state failed: {what}; {done}. Next: {step}.") from None
