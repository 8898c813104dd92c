"""Each employee gets one notice per wave: whatever folder it is rendered to, however often it is
sent, and however the inventory spells the address; a bad address stops the wave before anything is
written. SES is moto's."""

from __future__ import annotations

import dataclasses
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from rollout.cli.main import cli
from rollout.drive.operations import start_rollout
from rollout.reports.notices import wave_recipients
from rollout.store.api import SentNotice
from rollout.store.notice_records import recipient_key
from rollout.store.sqlite import SqliteStore
from tests.report_builders import Rehearsed, rehearsed
from tests.rollout_builders import T0, small_rollout
from tests.store_builders import KINDS, OpenStore, dynamodb_table, local_aws, local_aws_server, open_kind

__all__ = ["dynamodb_table", "local_aws", "local_aws_server", "rehearsed"]  # fixtures, imported for pytest

REGION = "ap-northeast-1"
SENDER = "zt-rollout@example.co.jp"


@pytest.fixture
def own(rehearsed: Rehearsed, tmp_path: Path) -> Rehearsed:
    copy = tmp_path / "state.db"
    source, target = sqlite3.connect(rehearsed.state), sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return dataclasses.replace(rehearsed, state=copy)


@pytest.fixture
def ses(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION), ("AWS_REGION", REGION)):
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity=SENDER)
        yield ses_backends[DEFAULT_ACCOUNT_ID][REGION]


def notices(r: Rehearsed, wave: str, out: Path, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["notices", wave, "--state", str(r.state), "--out", str(out), "--policy",
                                    str(r.files.policy), *extra])


def set_user(r: Rehearsed, device_id: str, user: str) -> None:
    db = sqlite3.connect(r.state)
    with db:
        db.execute("UPDATE devices SET attrs=json_set(attrs, '$.user', ?) WHERE device_id=?", (user, device_id))
    db.close()


def moving(r: Rehearsed, wave: str) -> list[str]:
    store = SqliteStore(r.state)
    rid = store.rollout_ids()[0]
    index = next(w.index for w in store.waves(rid) if w.name == wave)
    ids, _ = wave_recipients(index, store.devices(rid))
    store.close()
    return ids


def test_no_one_gets_a_notice_twice_across_folders_and_waves(own: Rehearsed, tmp_path: Path, ses: Any) -> None:
    first, second = moving(own, "final")[:2]
    store = SqliteStore(own.state)
    user = store.inventory(store.rollout_ids()[0], [first])[first].user
    store.close()
    set_user(own, second, user.upper())  # one person, spelt twice
    folder = tmp_path / "notices"
    sent = notices(own, "final", folder, "--send", "--from", SENDER)
    assert sent.exit_code == 0, sent.output
    to = [m.destinations["ToAddresses"][0].casefold() for m in ses.sent_messages]
    assert len(to) == len(set(to)), "each person once"
    assert to.count(user.casefold()) == 1
    assert stat.S_IMODE((folder / "notices.json").stat().st_mode) == 0o600
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    count = len(ses.sent_messages)
    other = notices(own, "wave-1", folder)  # another wave into the same folder: refused, it is not final's
    assert other.exit_code == 2 and "pass --force" in other.output
    assert notices(own, "wave-1", folder, "--force").exit_code == 0
    for again, force in ((folder, ("--force",)), (tmp_path / "elsewhere", ())):
        result = notices(own, "final", again, "--send", "--from", SENDER, *force)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Sent 0 notices for wave final (")
        assert f"({count:,} sent earlier, not again)" in result.output
    assert len(ses.sent_messages) == count


def test_a_bad_address_stops_the_wave_before_anything_is_written(own: Rehearsed, tmp_path: Path) -> None:
    device = moving(own, "final")[5]
    set_user(own, device, "r" * 300 + "@example.co.jp")
    out = tmp_path / "notices"
    result = notices(own, "final", out)
    assert result.exit_code == 2
    assert f"device {device}: user: " in result.output
    assert "is 314 characters long; an e-mail address has at most 254" in result.output
    assert not out.exists()


@pytest.fixture(params=KINDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> OpenStore:
    return open_kind(request.param, tmp_path, request)


def test_the_record_of_a_notice_is_kept_once_by_either_store(stores: OpenStore) -> None:
    store = stores()
    plan, inventory = small_rollout(60)
    start_rollout(store, plan["rollout"], plan, inventory, "rehearsal-starter", True, T0)
    rid = str(plan["rollout"])
    key = recipient_key("Rehearsal.Person@Example.co.jp")
    assert key == recipient_key("ｒｅｈｅａｒｓａｌ.person@example.co.jp"), "NFKC folds full-width letters"
    first = SentNotice("wave-1", "v1", key, "Rehearsal.Person@Example.co.jp", "msg-1", T0.isoformat())
    store.record_notice_sent(rid, first)
    store.record_notice_sent(rid, dataclasses.replace(first, message_id="msg-2"))
    other = stores()  # a second operator, another process
    assert other.notices_sent(rid, "wave-1", "v1") == {key: first}, "the first record stays"
    assert other.notices_sent(rid, "wave-1", "v2") == {} and other.notices_sent(rid, "wave-2", "v1") == {}
