"""``rollout notices WAVE``: one notice per employee of a wave, in Japanese and English, and
optionally sent through Amazon SES.

Who gets one: every user (the inventory's ``user`` e-mail) of a device the state assigns to the
wave, except devices that will not move with it: *held* (an open blocker matches their cohort; they
ride with a later wave once it is resolved), *reverted* (rolled back) and *excluded*. A user with
several such devices gets one notice naming all of them. Each notice holds both languages
(Japanese first, then English) so one e-mail serves everyone; it is written as
``<user>.txt`` and ``<user>.html`` next to ``notices.json`` (schema ``zt-rollout/notices/v1``:
rollout, wave, dates, recipients with their devices and files, skipped devices, and after
``--send`` the SES message id of each notice).

What it says: when the device moves (the wave's ``start``..``end`` migration days from the plan,
and the watch period to ``bake_until``), what changes, what to do if something breaks, and the
help desk's ``helpdesk.contact`` and ``helpdesk.faq_url`` from the rollout policy (``--policy`` or
``ROLLOUT_POLICY``; both keys must be set, and the policy must be the rollout's).

Sending never reaches anyone outside the wave: just before sending, the recipients are computed
again from the state, and if any notice is addressed to someone else nothing is sent. Each notice
goes to its one user (no Cc, no Bcc).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from rollout.core.device import Device
from rollout.core.model import DevicePhase, DeviceState
from rollout.errors import (
    AwsError,
    InputError,
    NotFoundError,
    PolicyError,
    Problem,
    RolloutError,
)
from rollout.files import write_bytes_atomic
from rollout.plan.policy import load_policy
from rollout.store.api import StateStore
from rollout.templating import render, render_html

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

NOTICES_SCHEMA = "zt-rollout/notices/v1"
SKIPPED = frozenset({DevicePhase.HELD, DevicePhase.REVERTED, DevicePhase.EXCLUDED})
JA_WEEKDAYS = "月火水木金土日"


@dataclass(frozen=True, slots=True)
class Helpdesk:
    contact: str
    faq_url: str


@dataclass(frozen=True, slots=True)
class NoticeDevice:
    device_id: str
    hostname: str
    model: str
    site: str


@dataclass(frozen=True, slots=True)
class Notice:
    user: str
    name: str
    subject: str
    text: str
    html: str
    devices: tuple[NoticeDevice, ...]
    filename: str  # stem of the .txt and .html files


@dataclass(frozen=True, slots=True)
class NoticeBatch:
    rollout: str
    wave: str
    wave_index: int
    start: str
    end: str
    bake_until: str
    notices: tuple[Notice, ...]
    skipped: tuple[tuple[str, str], ...]  # (device id, phase)


def load_helpdesk(policy_path: Path | None, rollout_id: str) -> Helpdesk:
    """The help desk's contact and FAQ link from the rollout policy; every gap is named by key."""
    if policy_path is None:
        raise InputError("notices tell employees whom to call: pass the rollout policy with --policy FILE "
                         "(or ROLLOUT_POLICY); its helpdesk.contact and helpdesk.faq_url are used.")
    policy = load_policy(policy_path)
    problems = [Problem(policy_path.name, f"helpdesk.{key}", f"is empty; notices must carry it: {why}")
                for key, why in (("contact", "set whom employees call (team, extension, e-mail)"),
                                 ("faq_url", "set the FAQ page employees can read"))
                if not getattr(policy.helpdesk, key).strip()]
    if policy.rollout != rollout_id:
        problems.append(Problem(policy_path.name, "rollout", f"{policy.rollout!r} is not the rollout in the state "
                                f"({rollout_id!r}): pass the policy this rollout was planned with"))
    if problems:
        raise PolicyError(problems, source=policy_path.name)
    return Helpdesk(policy.helpdesk.contact.strip(), policy.helpdesk.faq_url.strip())


def wave_recipients(wave_index: int, devices: Mapping[str, DeviceState]) -> tuple[list[str], list[tuple[str, str]]]:
    """(devices of the wave that get a notice, (device, phase) of those skipped), both sorted."""
    mine = sorted((d for d in devices.values() if d.wave == wave_index), key=lambda d: d.device_id)
    return ([d.device_id for d in mine if d.phase not in SKIPPED],
            [(d.device_id, d.phase.value) for d in mine if d.phase in SKIPPED])


def date_ja(iso: str) -> str:
    """'2027-03-09' -> '2027年3月9日（火）'."""
    d = dt.date.fromisoformat(iso)
    return f"{d.year}年{d.month}月{d.day}日（{JA_WEEKDAYS[d.weekday()]}）"


def date_en(iso: str) -> str:
    """'2027-03-09' -> 'Tuesday 9 March 2027'."""
    d = dt.date.fromisoformat(iso)
    return f"{d:%A} {d.day} {d:%B %Y}"


def _filename(user: str, taken: set[str]) -> str:
    stem = re.sub(r"[^a-z0-9._@+-]", "_", user.lower()) or "user"
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    return name


def _display_name(device: Device) -> str:
    return dict(device.attributes).get("owner_name") or device.user.split("@", 1)[0]


def plan_notices(rollout_id: str, wave: Mapping[str, Any], devices: Mapping[str, DeviceState],
                 inventory: Mapping[str, Device], helpdesk: Helpdesk) -> NoticeBatch:
    """The notices of one wave (``wave`` is the plan file's wave object). Pure."""
    notify, skipped = wave_recipients(int(wave["index"]), devices)
    by_user: dict[str, list[Device]] = {}
    for device_id in notify:
        by_user.setdefault(inventory[device_id].user, []).append(inventory[device_id])
    dates = {"start_ja": date_ja(wave["start"]), "end_ja": date_ja(wave["end"]),
             "bake_ja": date_ja(wave["bake_until"]), "start_en": date_en(wave["start"]),
             "end_en": date_en(wave["end"]), "bake_en": date_en(wave["bake_until"]),
             "one_day": wave["start"] == wave["end"]}
    taken: set[str] = set()
    notices = []
    for user in sorted(by_user):
        owned = tuple(NoticeDevice(d.device_id, d.hostname, d.model, d.site) for d in by_user[user])
        name = _display_name(by_user[user][0])
        subject = (f"【ご案内】端末のゼロトラスト移行（{dates['start_ja']}〜）/ "
                   f"Your device moves to zero trust from {dates['start_en']}")
        context = {"person": name, "user": user, "devices": owned, "helpdesk": helpdesk, "d": dates,
                   "subject": subject, "wave": wave["name"], "rollout": rollout_id}
        notices.append(Notice(user, name, subject, render("notices/notice.txt.j2", **context),
                              render_html("notices/notice.html.j2", **context), owned, _filename(user, taken)))
    return NoticeBatch(rollout_id, wave["name"], int(wave["index"]), wave["start"], wave["end"],
                       wave["bake_until"], tuple(notices), tuple(skipped))


def _plan_wave(plan: Mapping[str, Any], wave_name: str, rollout_id: str) -> Mapping[str, Any]:
    for wave in plan["waves"]:
        if wave["name"] == wave_name:
            return dict(wave)
    names = ", ".join(w["name"] for w in plan["waves"])
    raise NotFoundError(f"rollout {rollout_id} has no wave {wave_name!r} (its waves: {names}); "
                        "name one of those.")


def make_notices(store: StateStore, rollout_id: str, wave_name: str, policy_path: Path | None) -> NoticeBatch:
    """Read the wave's plan dates, devices and inventory, and the policy's help desk; build the notices."""
    plan = store.plan_json(rollout_id)
    wave = _plan_wave(plan, wave_name, rollout_id)
    helpdesk = load_helpdesk(policy_path, rollout_id)
    devices = store.devices(rollout_id)
    notify, _ = wave_recipients(int(wave["index"]), devices)
    return plan_notices(rollout_id, wave, devices, store.inventory(rollout_id, notify), helpdesk)


def manifest(batch: NoticeBatch, sent: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    return {
        "schema": NOTICES_SCHEMA, "rollout": batch.rollout, "wave": batch.wave,
        "start": batch.start, "end": batch.end, "bake_until": batch.bake_until,
        "recipients": [{"user": n.user, "name": n.name, "subject": n.subject,
                        "devices": [d.device_id for d in n.devices],
                        "text": f"{n.filename}.txt", "html": f"{n.filename}.html"} for n in batch.notices],
        "skipped": [{"device_id": d, "phase": p} for d, p in batch.skipped],
        "sent": [{"user": u, "message_id": m} for u, m in sent],
    }


def previously_sent(out_dir: Path, batch: NoticeBatch) -> list[tuple[str, str]]:
    """(user, message id) already sent for this rollout and wave, from ``out_dir/notices.json``."""
    try:
        data = json.loads((out_dir / "notices.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or (data.get("schema"), data.get("rollout"), data.get("wave")) != (
            NOTICES_SCHEMA, batch.rollout, batch.wave):
        return []
    return [(str(s["user"]), str(s["message_id"])) for s in data.get("sent", [])]


def write_manifest(batch: NoticeBatch, out_dir: Path, sent: Sequence[tuple[str, str]]) -> Path:
    path = out_dir / "notices.json"
    text = json.dumps(manifest(batch, sent), ensure_ascii=False, indent=1) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))
    return path


def write_notices(batch: NoticeBatch, out_dir: Path) -> Path:
    """Write each notice as .txt and .html and the manifest ``notices.json`` (keeping the record of
    notices already sent for this wave); returns the manifest's path."""
    sent = previously_sent(out_dir, batch)
    for n in batch.notices:
        write_bytes_atomic(out_dir / f"{n.filename}.txt", n.text.encode("utf-8"))
        write_bytes_atomic(out_dir / f"{n.filename}.html", n.html.encode("utf-8"))
    return write_manifest(batch, out_dir, sent)


def check_recipients(store: StateStore, batch: NoticeBatch) -> None:
    """Refuse the batch if any notice is addressed to someone who has no moving device in the wave."""
    notify, _ = wave_recipients(batch.wave_index, store.devices(batch.rollout))
    allowed = {d.user for d in store.inventory(batch.rollout, notify).values()}
    outside = sorted({n.user for n in batch.notices} - allowed)
    if outside:
        raise RolloutError(f"refusing to send: {len(outside)} notice(s) of wave {batch.wave} are addressed to "
                           f"people outside the wave ({', '.join(outside[:5])}); nothing was sent. "
                           "Render the notices again with `rollout notices`.")


@dataclass(frozen=True, slots=True)
class Delivery:
    sent_now: int
    sent_before: int  # already sent by an earlier --send into the same folder: not sent again
    manifest: Path


def deliver(store: StateStore, batch: NoticeBatch, out_dir: Path, sender: str,
            client: SESV2Client | None = None) -> Delivery:
    """Write the notices, then send through SES v2 those not sent yet, each to its one user.

    Every message id is recorded in ``notices.json`` as it goes, also when a send fails, so
    sending again into the same folder sends only the rest.
    """
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", sender):
        raise InputError(f"--from {sender!r} is not an e-mail address; pass the SES identity notices come from.")
    check_recipients(store, batch)
    path = write_notices(batch, out_dir)
    before = previously_sent(out_dir, batch)
    done = {u for u, _ in before}
    sent = list(before)
    try:
        ses = client if client is not None else _ses_client()
        for n in batch.notices:
            if n.user not in done:
                sent.append((n.user, _send_one(ses, sender, n, len(sent) - len(before), len(batch.notices))))
    finally:
        write_manifest(batch, out_dir, sent)
    return Delivery(len(sent) - len(before), len(before), path)


def _send_one(ses: SESV2Client, sender: str, n: Notice, done: int, total: int) -> str:
    try:
        reply = ses.send_email(
            FromEmailAddress=sender, Destination={"ToAddresses": [n.user]},
            Content={"Simple": {"Subject": {"Data": n.subject, "Charset": "UTF-8"},
                                "Body": {"Text": {"Data": n.text, "Charset": "UTF-8"},
                                         "Html": {"Data": n.html, "Charset": "UTF-8"}}}})
    except ClientError as err:
        error = err.response.get("Error", {})
        raise AwsError(f"Amazon SES refused the notice to {n.user}: {error.get('Code', 'error')}: "
                       f"{error.get('Message', '')}. {done} of {total} were sent by this run (recorded in "
                       "notices.json); fix the cause (e.g. verify the --from identity) and send again: "
                       "only the rest go out.", code=str(error.get("Code", "")), action="ses:SendEmail") from err
    except BotoCoreError as err:
        raise AwsError(f"could not send the notice to {n.user}: {err}. {done} of {total} were sent by this "
                       "run (recorded in notices.json); check AWS_REGION and credentials and send again.",
                       action="ses:SendEmail") from err
    return str(reply["MessageId"])


def _ses_client() -> SESV2Client:
    """SES v2 from the usual AWS settings; adaptive retries pace the sends under SES's rate limit."""
    try:
        return boto3.client("sesv2", config=Config(retries={"mode": "adaptive", "max_attempts": 10}))
    except BotoCoreError as err:
        raise InputError(f"cannot reach Amazon SES: {err}; set AWS_REGION (and credentials) and send again.") from err
