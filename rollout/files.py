"""Every file zt-rollout writes goes through here: atomic, private, and never over what it must not touch.

Atomic: a temporary file in the target's folder, fsynced, then renamed over the target (or linked to
it, when the target must not exist yet), so a run that fails or is killed part-way leaves the
previous file (or none), never half a file.

``write_output`` is the one path behind every ``--out``. It refuses (``OutputError``, exit 2, nothing
written) to write

- over a folder, a device (``/dev/null``), a pipe, a socket or any other non-regular file;
- over an SQLite database (a state store, whichever command it is given to), even with ``--force``;
- over any input of the same command (``inputs``: the state file, the inventory, the policy, the
  plans compared), also through a symlink or a hard link;
- over an existing file, unless ``force`` (the command's ``--force``).

What it writes is created 0600 (owner only): reports, notices, plans and inventories name
employees and their devices.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rollout.errors import OutputError

PRIVATE = 0o600
SQLITE_HEADER = b"SQLite format 3\x00"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | Path, data: bytes, *, mode: int | None = None, replace: bool = True) -> None:
    """Write ``data`` to ``path`` atomically.

    ``mode`` is the new file's permission bits (default: what a plain ``open()`` would give). With
    ``replace=False`` an existing ``path`` is left alone and ``FileExistsError`` raised: the file is
    hard-linked into place, which fails when the name is taken, even by a file created a moment ago.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, (0o666 & ~_umask()) if mode is None else mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _link_new(tmp: str, path: Path) -> None:
    """Give ``tmp`` the name ``path`` only if no file has it; on a filesystem without hard links, claim
    the name with an exclusive create first, then rename over that empty claim."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise
    except OSError:
        pass
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Pretty UTF-8 JSON (non-ASCII kept as is), written atomically."""
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def check_output(path: str | Path, *, inputs: Iterable[str | Path] = (), force: bool = False,
                 option: str = "--out") -> Path:
    """Raise ``OutputError`` if ``path`` must not be written (see the module's rules); return it as a Path."""
    path = Path(path)
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise OutputError(f"{option} {path}: cannot be checked ({err.strerror}); "
                          "choose a path in a folder you can write to.") from err
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{option} {path}: is a folder; name a file in it instead. Nothing was written.")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{option} {path}: is not a regular file (a device, pipe or socket), and zt-rollout "
                          "never replaces one; name a regular file instead. Nothing was written.")
    for source in inputs:
        if _same_file(path, Path(source)):
            raise OutputError(f"{option} {path}: is an input of this command ({source}); writing there would "
                              "destroy it. Name another file. Nothing was written.")
    if st is not None and _is_sqlite(path):
        raise OutputError(f"{option} {path}: is an SQLite database (a state store?), which zt-rollout never "
                          "overwrites, not even with --force; name another file. Nothing was written.")
    if st is not None and not force:
        raise OutputError(f"{option} {path}: exists; pass --force to replace it, or name another file. "
                          "Nothing was written.")
    return path


def write_output(path: str | Path, data: bytes, *, inputs: Iterable[str | Path] = (), force: bool = False,
                 option: str = "--out") -> Path:
    """Check ``path`` (``check_output``), then write ``data`` there atomically, mode 0600."""
    target = check_output(path, inputs=inputs, force=force, option=option)
    try:
        write_bytes_atomic(target, data, mode=PRIVATE, replace=force)
    except FileExistsError:
        raise OutputError(f"{option} {target}: was created by someone else while this command ran; pass --force "
                          "to replace it, or name another file. Nothing was written.") from None
    return target


def state_files(state: str) -> tuple[Path, ...]:
    """The files of a ``--state`` location that no output may replace: an SQLite file and its journals."""
    if not state.startswith("sqlite:"):
        return ()
    db = Path(state.removeprefix("sqlite:"))
    return (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal"))


def create_private(path: str | Path) -> None:
    """Create ``path`` empty and readable by its owner only (PRIVATE), unless it exists: for SQLite
    files that hold employees' names (the state, a simulator's world), whose journals take its mode."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE))
