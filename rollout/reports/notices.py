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

Addresses are compared NFKC-normalised and case-folded: ``Taro@Example.com`` and
``taro@example.com`` are one person with one notice. Every address is checked before anything is
written (an e-mail address of at most 254 characters, no control characters); one bad address
refuses the whole wave, naming each device and address.

Files are written through ``rollout.files`` (0600: they hold employees' addresses). The folder may
already hold the notices of the same rollout and wave (they are replaced); any other file of the
same name is replaced only with ``--force``, and never the state or the policy.

Sending is idempotent per (rollout, wave, recipient, template version) across runs and folders:
each notice sent is recorded in the state store (``rollout.store.notice_records``) as soon as SES
accepts it, and a notice recorded there is not sent again. Changing the notice templates changes
the version (a hash of their text), so a corrected notice can be sent.

Sending never reaches anyone outside the wave: just before sending, the recipients are computed
again from the state, and if any notice is addressed to someone else nothing is sent. Each notice
goes to its one user (no Cc, no Bcc).
"""

from __future__ import annotations

import datetime as dt
import hashlib
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
    InventoryError,
    NotFoundError,
    OutputError,
    PolicyError,
    Problem,
    RolloutError,
)
from rollout.files import check_output, write_output
from rollout.plan.policy import load_policy
from rollout.store.api import SentNotice, StateStore
from rollout.store.notice_records import now_iso, recipient_key
from rollout.templating import render, render_html, templates_dir, terminal_safe, url_problem

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

NOTICES_SCHEMA = "zt-rollout/notices/v1"
SKIPPED = frozenset({DevicePhase.HELD, DevicePhase.REVERTED, DevicePhase.EXCLUDED})
JA_WEEKDAYS = "月火水木金土日"
MAX_ADDRESS = 254  # RFC 5321: the longest address a mail server accepts
MAX_STEM = 80  # of a notice's file name, below every filesystem's 255-byte limit with room for suffixes
ADDRESS = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
TEMPLATES = ("notices/notice.txt.j2", "notices/notice.html.j2")


def template_version() -> str:
    """The notices' template version: the first 12 hex digits of SHA-256 over both templates' text."""
    digest = hashlib.sha256()
    for name in TEMPLATES:
        digest.update((templates_dir() / name).read_bytes())
    return digest.hexdigest()[:12]


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
    template_version: str = ""


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
    if policy.helpdesk.faq_url.strip() and url_problem(policy.helpdesk.faq_url):
        problems.append(Problem(policy_path.name, "helpdesk.faq_url",
                                f"{url_problem(policy.helpdesk.faq_url)}; notices link only https: and mailto:"))
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


def address_problem(user: str) -> str:
    """Why ``user`` cannot receive a notice ('' if it can)."""
    if terminal_safe(user, one_line=True) != user:
        return "has control characters or line breaks"
    if len(user) > MAX_ADDRESS:
        return f"is {len(user):,} characters long; an e-mail address has at most {MAX_ADDRESS}"
    if not ADDRESS.fullmatch(user):
        return "is not an e-mail address (name@domain, the name at most 64 characters)"
    return ""


def check_addresses(devices: Sequence[Device]) -> None:
    """Refuse the wave (``InventoryError``, every bad address named) before anything is written."""
    problems = [Problem(f"device {d.device_id}", "user", f"{d.user[:80]!r}: {address_problem(d.user)}; fix it in "
                        "the inventory and replan (`rollout replan`)") for d in devices if address_problem(d.user)]
    if problems:
        raise InventoryError(problems, source="recorded in the state")


def _filename(user: str, taken: set[str]) -> str:
    stem = re.sub(r"[^a-z0-9._@+-]", "_", recipient_key(user)) or "user"
    if len(stem) > MAX_STEM:
        stem = f"{stem[:MAX_STEM - 13]}-{hashlib.sha256(stem.encode()).hexdigest()[:12]}"
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
    check_addresses([inventory[d] for d in notify])
    if url_problem(helpdesk.faq_url):
        raise PolicyError([Problem("policy", "helpdesk.faq_url", f"{url_problem(helpdesk.faq_url)}; notices link "
                                   "only https: and mailto:")])
    by_key: dict[str, list[Device]] = {}
    for device_id in notify:
        by_key.setdefault(recipient_key(inventory[device_id].user), []).append(inventory[device_id])
    # one notice per person, to the first spelling of their address (in sorted order)
    by_user = {min(d.user for d in owned): owned for owned in by_key.values()}
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
                       wave["bake_until"], tuple(notices), tuple(skipped), template_version())


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
        "template_version": batch.template_version,
        "recipients": [{"user": n.user, "name": n.name, "subject": n.subject,
                        "devices": [d.device_id for d in n.devices],
                        "text": f"{n.filename}.txt", "html": f"{n.filename}.html"} for n in batch.notices],
        "skipped": [{"device_id": d, "phase": p} for d, p in batch.skipped],
        "sent": [{"user": u, "message_id": m} for u, m in sent],
    }


def sent_of(store: StateStore, batch: NoticeBatch) -> dict[str, SentNotice]:
    """The notices of this batch's rollout, wave and template version already sent, by recipient key."""
    return store.notices_sent(batch.rollout, batch.wave, batch.template_version)


def _same_batch(out_dir: Path, batch: NoticeBatch) -> bool:
    """Whether ``out_dir`` holds the notices of this rollout and wave (so rewriting them is no loss)."""
    try:
        data = json.loads((out_dir / "notices.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("schema"), data.get("rollout"), data.get("wave")) == (
        NOTICES_SCHEMA, batch.rollout, batch.wave)


def check_notice_folder(batch: NoticeBatch, out_dir: Path, *, inputs: Sequence[Path] = (),
                        force: bool = False) -> None:
    """Refuse (``OutputError``, nothing written) a folder or file of it that must not be written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir}: is not a folder; name a folder for the notices. Nothing was written.")
    replace = force or _same_batch(out_dir, batch)
    for name in [f"{n.filename}{ext}" for n in batch.notices for ext in (".txt", ".html")] + ["notices.json"]:
        check_output(out_dir / name, inputs=inputs, force=replace)


def write_manifest(batch: NoticeBatch, out_dir: Path, sent: Sequence[tuple[str, str]]) -> Path:
    text = json.dumps(manifest(batch, sent), ensure_ascii=False, indent=1) + "\n"
    return write_output(out_dir / "notices.json", text.encode("utf-8"), force=True)


def write_notices(batch: NoticeBatch, out_dir: Path, sent: Sequence[tuple[str, str]] = (), *,
                  inputs: Sequence[Path] = (), force: bool = False) -> Path:
    """Check the folder, then write each notice as .txt and .html (0600) and the manifest
    ``notices.json`` with ``sent`` (user, message id); returns the manifest's path."""
    check_notice_folder(batch, out_dir, inputs=inputs, force=force)
    for n in batch.notices:
        write_output(out_dir / f"{n.filename}.txt", n.text.encode("utf-8"), inputs=inputs, force=True)
        write_output(out_dir / f"{n.filename}.html", n.html.encode("utf-8"), inputs=inputs, force=True)
    return write_manifest(batch, out_dir, sent)


def check_recipients(store: StateStore, batch: NoticeBatch) -> None:
    """Refuse the batch if any notice is addressed to someone who has no moving device in the wave."""
    notify, _ = wave_recipients(batch.wave_index, store.devices(batch.rollout))
    allowed = {recipient_key(d.user) for d in store.inventory(batch.rollout, notify).values()}
    outside = sorted({n.user for n in batch.notices if recipient_key(n.user) not in allowed})
    if outside:
        raise RolloutError(f"refusing to send: {len(outside)} notice(s) of wave {batch.wave} are addressed to "
                           f"people outside the wave ({', '.join(outside[:5])}); nothing was sent. "
                           "Render the notices again with `rollout notices`.")


@dataclass(frozen=True, slots=True)
class Delivery:
    sent_now: int
    sent_before: int  # already sent by an earlier run (from any folder): not sent again
    manifest: Path


def deliver(store: StateStore, batch: NoticeBatch, out_dir: Path, sender: str,
            client: SESV2Client | None = None, *, inputs: Sequence[Path] = (), force: bool = False,
            now: dt.datetime | None = None) -> Delivery:
    """Write the notices, then send through SES v2 those the state store has no record of, each to
    its one user, recording each in the store as soon as SES accepts it.

    ``notices.json`` lists every notice of the batch sent so far, also when a send fails.
    """
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", sender):
        raise InputError(f"--from {sender!r} is not an e-mail address; pass the SES identity notices come from.")
    check_recipients(store, batch)
    before = sent_of(store, batch)
    path = write_notices(batch, out_dir, sent_pairs(batch, before), inputs=inputs, force=force)
    done = dict(before)
    try:
        ses = client if client is not None else _ses_client()
        for n in batch.notices:
            key = recipient_key(n.user)
            if key not in done:
                message_id = _send_one(ses, sender, n, len(done) - len(before), len(batch.notices))
                record = SentNotice(batch.wave, batch.template_version, key, n.user, message_id,
                                    now_iso(now or dt.datetime.now(dt.UTC)))
                store.record_notice_sent(batch.rollout, record)
                done[key] = record
    finally:
        write_manifest(batch, out_dir, sent_pairs(batch, done))
    mine = {recipient_key(n.user) for n in batch.notices}
    return Delivery(len(done) - len(before), len(mine & before.keys()), path)


def sent_pairs(batch: NoticeBatch, sent: Mapping[str, SentNotice]) -> list[tuple[str, str]]:
    return [(n.user, sent[recipient_key(n.user)].message_id) for n in batch.notices if recipient_key(n.user) in sent]


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
                       "the state); fix the cause (e.g. verify the --from identity) and send again: "
                       "only the rest go out.", code=str(error.get("Code", "")), action="ses:SendEmail") from err
    except BotoCoreError as err:
        raise AwsError(f"could not send the notice to {n.user}: {err}. {done} of {total} were sent by this "
                       "run (recorded in the state store); check AWS_DEFAULT_REGION and credentials and send again.",
                       action="ses:SendEmail") from err
    return str(reply["MessageId"])


def _ses_client() -> SESV2Client:
    """SES v2 from the usual AWS settings; adaptive retries pace the sends under SES's rate limit."""
    try:
        return boto3.client("sesv2", config=Config(retries={"mode": "adaptive", "max_attempts": 10}))
    except BotoCoreError as err:
        raise InputError(f"cannot reach Amazon SES: {err}; set AWS_DEFAULT_REGION (and credentials) and send again.") from err
