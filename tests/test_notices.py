"""Wave notices: who gets one, what it says (against the plan, inventory and policy), the files,
bad input, and sending through Amazon SES under moto, never to anyone outside the wave."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from click.testing import CliRunner
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from rollout.cli.main import cli
from rollout.core.model import DevicePhase, DeviceState
from rollout.errors import RolloutError
from rollout.reports.notices import (
    Helpdesk,
    date_en,
    date_ja,
    deliver,
    make_notices,
    plan_notices,
    wave_recipients,
)
from rollout.store.sqlite import SqliteStore
from tests.report_builders import Rehearsed, rehearsed, write_yaml

__all__ = ["rehearsed"]  # the session fixture, imported for pytest

REGION = "ap-northeast-1"
SENDER = "zt-rollout@example.co.jp"
T = dt.datetime(2027, 1, 12, tzinfo=dt.UTC)


def dev(device_id: str, wave: int, phase: DevicePhase) -> DeviceState:
    return DeviceState(device_id, wave, phase, T)


RECIPIENT_CASES = [
    ("pending, migrating, migrated, verified, deferred, failed get one",
     [dev(f"D{i}", 2, p) for i, p in enumerate((DevicePhase.PENDING, DevicePhase.MIGRATING, DevicePhase.MIGRATED,
                                                DevicePhase.VERIFIED, DevicePhase.DEFERRED, DevicePhase.FAILED))],
     ["D0", "D1", "D2", "D3", "D4", "D5"], []),
    ("held, reverted and excluded do not move with the wave",
     [dev("D1", 2, DevicePhase.HELD), dev("D2", 2, DevicePhase.REVERTED), dev("D3", 2, DevicePhase.EXCLUDED),
      dev("D4", 2, DevicePhase.PENDING)],
     ["D4"], [("D1", "held"), ("D2", "reverted"), ("D3", "excluded")]),
    ("other waves are never included", [dev("D1", 1, DevicePhase.PENDING), dev("D2", 3, DevicePhase.PENDING)], [], []),
]


@pytest.mark.parametrize(("case", "devices", "notify", "skipped"), RECIPIENT_CASES, ids=[c[0] for c in RECIPIENT_CASES])
def test_wave_recipients(case: str, devices: list[DeviceState], notify: list[str],
                         skipped: list[tuple[str, str]]) -> None:
    assert wave_recipients(2, {d.device_id: d for d in devices}) == (notify, skipped)


def test_dates_in_both_languages() -> None:
    assert date_ja("2027-03-09") == "2027年3月9日（火）"
    assert date_en("2027-03-09") == "Tuesday 9 March 2027"


def store_of(r: Rehearsed) -> tuple[SqliteStore, str]:
    store = SqliteStore(r.state)
    return store, store.rollout_ids()[0]


def wave_users(store: SqliteStore, rid: str, wave: str) -> tuple[set[str], set[str]]:
    """(users with a moving device in ``wave``, users with devices only in other waves)."""
    index = next(w.index for w in store.waves(rid) if w.name == wave)
    notify, _ = wave_recipients(index, store.devices(rid))
    inventory = store.inventory(rid)
    inside = {inventory[d].user for d in notify}
    return inside, {d.user for d in inventory.values()} - inside


def test_notices_say_what_the_plan_inventory_and_policy_say(rehearsed: Rehearsed) -> None:
    store, rid = store_of(rehearsed)
    batch = make_notices(store, rid, "final", rehearsed.files.policy)
    plan_wave = next(w for w in store.plan_json(rid)["waves"] if w["name"] == "final")
    policy = yaml.safe_load(rehearsed.files.policy.read_text(encoding="utf-8"))
    devices, inventory = store.devices(rid), store.inventory(rid)
    inside, _ = wave_users(store, rid, "final")
    assert {n.user for n in batch.notices} == inside and len(batch.notices) == len(inside)
    assert batch.skipped == tuple(sorted((d, s.phase.value) for d, s in devices.items()
                                         if s.wave == plan_wave["index"] and s.phase == DevicePhase.HELD))
    assert batch.skipped, "the rehearsal holds the dynabook cohort: some final-wave devices are skipped"
    assert (batch.start, batch.end) == (plan_wave["start"], plan_wave["end"])
    for n in batch.notices:
        assert {d.device_id for d in n.devices} == {d for d, s in devices.items() if s.wave == plan_wave["index"]
                                                    and inventory[d].user == n.user and s.phase != DevicePhase.HELD}
        for text in (n.text, n.html):
            for fact in (date_ja(plan_wave["start"]), date_en(plan_wave["start"]), date_ja(plan_wave["bake_until"]),
                         policy["helpdesk"]["faq_url"], *(d.hostname for d in n.devices)):
                assert fact in text
            assert n.name in text and "ヘルプデスク" in text and "Help desk" in text
        assert policy["helpdesk"]["contact"] in n.text
        assert f'<a href="{policy["helpdesk"]["faq_url"]}">' in n.html
        assert n.text.index("様") < n.text.index("Dear"), "Japanese first, then English"


def test_policy_text_is_escaped_in_the_html(rehearsed: Rehearsed) -> None:
    store, rid = store_of(rehearsed)
    odd = Helpdesk("<b>desk</b> & co", "https://intranet.example.co.jp/faq?a=1&b=2")
    wave = next(w for w in store.plan_json(rid)["waves"] if w["name"] == "final")
    notice = plan_notices(rid, wave, store.devices(rid), store.inventory(rid), odd).notices[0]
    assert "&lt;b&gt;desk&lt;/b&gt; &amp; co" in notice.html and "<b>desk</b>" not in notice.html
    assert 'href="https://intranet.example.co.jp/faq?a=1&amp;b=2"' in notice.html
    assert "<b>desk</b> & co" in notice.text


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def test_cli_writes_one_notice_per_user(rehearsed: Rehearsed, tmp_path: Path) -> None:
    store, rid = store_of(rehearsed)
    out = tmp_path / "notices"
    result = run("notices", "final", "--state", str(rehearsed.state), "--out", str(out), "--policy",
                 str(rehearsed.files.policy))
    batch = make_notices(store, rid, "final", rehearsed.files.policy)
    n_dev = sum(len(n.devices) for n in batch.notices)
    assert result.exit_code == 0, result.output
    assert result.output == (f"Wrote {len(batch.notices):,} notices for wave final ({n_dev:,} devices) to {out}; "
                             f"{len(batch.skipped):,} of its devices do not move with it (held, rolled back or "
                             f"excluded) and get none; see {out / 'notices.json'}.\n")
    manifest = json.loads((out / "notices.json").read_text(encoding="utf-8"))
    assert manifest["schema"] == "zt-rollout/notices/v1" and manifest["wave"] == "final" and manifest["sent"] == []
    assert [r["user"] for r in manifest["recipients"]] == [n.user for n in batch.notices]
    for r, n in zip(manifest["recipients"], batch.notices):
        assert (out / r["text"]).read_text(encoding="utf-8") == n.text
        assert (out / r["html"]).read_text(encoding="utf-8") == n.html
    assert len(list(out.iterdir())) == 2 * len(batch.notices) + 1


def test_bad_input_names_the_file_and_field(rehearsed: Rehearsed, tmp_path: Path) -> None:
    state, out = str(rehearsed.state), str(tmp_path / "out")
    unknown = run("notices", "wave-9", "--state", state, "--out", out, "--policy", str(rehearsed.files.policy))
    assert unknown.exit_code == 1
    assert unknown.output == ("error: rollout zt-2027 has no wave 'wave-9' (its waves: canary, wave-1, wave-2, "
                              "wave-3, final); name one of those.\n")
    missing = run("notices", "final", "--state", state, "--out", out, env={"ROLLOUT_POLICY": ""})
    assert missing.exit_code == 2
    assert missing.output == ("error: notices tell employees whom to call: pass the rollout policy with --policy "
                              "FILE (or ROLLOUT_POLICY); its helpdesk.contact and helpdesk.faq_url are used.\n")
    data = yaml.safe_load(rehearsed.files.policy.read_text(encoding="utf-8"))
    data["helpdesk"]["contact"] = ""
    data["rollout"] = "zt-other"
    bad = write_yaml(tmp_path / "policy.yaml", data)
    empty = run("notices", "final", "--state", state, "--out", out, "--policy", str(bad))
    assert empty.exit_code == 2
    assert empty.output == (
        "error: 2 problems in policy policy.yaml:\n"
        "  policy.yaml: helpdesk.contact: is empty; notices must carry it: set whom employees call (team, "
        "extension, e-mail)\n"
        "  policy.yaml: rollout: 'zt-other' is not the rollout in the state ('zt-2027'): pass the policy this "
        "rollout was planned with\n"
        "Fix the lines above and run the command again; nothing was written.\n")
    no_from = run("notices", "final", "--state", state, "--out", out, "--send")
    assert no_from.exit_code == 2 and "--send needs --from ADDRESS" in no_from.output
    assert not (tmp_path / "out").exists()


@pytest.fixture
def own(rehearsed: Rehearsed, tmp_path: Path) -> Rehearsed:
    """The rehearsal with a state of this test's own: sending records each notice in the state."""
    copy = tmp_path / "own-state.db"
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
        client = boto3.client("sesv2", region_name=REGION)
        client.create_email_identity(EmailIdentity=SENDER)
        yield ses_backends[DEFAULT_ACCOUNT_ID][REGION]


def test_send_reaches_exactly_the_wave(own: Rehearsed, tmp_path: Path, ses: Any) -> None:
    rehearsed = own
    store, rid = store_of(rehearsed)
    inside, outside = wave_users(store, rid, "final")
    out = tmp_path / "sent"
    result = run("notices", "final", "--state", str(rehearsed.state), "--out", str(out), "--policy",
                 str(rehearsed.files.policy), "--send", "--from", SENDER)
    assert result.exit_code == 0, result.output
    n = len(inside)
    assert result.output.startswith(f"Sent {n:,} notices for wave final (")
    assert f"from {SENDER} through Amazon SES; " in result.output
    destinations = [m.destinations for m in ses.sent_messages]
    assert all(set(d) == {"ToAddresses"} and len(d["ToAddresses"]) == 1 for d in destinations), "no Cc, no Bcc"
    sent_to = [d["ToAddresses"][0] for d in destinations]
    assert sorted(sent_to) == sorted(inside) and not set(sent_to) & outside
    assert all(m.source == SENDER and "ゼロトラスト" in m.subject and "zero trust" in m.subject
               for m in ses.sent_messages)
    manifest = json.loads((out / "notices.json").read_text(encoding="utf-8"))
    assert [s["user"] for s in manifest["sent"]] == sorted(inside)
    assert all(s["message_id"] for s in manifest["sent"])

    again = run("notices", "final", "--state", str(rehearsed.state), "--out", str(out), "--policy",
                str(rehearsed.files.policy), "--send", "--from", SENDER)
    assert again.exit_code == 0
    assert again.output.startswith("Sent 0 notices for wave final (")
    assert f"through Amazon SES ({n:,} sent earlier, not again)" in again.output
    assert len(ses.sent_messages) == n


def test_a_notice_addressed_outside_the_wave_stops_everything(rehearsed: Rehearsed, tmp_path: Path,
                                                              ses: Any) -> None:
    store, rid = store_of(rehearsed)
    batch = make_notices(store, rid, "final", rehearsed.files.policy)
    _, outside = wave_users(store, rid, "final")
    stranger = sorted(outside)[0]
    forged = dataclasses.replace(batch, notices=(dataclasses.replace(batch.notices[0], user=stranger),
                                                 *batch.notices[1:]))
    with pytest.raises(RolloutError, match=f"refusing to send: 1 notice.*{stranger}.*nothing was sent"):
        deliver(store, forged, tmp_path / "x", SENDER)
    assert ses.sent_messages == []
    assert not (tmp_path / "x").exists()


def test_ses_refusal_is_reported_and_recorded(own: Rehearsed, tmp_path: Path, ses: Any) -> None:
    rehearsed = own
    out = tmp_path / "refused"
    result = run("notices", "final", "--state", str(rehearsed.state), "--out", str(out), "--policy",
                 str(rehearsed.files.policy), "--send", "--from", "someone-else@example.co.jp")
    assert result.exit_code == 1
    assert result.output.startswith("error: Amazon SES refused the notice to ")
    assert "MessageRejected: Email address not verified someone-else@example.co.jp. 0 of " in result.output
    assert result.output.endswith("send again: only the rest go out.\n")
    assert json.loads((out / "notices.json").read_text(encoding="utf-8"))["sent"] == []
    assert ses.sent_messages == []
