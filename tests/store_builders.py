"""Stores for the shared store suite: a SQLite file, or a DynamoDB table in moto (in-process).

``stores`` is a fixture that opens stores of one kind on one backing state: call it again for a
second operator's store (a second process), which must see everything the first one wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout.awslocal.server import LocalAws
from rollout.store.api import StateStore

REGION = "ap-northeast-1"
TABLE = "zt-rollout-state"
KINDS = ("sqlite", "dynamodb")

OpenStore = Callable[[], StateStore]


def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto accepts any credentials; these make sure no real ones are ever used."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_SESSION_TOKEN", "testing"), ("AWS_DEFAULT_REGION", REGION), ("AWS_REGION", REGION)):
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def local_aws_server() -> Iterator[LocalAws]:
    """moto on loopback for the whole session (requests one at a time, as AWS makes them atomic)."""
    server = LocalAws().start()
    yield server
    server.stop()


@pytest.fixture
def local_aws(local_aws_server: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAws]:
    """The session's moto, emptied, with this process's AWS SDK pointed at it."""
    local_aws_server.reset()
    fake_aws_credentials(monkeypatch)
    for name, value in local_aws_server.env().items():
        monkeypatch.setenv(name, value)
    yield local_aws_server


@pytest.fixture
def dynamodb_table(local_aws: LocalAws) -> str:
    """A fresh state table in moto's DynamoDB; returns its ``--state`` URL."""
    from rollout.store.factory import init_store

    url = f"dynamodb://{TABLE}?region={REGION}&cache=0"  # every read sees every write at once
    init_store(url)
    return url


def open_kind(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> OpenStore:
    from rollout.store.factory import open_store

    if kind == "sqlite":
        url = f"sqlite:{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("dynamodb_table")
    opened: list[StateStore] = []

    def make() -> StateStore:
        store = open_store(url)
        opened.append(store)
        return store

    request.addfinalizer(lambda: [s.close() for s in opened])
    return make


def snapshot(store: StateStore, rollout_id: str) -> Any:
    """Everything a store holds of a rollout, comparable with ==."""
    dump = store.export_rollout(rollout_id)
    return (dump.status, dump.plan, dump.backend, dump.waves, sorted(dump.devices, key=lambda d: d.device_id),
            dump.approvals, dump.issues, dump.decisions, [(i, s, d) for i, s, _, d in dump.intents], dump.events,
            dump.last_fence, store.lease_row(rollout_id))

