"""Reading a wave's health from AWS: device check-ins, the sites' alarms, silent devices' commands.

- Check-ins: the site's check-in table, partition ``<rollout>#<wave>`` (and the earlier waves'
  partitions for devices carried into this wave, kitted there). Only kitting check-ins are health
  evidence; each becomes a ``HealthReport`` through ``rollout.contract.health_checks``. A check-in
  stamped after ``now`` is not counted yet (the engine's clock decides what has happened).
- Alarms: the two alarms of every site of the wave, read per site with that site's own role (a role
  may describe only its own site's alarms), in each alarm's region; a missing alarm is an error.
- Silent devices (no check-in) whose kitting command is known: up to ``invocation_checks_per_tick``
  GetCommandInvocation calls; a command that failed, timed out, was cancelled or could not be
  delivered is a kitting failure; a final status is remembered.
- Telemetry trouble is data, not an exception: each problem is one line in ``Signals.errors``,
  which the gates turn into ERROR (and a human, after ``max_consecutive_errors``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rollout.aws.calls import ApiError
from rollout.contract import CheckIn, CheckInAction, ContractError, health_checks
from rollout.engine import Signals
from rollout.errors import AwsError
from rollout.gates import AlarmState, HealthReport
from rollout.inventory import Device

if TYPE_CHECKING:
    from rollout.aws.backend import AwsBackend
    from rollout.aws.clients import SiteClients

FAILED_STATUSES = frozenset({"Failed", "TimedOut", "Cancelled", "DeliveryTimedOut", "ExecutionTimedOut",
                             "Undeliverable", "Terminated", "InvalidPlatform", "AccessDenied"})
FINAL_STATUSES = FAILED_STATUSES | {"Success"}


def read_wave_signals(backend: AwsBackend, wave: int, devices: Sequence[Device], now: dt.datetime,
                      refs: Mapping[str, str]) -> Signals:
    reports: dict[str, HealthReport] = {}
    alarms: list[AlarmState] = []
    errors: list[str] = []
    by_site: dict[str, list[Device]] = {}
    for device in devices:
        by_site.setdefault(device.site, []).append(device)
    sites = []
    current: set[str] = set()  # devices with a check-in in this wave's own partition
    for site_name in sorted(by_site):
        if site_name not in backend.clients.contracts:
            errors.append(f"site {site_name}: no contract, so no check-ins or alarms can be read")
            continue
        site = backend.clients.site(site_name)
        sites.append(site)
        wanted = {d.device_id for d in by_site[site_name]}
        try:
            found, this_wave = _checkins(backend, site, wave, wanted, now, errors)
            reports.update(found)
            current |= this_wave
        except AwsError as err:
            errors.append(f"site {site_name}: {err}")
    alarms += _alarms(backend, sites, errors)
    silent = [d for d in devices if d.device_id not in current and refs.get(d.device_id, "")
              and not refs[d.device_id].startswith("unknown:")]
    reports.update(_invocations(backend, silent[:backend.settings.invocation_checks_per_tick], refs, now, errors))
    return Signals(reports=reports, tickets={}, alarms=tuple(alarms), errors=tuple(errors))


def _checkins(backend: AwsBackend, site: SiteClients, wave: int, wanted: set[str], now: dt.datetime,
              errors: list[str]) -> tuple[dict[str, HealthReport], set[str]]:
    """Newest kitting check-in per wanted device, this wave's partition first, then earlier ones;
    and the devices found in this wave's own partition."""
    found: dict[str, HealthReport] = {}
    this_wave: set[str] = set()
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
    return found, this_wave


def _query(backend: AwsBackend, site: SiteClients, partition: str) -> list[dict[str, dict[str, str]]]:
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


def _alarms(backend: AwsBackend, sites: Sequence[SiteClients], errors: list[str]) -> list[AlarmState]:
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


def _invocations(backend: AwsBackend, silent: Sequence[Device], refs: Mapping[str, str],
                 now: dt.datetime, errors: list[str]) -> dict[str, HealthReport]:
    """Kitting failures of silent devices, from their command's status (each device on its own)."""
    out: dict[str, HealthReport] = {}
    for device in silent:
        command, node = refs[device.device_id], dict(device.attributes).get("instance_id", "")
        status = backend.invocations.get((command, node))
        if status is None:
            site = backend.clients.site(device.site)
            try:
                answer = backend.caller.call(site.ssm, "GetCommandInvocation", who=site.who, CommandId=command,
                                             InstanceId=node)
            except ApiError as err:
                if err.code not in ("InvocationDoesNotExist", "InvalidCommandId"):
                    errors.append(f"command status of {device.device_id}: {err}")
                continue
            except AwsError as err:
                errors.append(f"command status of {device.device_id}: {err}")
                break
            status = str(answer.get("Status", ""))
            if status in FINAL_STATUSES:
                backend.invocations[(command, node)] = status
        if status in FAILED_STATUSES:
            out[device.device_id] = HealthReport(device.device_id, now, {"kitting": False})
    return out
