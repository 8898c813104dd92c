"""The projected calendar: working days, bake times, blackouts and help-desk capacity."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rollout.plan.policy import Blackout, Helpdesk, MonthlyWindow
from rollout.plan.schedule import blackout_applies, plan_schedule
from tests.conftest import make_policy

D = dt.date


def policy_with(waves: list[dict[str, Any]], blackouts: list[dict[str, Any]] | None = None,
                per_day: int = 100, start: str = "2027-01-11") -> Any:
    return make_policy(waves=waves, schedule={"start_date": start, "blackouts": blackouts or []},
                       helpdesk={"devices_per_day": per_day})


@pytest.mark.parametrize(
    ("window", "day", "inside"),
    [
        ((-3, 3), D(2027, 1, 29), True),   # January has 31 days: the 29th..31st and the 1st..3rd
        ((-3, 3), D(2027, 1, 28), False),
        ((-3, 3), D(2027, 2, 26), True),   # February 2027 has 28 days: the 26th is 3rd from the end
        ((-3, 3), D(2027, 2, 3), True),
        ((-3, 3), D(2027, 2, 4), False),
        ((25, 31), D(2027, 2, 28), True),
        ((10, 15), D(2027, 3, 16), False),
    ],
)
def test_monthly_windows_count_from_the_end(window: tuple[int, int], day: dt.date, inside: bool) -> None:
    blackout = Blackout(name="closing", monthly=MonthlyWindow(from_day=window[0], to_day=window[1]))
    assert blackout_applies(blackout, day) is inside


def test_helpdesk_capacity_is_the_lower_of_devices_and_tickets() -> None:
    assert Helpdesk(devices_per_day=400, tickets_per_100_devices=5, tickets_per_day=15).daily_capacity() == 300
    assert Helpdesk(devices_per_day=200, tickets_per_100_devices=5, tickets_per_day=15).daily_capacity() == 200
    assert Helpdesk(devices_per_day=200).daily_capacity() == 200


def test_waves_follow_capacity_weekends_and_bake() -> None:
    policy = policy_with([{"name": "a", "size": 250, "bake": "3d"}, {"name": "b", "size": "rest", "bake": "1d"}])
    # Monday 11 Jan: 100 a day -> a migrates Mon, Tue, Wed (100+100+50); bakes to Sat 16th; b from Mon 18th.
    dates, problems = plan_schedule(policy, [{("tokyo", "営業部"): 250}, {("tokyo", "営業部"): 120}])
    assert problems == []
    assert [(d.start, d.end, d.bake_until, d.migration_days) for d in dates] == [
        (D(2027, 1, 11), D(2027, 1, 13), D(2027, 1, 16), 3),
        (D(2027, 1, 18), D(2027, 1, 19), D(2027, 1, 20), 2),
    ]


def test_a_start_on_a_weekend_moves_to_monday() -> None:
    policy = policy_with([{"name": "a", "size": "rest"}], start="2027-01-09")
    dates, _ = plan_schedule(policy, [{("tokyo", "営業部"): 10}])
    assert dates[0].start == D(2027, 1, 11)


def test_department_blackout_holds_only_that_department() -> None:
    closing = [{"name": "月次決算", "monthly": {"from_day": -3, "to_day": 3}, "departments": ["経理部"]}]
    policy = policy_with([{"name": "a", "size": "rest"}], closing, start="2027-01-28")
    dates, _ = plan_schedule(policy, [{("tokyo", "経理部"): 100, ("tokyo", "営業部"): 300}])
    # Thu 28th: sales. Accounting is held from Fri 29th to Wed 3 Feb, while sales goes on
    # (29th and Mon 1st); the 2nd and 3rd are lost to the blackout; accounting moves on Thu 4 Feb.
    assert (dates[0].start, dates[0].end, dates[0].migration_days, dates[0].blocked_days) == (
        D(2027, 1, 28), D(2027, 2, 4), 4, 2)
    sales_only, _ = plan_schedule(policy, [{("tokyo", "営業部"): 300}])
    assert (sales_only[0].end, sales_only[0].blocked_days) == (D(2027, 2, 1), 0)


def test_year_end_blackout_pushes_the_completion() -> None:
    waves = [{"name": "a", "size": "rest", "bake": "2d"}]
    plain, _ = plan_schedule(policy_with(waves, start="2027-12-24"), [{("osaka", "総務部"): 300}])
    holidays = [{"name": "年末年始", "from": "2027-12-27", "to": "2028-01-05"}]
    held, _ = plan_schedule(policy_with(waves, holidays, start="2027-12-24"), [{("osaka", "総務部"): 300}])
    assert plain[0].end == D(2027, 12, 28)
    assert held[0].end == D(2028, 1, 7)  # Fri 24 Dec, then Thu 6 and Fri 7 Jan
    assert held[0].bake_until == D(2028, 1, 9)


def test_a_blackout_that_never_ends_is_a_problem_not_a_hang() -> None:
    forever = [{"name": "freeze", "monthly": {"from_day": 1, "to_day": -1}, "sites": ["osaka"]}]
    policy = policy_with([{"name": "a", "size": "rest"}], forever)
    _, problems = plan_schedule(policy, [{("osaka", "総務部"): 5}])
    assert [str(p) for p in problems] == [
        "schedule: blackouts: wave a: devices of osaka/総務部 find no working day without a blackout"]
