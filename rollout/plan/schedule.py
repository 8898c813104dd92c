"""The projected calendar of a plan: when each wave migrates, bakes, and when the rollout ends.

The rule, wave by wave:

- A wave starts on the first working day on or after its earliest start: the rollout's start
  date for the first wave; for the others, the day after the previous wave's last migration day
  plus the previous wave's bake time in whole days (bake 3d after a wave ending Tuesday 10th:
  earliest start Saturday 14th, so Monday 16th with a Monday-to-Friday week).
- Each working day the help desk supports ``helpdesk.daily_capacity()`` devices (the lower of
  devices a day and tickets a day / expected tickets per device). Devices under a blackout that
  day (a date range or a monthly window, for the whole company or for named sites and
  departments: year-end holidays, month-end closing in accounting, a site's freeze) wait; the
  others use the day's capacity, bucket by bucket in (site, department) order.
- A wave ends on the day its last device migrates; it bakes for its bake time after that day.

The projected completion is the end of the last wave's bake. Pure: dates in, dates out.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from rollout.errors import Problem
from rollout.plan.policy import WEEKDAYS, Blackout, Policy

MAX_DAYS = 3660  # a plan that needs ten years is a policy mistake, not a schedule


@dataclass(frozen=True, slots=True)
class WaveDates:
    start: dt.date
    end: dt.date  # last migration day
    bake_until: dt.date
    migration_days: int  # working days on which devices of this wave migrate
    blocked_days: int  # working days on which a blackout kept devices waiting while capacity went unused


def blackout_applies(blackout: Blackout, day: dt.date) -> bool:
    """Whether ``day`` falls in the blackout's date range or monthly window."""
    if blackout.start is not None and blackout.end is not None:
        if blackout.start <= day <= blackout.end:
            return True
    if blackout.monthly is not None:
        last = calendar.monthrange(day.year, day.month)[1]
        lo = blackout.monthly.from_day if blackout.monthly.from_day > 0 else last + 1 + blackout.monthly.from_day
        hi = blackout.monthly.to_day if blackout.monthly.to_day > 0 else last + 1 + blackout.monthly.to_day
        # A window such as (-3, 3) wraps around the month's end: the 29th..31st and the 1st..3rd.
        return lo <= day.day <= hi if lo <= hi else (day.day >= lo or day.day <= hi)
    return False


def _scope_hit(blackout: Blackout, site: str, department: str) -> bool:
    return (not blackout.sites or site in blackout.sites) and (
        not blackout.departments or department in blackout.departments
    )


def plan_schedule(
    policy: Policy, buckets_per_wave: Sequence[dict[tuple[str, str], int]]
) -> tuple[list[WaveDates], list[Problem]]:
    """Dates for each wave from its device counts per (site, department); problems if unschedulable."""
    working = {WEEKDAYS.index(d) for d in policy.schedule.working_days}
    capacity = policy.helpdesk.daily_capacity()
    blackouts = policy.schedule.blackouts
    out: list[WaveDates] = []
    earliest = policy.schedule.start_date
    for w, buckets in enumerate(buckets_per_wave):
        left = {k: v for k, v in sorted(buckets.items()) if v}
        day = earliest
        while day.weekday() not in working:
            day += dt.timedelta(days=1)
        first: dt.date | None = None
        last, used, blocked = day, 0, 0
        while left:
            if (day - earliest).days > MAX_DAYS:
                names = ", ".join(f"{s}/{d}" for s, d in left)
                wave = policy.waves[w].name
                return out, [Problem("schedule", "blackouts",
                                     f"wave {wave}: devices of {names} find no working day without a blackout")]
            if day.weekday() in working:
                active = [b for b in blackouts if blackout_applies(b, day)]
                room, moved, held = capacity, False, False
                for key in list(left):
                    if any(_scope_hit(b, *key) for b in active):
                        held = True
                        continue
                    take = min(room, left[key])
                    if take:
                        left[key] -= take
                        room -= take
                        moved = True
                        if not left[key]:
                            del left[key]
                    if not room:
                        break
                if moved:
                    first = first or day
                    last, used = day, used + 1
                blocked += held and room > 0
            day += dt.timedelta(days=1)
        bake_days = math.ceil(policy.waves[w].bake / 86400)
        bake_until = last + dt.timedelta(days=bake_days)
        out.append(WaveDates(first or last, last, bake_until, used, blocked))
        earliest = bake_until + dt.timedelta(days=1)
    return out, []
