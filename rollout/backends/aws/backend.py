"""The AWS backend: a device moves to zero trust through its site's stack resources.

Migrate (``MIGRATE_STEPS`` identity, endpoint, access), per device, concurrently:

1. identity: its user joins the site's migrated group (CreateGroupMembership; the user id is looked
   up once per user name with GetUserId and cached). A membership that exists already is success.
2. endpoint: the kitting document runs on the device's managed node (the inventory's
   ``instance_id``): SendCommand, up to 50 nodes a call, parameters ``rolloutWave`` and
   ``deviceMap`` (``node=device`` pairs, so each device writes its check-in under its own id).
   The Comment carries the operation id; a replay after a crash, or a send that timed out, looks
   for that command on the node before sending again (SendCommand has no idempotency token).
3. access: granted by the two together (the Verified Access policy admits the migrated group
   with a healthy device): no call of its own.

Revert undoes them, access first: the membership is removed (a missing one is success), then the
rollback document runs where kitting ran.

A send whose outcome stayed unknown until the retry deadline (it timed out, and so did every look
for it) leaves ``unknown:<document>:<op>`` as the device's ref; the next call on that device looks
for any command of that document for the wave on its node before deciding, so a device is neither
kitted twice nor left kitted without its rollback.

Error budget (SSM's MaxErrors): with ``max_errors = N`` the N+1-th failed device stops dispatch;
calls in flight finish and count; devices not dispatched go back to pending (``retriable``) and
the engine's rules fail the wave and roll it back. Throttling never fails a device.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from rollout.backends import NOT_DISPATCHED, Abort, Progress
from rollout.backends.aws.calls import AmbiguousCall, ApiError, Caller, RateLimits
from rollout.backends.aws.clients import (
    AwsSettings,
    Clients,
    SessionFactory,
    SiteClients,
)
from rollout.backends.aws.signals import read_wave_signals
from rollout.backends.aws.work import Budget, DeviceFailure, Work
from rollout.core.contract import SiteContract
from rollout.core.decision import Signals
from rollout.core.device import Device
from rollout.core.model import MIGRATE_STEPS, StepResult
from rollout.errors import AwsUnavailableError, PermissionDeniedError
from rollout.store.api import StaleWriterError

IDENTITY, ENDPOINT, ACCESS = (1 << MIGRATE_STEPS.index(s) for s in ("identity", "endpoint", "access"))
ALL_STEPS = IDENTITY | ENDPOINT | ACCESS
BATCH = 50  # SendCommand takes at most 50 instance ids


class AwsBackend:
    """``rollout.backends.Backend`` over AWS (see the module docstring)."""

    def __init__(self, rollout_id: str, contracts: Mapping[str, SiteContract], wave_index: Mapping[str, int],
                 settings: AwsSettings | None = None, *, session_factory: SessionFactory | None = None,
                 caller: Caller | None = None) -> None:
        self.rollout_id, self.wave_index = rollout_id, dict(wave_index)
        self.settings = settings or AwsSettings()
        self.caller = caller or Caller(RateLimits(self.settings.rates), deadline=self.settings.retry_deadline,
                                       base=self.settings.backoff_base)
        self.clients = Clients(dict(contracts), self.settings, self.caller, session_factory)
        self.pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="zt-aws")
        self._users: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self.invocations: dict[tuple[str, str], str] = {}  # (command, node) -> final SSM status

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    @property
    def call_stats(self) -> Any:
        return self.caller.stats

    # -- the Backend protocol ---------------------------------------------------------------------

    def migrate(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
                now: dt.datetime, *, max_errors: int | None = None, replay: bool = False,
                refs: Mapping[str, str] | None = None, progress: Progress | None = None,
                abort: Abort | None = None) -> list[StepResult]:
        works = self._works(devices, steps_done, refs)
        budget = Budget(max_errors)
        for work in works:
            self._check_addressable(work, budget)
        joining = [w for w in works if not w.failed and not w.steps & IDENTITY]
        skipped = self._bounded(joining, self._join, budget, progress, len(works), abort)
        ready = [w for w in works if w.steps & IDENTITY and not w.steps & ENDPOINT and not w.failed
                 and w not in skipped]
        self._resolve_unknown(wave, "kitting", ready)
        self._send(op_id, "kitting", wave, [w for w in ready if not w.steps & ENDPOINT], replay, budget, abort)
        for w in works:
            if w.steps & IDENTITY and w.steps & ENDPOINT:
                w.steps |= ACCESS
        for w in skipped:
            w.retriable, w.error = True, NOT_DISPATCHED
        return [self._result(w, now, w.steps == ALL_STEPS) for w in works]

    def revert(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
               now: dt.datetime, *, replay: bool = False, refs: Mapping[str, str] | None = None,
               progress: Progress | None = None, abort: Abort | None = None,
               keep_access: Collection[str] = ()) -> list[StepResult]:
        """``keep_access``: users with another device still on zero trust; their membership (per
        user, not per device) stays, the device's own steps are undone."""
        works = self._works(devices, steps_done, refs)
        budget = Budget(None)
        self._resolve_unknown(wave, "kitting", works)  # a kitting that may have run needs its rollback
        self._resolve_unknown(wave, "rollback", works)  # a rollback that did run is not sent again
        leaving = [w for w in works if w.steps & (IDENTITY | ACCESS)]
        kept = set(keep_access)
        self._bounded(leaving, lambda w: self._leave(w, w.device.user in kept), budget, progress, len(works), abort)
        gone = [w for w in works if w.steps & ENDPOINT and not w.failed and not w.steps & (IDENTITY | ACCESS)]
        self._send(op_id, "rollback", wave, gone, replay, budget, abort)  # only once access is revoked
        return [self._result(w, now, w.steps == 0 and not w.failed) for w in works]

    @staticmethod
    def _works(devices: Sequence[Device], steps_done: Mapping[str, int], refs: Mapping[str, str] | None) -> list[Work]:
        refs = refs or {}
        return [Work(d, steps_done.get(d.device_id, 0), ref=refs.get(d.device_id, ""))
                for d in sorted(devices, key=lambda d: d.device_id)]

    def read_signals(self, rollout_id: str, wave: str, devices: Sequence[Device], now: dt.datetime, *,
                     refs: Mapping[str, str] | None = None) -> Signals:
        """Check-ins, the sites' alarms and, for silent devices, their command's status (``rollout.backends.aws.signals``)."""
        return read_wave_signals(self, self.wave_index[wave], devices, now, refs or {})

    # -- steps ------------------------------------------------------------------------------------------

    def _check_addressable(self, work: Work, budget: Budget) -> None:
        site = work.device.site
        if site not in self.clients.contracts:
            budget.fail(work, f"no contract for site {site}: start the rollout with a contract for every site")
        elif not work.instance:
            budget.fail(work, "no instance_id (the device's Systems Manager managed node) in the inventory")

    def _user_id(self, site: SiteClients, user: str) -> str:
        key = (site.contract.identity_store_id, user)
        with self._lock:
            if key in self._users:
                return self._users[key]
        try:
            answer = self.caller.call(site.identitystore, "GetUserId", who=site.who,
                                      IdentityStoreId=site.contract.identity_store_id,
                                      AlternateIdentifier={"UniqueAttribute": {"AttributePath": "userName",
                                                                               "AttributeValue": user}})
        except ApiError as err:
            if err.code == "ResourceNotFoundException":
                raise DeviceFailure(f"user {user} is not in identity store {site.contract.identity_store_id}") from None
            raise
        with self._lock:
            self._users[key] = str(answer["UserId"])
        return str(answer["UserId"])

    def _membership(self, site: SiteClients, user_id: str) -> str | None:
        try:
            answer = self.caller.call(site.identitystore, "GetGroupMembershipId", who=site.who,
                                      IdentityStoreId=site.contract.identity_store_id,
                                      GroupId=site.contract.migrated_group_id, MemberId={"UserId": user_id})
        except ApiError as err:
            if err.code == "ResourceNotFoundException":
                return None
            raise
        return str(answer["MembershipId"])

    def _join(self, work: Work) -> None:
        site = self.clients.site(work.device.site)
        user_id = self._user_id(site, work.device.user)
        try:
            self.caller.call(site.identitystore, "CreateGroupMembership", who=site.who,
                             IdentityStoreId=site.contract.identity_store_id, GroupId=site.contract.migrated_group_id,
                             MemberId={"UserId": user_id})
        except ApiError as err:
            if err.code != "ConflictException" or self._membership(site, user_id) is None:
                raise
        work.steps |= IDENTITY

    def _leave(self, work: Work, keep: bool = False) -> None:
        if keep:  # the user's other device still needs the group
            work.steps &= ~(IDENTITY | ACCESS)
            return
        site = self.clients.site(work.device.site)
        try:
            user_id = self._user_id(site, work.device.user)
        except DeviceFailure:  # the user left the directory: IAM Identity Center removed their memberships
            work.steps &= ~(IDENTITY | ACCESS)
            return
        membership = self._membership(site, user_id)
        if membership is not None:
            try:
                self.caller.call(site.identitystore, "DeleteGroupMembership", who=site.who,
                                 IdentityStoreId=site.contract.identity_store_id, MembershipId=membership)
            except ApiError as err:
                if err.code != "ResourceNotFoundException":
                    raise
        work.steps &= ~(IDENTITY | ACCESS)

    # -- running many ----------------------------------------------------------------------------------

    def _bounded(self, works: Sequence[Work], step: Callable[[Work], None], budget: Budget,
                 progress: Progress | None, total: int, abort: Abort | None = None) -> list[Work]:
        """Run ``step`` on each work, ``concurrency`` at a time, until the budget is spent.
        Returns the works never dispatched. A permission error, or ``abort()`` (the driver lost its
        lease), stops dispatching; calls in flight finish; then it is raised."""
        queue: list[Work] = list(works)
        inflight: dict[Future[None], Work] = {}
        denied: PermissionDeniedError | StaleWriterError | None = None
        done_count = total - len(works)
        while queue or inflight:
            if abort is not None and denied is None and abort():
                denied = StaleWriterError("this driver lost its lease during the call: nothing more was sent; "
                                          "stop it.")
            while queue and len(inflight) < self.settings.concurrency and not budget.spent and denied is None:
                work = queue.pop(0)
                inflight[self.pool.submit(self._guarded, step, work, budget)] = work
            if not inflight:
                break
            finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in finished:
                inflight.pop(future)
                error = future.exception()
                if isinstance(error, PermissionDeniedError):
                    denied = error
                elif error is not None:
                    raise error
                done_count += 1
                if progress:
                    progress(done_count, total)
        if denied is not None:
            raise denied
        return queue

    @staticmethod
    def _guarded(step: Callable[[Work], None], work: Work, budget: Budget) -> None:
        try:
            step(work)
        except DeviceFailure as err:
            budget.fail(work, str(err))
        except AwsUnavailableError as err:
            work.retriable, work.error = True, str(err)
        except ApiError as err:
            budget.fail(work, str(err))

    def _result(self, work: Work, now: dt.datetime, ok: bool) -> StepResult:
        return StepResult(work.device.device_id, ok, work.steps, now, "" if ok else work.error,
                          retriable=not ok and work.retriable and not work.failed, ref=work.ref)

    # -- SSM documents --------------------------------------------------------------------------------

    def _send(self, op_id: str, kind: str, wave: str, works: Sequence[Work], replay: bool, budget: Budget,
              abort: Abort | None = None) -> None:
        """Run document ``kind`` (kitting/rollback) on the works' nodes, 50 a call, sites apart."""
        batches: list[tuple[str, int, list[Work]]] = []
        by_site: dict[str, list[Work]] = {}
        for w in works:
            by_site.setdefault(w.device.site, []).append(w)
        for site in sorted(by_site):
            group = by_site[site]
            batches += [(site, n, group[i:i + BATCH]) for n, i in enumerate(range(0, len(group), BATCH))]
        jobs = [self.pool.submit(self._send_batch, op_id, kind, wave, site, n, batch, replay, abort)
                for site, n, batch in batches]
        stale: StaleWriterError | None = None
        for job, (_, _, batch) in zip(jobs, batches):
            try:
                for work, error in job.result():
                    budget.fail(work, error)
            except StaleWriterError as err:
                stale = err
            except AwsUnavailableError as err:
                for w in batch:
                    done = bool(w.steps & ENDPOINT) if kind == "kitting" else not w.steps & ENDPOINT
                    if not done:  # it may have been sent: the next call on the device looks first
                        w.retriable, w.error, w.ref = True, str(err), f"unknown:{kind}:{op_id}"
            except ApiError as err:
                for w in batch:
                    budget.fail(w, str(err))
        if stale is not None:
            raise stale

    def _send_batch(self, op_id: str, kind: str, wave: str, site_name: str, n: int, batch: list[Work],
                    replay: bool, abort: Abort | None = None) -> list[tuple[Work, str]]:
        """Send one batch; returns the (work, error) of nodes AWS refused. A send that may have
        happened is looked for (after a backoff) before it is sent again, until the deadline."""
        if abort is not None and abort():
            raise StaleWriterError("this driver lost its lease during the call: nothing more was sent; stop it.")
        site = self.clients.site(site_name)
        document = site.contract.kitting_document_name if kind == "kitting" else site.contract.rollback_document_name
        prefix = f"zt-rollout {op_id} {kind}"
        todo = self._not_sent(site, document, prefix, kind, list(batch)) if replay else list(batch)
        began, attempt = self.caller.clock(), 0
        while todo:
            try:
                self._mark_sent(kind, todo, self._send_command(site, document, f"{prefix} {n:03d}", wave, todo))
                return []
            except AmbiguousCall as err:
                attempt += 1
                if self.caller.clock() - began >= self.caller.deadline:
                    raise AwsUnavailableError(f"{err}; still unknown after {self.caller.deadline:.0f} s",
                                              action=err.action) from err
                self.caller.pause(attempt)  # let a request still in flight land before looking for it
                todo = self._not_sent(site, document, prefix, kind, todo)
            except ApiError as err:
                if err.code not in ("InvalidInstanceId", "InvalidTarget") or len(todo) == 1:
                    if len(todo) == 1 and err.code in ("InvalidInstanceId", "InvalidTarget"):
                        return [(todo[0], str(err))]
                    raise
                refused: list[tuple[Work, str]] = []
                for w in todo:  # one bad node fails the whole call: find it, one node at a time
                    refused += self._send_batch(op_id, kind, wave, site_name, n, [w], True, abort)
                return refused
        return []

    def _send_command(self, site: SiteClients, document: str, comment: str, wave: str, works: list[Work]) -> str:
        rollout_wave = f"{self.rollout_id}#{self.wave_index[wave]}"
        answer = self.caller.call(
            site.ssm_send, "SendCommand", who=site.who, idempotent=False, DocumentName=document,
            InstanceIds=[w.instance for w in works], Comment=comment[:100], MaxConcurrency="50", MaxErrors="100%",
            TimeoutSeconds=3600,
            Parameters={"rolloutWave": [rollout_wave],
                        "deviceMap": [",".join(f"{w.instance}={w.device.device_id}" for w in works)]})
        return str(answer["Command"]["CommandId"])

    @staticmethod
    def _mark_sent(kind: str, works: Iterable[Work], command: str) -> None:
        for w in works:
            w.ref = command
            if kind == "kitting":
                w.steps |= ENDPOINT
            else:
                w.steps &= ~ENDPOINT

    def _not_sent(self, site: SiteClients, document: str, prefix: str, kind: str,
                  works: list[Work]) -> list[Work]:
        """The works whose node has no command of this operation yet; the others are marked sent."""
        left = {w.instance: w for w in works}
        unsent: list[Work] = []
        while left:
            instance = next(iter(left))
            found = self._find_command(site, document, instance, prefix, None)
            if found is None:
                unsent.append(left.pop(instance))
                continue
            command, instances = found
            self._mark_sent(kind, [left.pop(i) for i in [instance, *instances] if i in left], command)
        return unsent

    def _find_command(self, site: SiteClients, document: str, instance: str, prefix: str,
                      rollout_wave: str | None) -> tuple[str, list[str]] | None:
        token: dict[str, Any] = {}
        while True:
            page = self.caller.call(site.ssm, "ListCommands", who=site.who, InstanceId=instance,
                                    Filters=[{"key": "DocumentName", "value": document}], **token)
            for c in page.get("Commands", []):
                ours = c.get("Comment", "").startswith(prefix + " ") if rollout_wave is None else \
                    c.get("Parameters", {}).get("rolloutWave") == [rollout_wave]
                if c.get("DocumentName") == document and ours:
                    return str(c["CommandId"]), list(c.get("InstanceIds", [instance]))
            if not page.get("NextToken"):
                return None
            token = {"NextToken": page["NextToken"]}

    def _resolve_unknown(self, wave: str, kind: str, works: Sequence[Work]) -> None:
        """Devices whose last ``kind`` send has an unknown outcome: look on their node for this wave's."""
        rollout_wave = f"{self.rollout_id}#{self.wave_index[wave]}"
        for w in works:
            if not w.ref.startswith(f"unknown:{kind}:") or not w.instance:
                continue
            site = self.clients.site(w.device.site)
            document = site.contract.kitting_document_name if kind == "kitting" else site.contract.rollback_document_name
            found = self._find_command(site, document, w.instance, "", rollout_wave)
            if found is not None:
                self._mark_sent(kind, [w], found[0])
            else:
                w.ref = ""
