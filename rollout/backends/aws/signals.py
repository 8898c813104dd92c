"""Reading a wave's health from AWS: device check-ins, the sites' alarms, silent devices' commands.

- Check-ins: the site's check-in table, partition ``<rollout>#<wave>`` (and the earlier waves'
  partitions for devices carried into this wave, kitted there). Only kitting check-ins are health
  evidence; each becomes a ``HealthReport`` through ``rollout.core.contract.health_checks``. A check-in
  stamped after ``now`` is not counted yet (the engine's clock decides what has happened).
- Alarms: the two alarms of every site of the wave, read per site with that site's own role (a role
  may describe only its own site's alarms), in each alarm's region; a missing alarm is an error.
- A check-in that says kitting succeeded counts only once SSM's own status of the device's kitting
  command on its node is ``Success`` (one GetCommandInvocation per device, remembered): any node of a
  site can write any device's check-in, so SSM's record is the witness; a contradiction is an error.
- Silent devices (no check-in) whose kitting command is known: up to ``invocation_checks_per_tick``
  GetCommandInvocation calls; a command that failed, timed out, was cancelled or could not be
  delivered is a kitting failure; a final status is remembered.
- Telemetry trouble is data, not an exception: each problem is one line in ``Signals.errors``,
  which the gates turn into ERROR (and a human, after ``max_consecutive_errors``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from rollout.backends.aws.calls import ApiError, Caller
from rollout.backends.aws.clients import AwsSettings, Clients, SiteClients
from rollout.core.contract import CheckIn, CheckInAction, CheckInStatus, ContractError, health_checks
from rollout.core.decision import Signals
from rollout.core.device import Device
from rollout.core.verdicts import AlarmState, HealthReport
from rollout.errors import AwsError


class SignalSource(Protocol):
    """What reading signals needs of the AWS backend (``rollout.backends.aws.backend.AwsBackend``):
    its sites' clients, its caller, its settings and its cache of final command statuses."""

    rollout_id: str
    clients: Clients
    caller: Caller
    settings: AwsSettings
    invocations: dict[tuple[str, str], str]  # (command, node) -> final SSM status


FAILED_STATUSES = frozenset({"Failed", "TimedOut", "Cancelled", "DeliveryTimedOut", "ExecutionTimedOut",
                             "Undeliverable", "Terminated", "InvalidPlatform", "AccessDenied"})
FINAL_STATUSES = FAILED_STATUSES | {"Success"}


def read_wave_signals(backend: SignalSource, wave: int, devices: Sequence[Device], now: dt.datetime,
                      refs: Mapping[str, str]) -> Signals:
    reports: dict[str, HealthReport] = {}
    alarms: list[AlarmState] = []
    errors: list[str] = []
    by_site: dict[str, list[Device]] = {}
    for device in devices:
        by_site.setdefault(device.site, []).append(device)
    sites = []
    current: set[str] = set()  # devices with a check-in in this wave's own partition
    succeeded: set[str] = set()  # devices whose check-in says their kitting succeeded
    for site_name in sorted(by_site):
        if site_name not in backend.clients.contracts:
            errors.append(f"site {site_name}: no contract, so no check-ins or alarms can be read")
            continue
        site = backend.clients.site(site_name)
        sites.append(site)
        wanted = {d.device_id for d in by_site[site_name]}
        try:
            found, this_wave, claims = _checkins(backend, site, wave, wanted, now, errors)
            reports.update(found)
            current |= this_wave
            succeeded |= claims
        except AwsError as err:
            errors.append(f"site {site_name}: {err}")
    alarms += _alarms(backend, sites, errors)
    _corroborate(backend, [d for d in devices if d.device_id in succeeded], refs, reports, now, errors)
    silent = [d for d in devices if d.device_id not in current and refs.get(d.device_id, "")
              and not refs[d.device_id].startswith("unknown:")]
    reports.update(_invocations(backend, silent[:backend.settings.invocation_checks_per_tick], refs, now, errors))
    return Signals(reports=reports, tickets={}, alarms=tuple(alarms), errors=tuple(errors))


def _checkins(backend: SignalSource, site: SiteClients, wave: int, wanted: set[str], now: dt.datetime,
              errors: list[str]) -> tuple[dict[str, HealthReport], set[str], set[str]]:
    """Newest kitting check-in per wanted device, this wave's partition first, then earlier ones; the
    devices found in this wave's own partition; and those whose check-in says ``succeeded``."""
    found: dict[str, HealthReport] = {}
    this_wave: set[str] = set()
    succeeded: set[str] = set()
    for index in range(wave, -1, -1):
        missing = wanted - found.keys()
        if not missing:
            break
        for item in _query(backend, site, f"{backend.rollout_id}#{index}"):
            try:
                checkin = CheckIn.from_dynamodb_item(item)
            except ContractError as err:
                errors.append(f"site {site.contract.site}: table {site.contract.checkin_table_name}: {err}")
                continue
            at = checkin.checked_in_at if checkin.checked_in_at.tzinfo else checkin.checked_in_at.replace(tzinfo=dt.UTC)
            if checkin.device_id in missing and checkin.action is CheckInAction.KITTING and at <= now:
                found[checkin.device_id] = HealthReport(checkin.device_id, at, health_checks(checkin))
                if index == wave:
                    this_wave.add(checkin.device_id)
                if checkin.status is CheckInStatus.SUCCEEDED:
                    succeeded.add(checkin.device_id)
    return found, this_wave, succeeded


def _query(backend: SignalSource, site: SiteClients, partition: str) -> list[dict[str, dict[str, str]]]:
    items: list[dict[str, dict[str, str]]] = []
    args: dict[str, Any] = {"TableName": site.contract.checkin_table_name, "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "rollout_wave"},
            "ExpressionAttributeValues": {":pk": {"S": partition}}}
    while True:
        page = backend.caller.call(site.dynamodb, "Query", who=site.who, **args)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _alarms(backend: SignalSource, sites: Sequence[SiteClients], errors: list[str]) -> list[AlarmState]:
    """Every site's two alarms, each site's read with its own role: a site's orchestrator role may describe
    its own alarms only, so sites that share a region are not read in one call. The kitting alarm is in
    the site's region, the sign-in alarm in Verified Access's (``SiteContract.alarm_regions``)."""
    out: list[AlarmState] = []
    for site in sites:
        for region, names in site.contract.alarm_regions.items():
            try:
                answer = backend.caller.call(site.cloudwatch_by_region[region], "DescribeAlarms", who=site.who,
                                             AlarmNames=list(names))
            except AwsError as err:
                errors.append(f"site {site.contract.site}: alarms in {region}: {err}")
                continue
            states = {a["AlarmName"]: a["StateValue"] for a in answer.get("MetricAlarms", [])}
            for name in names:
                if name not in states:
                    errors.append(f"site {site.contract.site}: alarm {name} does not exist in {region} "
                                  "(run `pulumi up` for it)")
                else:
                    out.append(AlarmState(name, states[name]))
    return out


def _corroborate(backend: SignalSource, claimed: Sequence[Device], refs: Mapping[str, str],
                 reports: dict[str, HealthReport], now: dt.datetime, errors: list[str]) -> None:
    """Keep a succeeded check-in only when SSM's own record of the device's kitting command on its node
    says ``Success``.

    Any managed node of a site may write any of the site's check-ins (the device role's PutItem cannot be
    bound to the node: ``dynamodb:LeadingKeys`` covers the partition key, which is the wave), so a
    check-in is a claim and SSM is the witness. No known command, or one not final yet: the check-in
    does not count yet. A command that failed on the node: the device failed kitting, and the
    contradiction is an error (the gate cannot pass on it; a person looks). A failed check-in is taken
    as it is: it can hold or roll back a wave, never push one on.
    """
    for index, device in enumerate(claimed):
        command, node = refs.get(device.device_id, ""), dict(device.attributes).get("instance_id", "")
        status: str | None = None
        if command and not command.startswith("unknown:") and node:
            site = backend.clients.site(device.site)
            try:
                status = _command_status(backend, site, command, node)
            except AwsError as err:
                errors.append(f"command status of {device.device_id}, to corroborate its check-in: {err}")
                for rest in claimed[index:]:
                    reports.pop(rest.device_id, None)
                return
        if status == "Success":
            continue
        reports.pop(device.device_id, None)
        if status in FAILED_STATUSES:
            errors.append(f"site {device.site}: {device.device_id}'s check-in says its kitting succeeded, but SSM says "
                          f"command {command} ended {status} on node {node}: the check-in is not trusted")
            reports[device.device_id] = HealthReport(device.device_id, now, {"kitting": False})


def _command_status(backend: SignalSource, site: SiteClients, command: str, node: str) -> str | None:
    """SSM's status of ``command`` on ``node`` (GetCommandInvocation), remembered once final; None when
    SSM has no such invocation. Other API errors and outages are raised."""
    status = backend.invocations.get((command, node))
    if status is not None:
        return status
    try:
        answer = backend.caller.call(site.ssm, "GetCommandInvocation", who=site.who, CommandId=command,
                                     InstanceId=node)
    except ApiError as err:
        if err.code in ("InvocationDoesNotExist", "InvalidCommandId"):
            return None
        raise
    status = str(answer.get("Status", ""))
    if status in FINAL_STATUSES:
        backend.invocations[(command, node)] = status
    return status


def _invocations(backend: SignalSource, silent: Sequence[Device], refs: Mapping[str, str],
                 now: dt.datetime, errors: list[str]) -> dict[str, HealthReport]:
    """Kitting failures of silent devices, from their command's status (each device on its own)."""
    out: dict[str, HealthReport] = {}
    for device in silent:
        command, node = refs[device.device_id], dict(device.attributes).get("instance_id", "")
        try:
            status = _command_status(backend, backend.clients.site(device.site), command, node)
        except ApiError as err:
            errors.append(f"command status of {device.device_id}: {err}")
            continue
        except AwsError as err:
            errors.append(f"command status of {device.device_id}: {err}")
            break
        if status in FAILED_STATUSES:
            out[device.device_id] = HealthReport(device.device_id, now, {"kitting": False})
    return out
