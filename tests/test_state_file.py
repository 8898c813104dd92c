"""A state file that is missing, not SQLite, damaged, read-only or on a full disk, met through the CLI.

Each case runs the real ``rollout`` process and expects exit 2 with a message that names the file
and what to do, and the file byte for byte as it was (a read command creates nothing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rollout_builders import ROOT, cli_env, fresh_store, rollout_cmd, run_rollout

READ_COMMANDS = [("status",), ("triage", "list"), ("report", "--format", "markdown"), ("audit", "verify")]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A real state file with one started rollout and a few events, checkpointed into the main file."""
    path = tmp_path / "state.db"
    store, _ = fresh_store(path, n=120)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_a_mistyped_state_path_is_an_error_and_creates_nothing(tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = tmp_path / "stat.db"
    done = run_rollout(*command, "--state", f"sqlite:{missing}")
    assert done.returncode == 2, done.stderr
    assert f"{missing}: no such state file (nothing was created)" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_sqlite_is_named_and_left_alone(tmp_path: Path) -> None:
    junk = tmp_path / "state.db"
    junk.write_bytes(os.urandom(8192))
    before = snapshot(tmp_path)
    done = run_rollout("status", "--state", f"sqlite:{junk}")
    assert done.returncode == 2, done.stderr
    assert "it is not a SQLite state file" in done.stderr and "Traceback" not in done.stderr
    assert snapshot(tmp_path) == before


def test_a_truncated_state_file_is_refused(state: Path) -> None:
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 3])
    before = snapshot(state.parent)
    for command in (("status",), ("approve", "canary", "--role", "pm", "--as", "pm-1")):
        done = run_rollout(*command, "--state", f"sqlite:{state}")
        assert done.returncode == 2, done.stderr
        assert str(state) in done.stderr and "Traceback" not in done.stderr
    assert snapshot(state.parent) == before


def test_a_damaged_page_is_found_at_open_and_by_audit_verify(state: Path) -> None:
    data = bytearray(state.read_bytes())
    assert len(data) > 12 * 4096
    data[8 * 4096: 9 * 4096] = os.urandom(4096)  # 4 KB overwritten in the middle of the file
    state.write_bytes(bytes(data))
    before = snapshot(state.parent)
    approve = run_rollout("approve", "canary", "--role", "pm", "--as", "pm-1", "--state", f"sqlite:{state}")
    assert approve.returncode == 2, approve.stderr
    assert "damaged" in approve.stderr and "nothing was read or written" in approve.stderr
    verify = run_rollout("audit", "verify", "--state", f"sqlite:{state}")
    assert verify.returncode == 2 and "damaged" in verify.stderr
    assert "verified" not in verify.stdout
    assert snapshot(state.parent) == before


def test_a_read_only_state_file_is_refused_before_anything_runs(state: Path, tmp_path: Path) -> None:
    """Read-only as an operator meets it: a read-only mount (root ignores file modes, not a read-only
    filesystem), or the file and folder without write permission for a normal user."""
    view = state.parent
    mounted = None
    if os.geteuid() == 0:
        mounted = tmp_path / "read-only"
        mounted.mkdir()
        binds = [["mount", "--bind", str(state.parent), str(mounted)],
                 ["mount", "-o", "remount,ro,bind", str(mounted)]]
        if any(subprocess.run(c, capture_output=True, check=False).returncode for c in binds):
            subprocess.run(["umount", "-l", str(mounted)], capture_output=True, check=False)
            pytest.skip("cannot make a read-only bind mount here")
        view = mounted
    else:
        state.chmod(0o444)
        state.parent.chmod(0o555)
    try:
        before = snapshot(state.parent)
        done = run_rollout("status", "--state", f"sqlite:{view / state.name}")
        assert done.returncode == 2, done.stderr
        assert "read-only for this user" in done.stderr
        assert snapshot(state.parent) == before
    finally:
        if mounted is not None:
            subprocess.run(["umount", "-l", str(mounted)], capture_output=True, check=False)
        else:
            state.parent.chmod(0o755)
            state.chmod(0o600)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("a full disk is made with a small tmpfs, which needs root and mount")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_said_in_words_and_loses_nothing(state: Path, small_disk: Path) -> None:
    from rollout.store.sqlite import SqliteStore

    target = small_disk / "state.db"
    shutil.copy(state, target)
    store = SqliteStore(target)
    rid = store.rollout_ids()[0]
    events = store.audit_head(rid)
    store.close()
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(0, shutil.disk_usage(small_disk).free - 8192))
    many = "x" * 20_000
    done = run_rollout("triage", "add", "--title", many, "--selector", "model=none", "--severity", "minor",
                       "--as", "pm-1", "--state", f"sqlite:{target}")
    assert done.returncode == 2, done.stderr
    assert "the disk is full" in done.stderr or "the disk failed" in done.stderr
    assert "Traceback" not in done.stderr
    filler.unlink()
    store = SqliteStore(target)
    assert store.audit_head(rid) == events and store.verify_audit(rid).ok
    store.close()


def test_a_new_state_file_and_its_journal_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store, _ = fresh_store(path, n=60)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    store.close()
    assert modes == {"state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}


def test_a_simulators_world_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    from rollout.backends.simulator import Scenario, Simulator

    world = tmp_path / "state.db.world.db"
    Simulator(world, Scenario.model_validate({"seed": 1})).db.close()
    assert world.stat().st_mode & 0o777 == 0o600
