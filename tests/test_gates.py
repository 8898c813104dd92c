"""The triage gate's rules (rollout.core.gates), table-driven: verdicts, evidence, stragglers, cohorts, Fisher."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from rollout.core.device import Device
from rollout.core.fisher import fisher_exact_greater
from rollout.core.gates import assess_wave
from rollout.core.verdicts import GateDecision, Verdict, WaveEvidence, worst
from rollout.plan.fleet import generate_fleet
from tests.gates_builders import (
    LONG_AGO,
    NOW,
    ids,
    make_devices,
    make_evidence,
    make_spec,
)


def wave(n: int = 100, *, fail: dict[str, int] | None = None, silent: int = 0, stale: int = 0, tickets: int = 0,
         **kwargs: Any) -> WaveEvidence:
    """``n`` devices; the first ``fail[signal]`` fail it, the last ``silent`` never report, the ``stale``
    before them reported only before their migration; ``tickets`` tickets on the first device."""
    devices = make_devices(n)
    names = ids(devices)
    return make_evidence(
        devices, fail={s: names[:k] for s, k in (fail or {}).items()},
        silent=names[n - silent:] if silent else (), stale=names[n - silent - stale:n - silent] if stale else (),
        tickets={names[0]: tickets} if tickets else None, **kwargs)


@dataclass(frozen=True)
class Case:
    id: str
    evidence: dict[str, Any]
    verdict: Verdict
    reason: str
    bake_complete: bool = True
    spec: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("pass", {}, Verdict.PASS, "kitting 1.000 >= pass 0.98 on 100 check-ins"),
    Case("pass-at-exact-pass-threshold", {"fail": {"kitting": 2}}, Verdict.PASS,
         "kitting 0.980 >= pass 0.98 on 100 check-ins"),
    Case("pass-at-exact-coverage", {"silent": 10}, Verdict.PASS,
         "coverage 0.900 >= 0.9 (90 of 100 expected devices reported)"),
    Case("pending-too-few-checkins", {"silent": 95}, Verdict.PENDING, "5 valid check-ins, fewer than the 10 needed"),
    Case("no-fail-on-too-few-checkins", {"silent": 95, "fail": {"kitting": 5}}, Verdict.PENDING,
         "5 valid check-ins, fewer than the 10 needed"),
    Case("pending-before-bake-end", {}, Verdict.PENDING, "the bake is not complete", bake_complete=False),
    Case("pending-below-coverage", {"silent": 15}, Verdict.PENDING,
         "coverage 0.850 < 0.9 (85 of 100 expected devices reported)"),
    Case("inconclusive-between-thresholds", {"fail": {"kitting": 5}}, Verdict.INCONCLUSIVE,
         "kitting 0.950 between pass 0.98 and rollback 0.9 on 100 check-ins"),
    Case("inconclusive-waits-during-bake", {"fail": {"kitting": 5}}, Verdict.PENDING,
         "kitting 0.950 between pass 0.98 and rollback 0.9 on 100 check-ins", bake_complete=False),
    Case("fail-below-rollback-before-bake-end", {"fail": {"kitting": 20}}, Verdict.FAIL,
         "kitting 0.800 < rollback 0.9 on 100 check-ins", bake_complete=False),
    Case("fail-does-not-wait-for-coverage", {"fail": {"signin": 20}, "silent": 50}, Verdict.FAIL,
         "signin 0.600 < rollback 0.9 on 50 check-ins", bake_complete=False),
    Case("error-on-telemetry-errors", {"errors": ["logs: ThrottlingException"]}, Verdict.ERROR,
         "telemetry read failed: logs: ThrottlingException"),
    Case("fail-beats-error", {"errors": ["logs: timeout"], "fail": {"ztna": 30}}, Verdict.FAIL,
         "ztna 0.700 < rollback 0.9 on 100 check-ins"),
    Case("fail-on-alarm", {"alarms": [("ztna-5xx", "ALARM"), ("cpu", "OK")]}, Verdict.FAIL,
         "alarm ztna-5xx is in ALARM"),
    Case("alarm-fails-before-any-checkin", {"alarms": [("ztna-5xx", "ALARM")], "silent": 100}, Verdict.FAIL,
         "alarm ztna-5xx is in ALARM", bake_complete=False),
    Case("insufficient-data-never-passes", {"alarms": [("app-errors", "INSUFFICIENT_DATA")]}, Verdict.INCONCLUSIVE,
         "alarm app-errors is in INSUFFICIENT_DATA: no data, no pass"),
    Case("insufficient-data-during-bake", {"alarms": [("app-errors", "INSUFFICIENT_DATA")]}, Verdict.PENDING,
         "alarm app-errors is in INSUFFICIENT_DATA: no data, no pass", bake_complete=False),
    Case("unmeasured-signal-pending", {"measured": ("kitting", "signin", "ztna")}, Verdict.INCONCLUSIVE,
         "app measured on 0 check-ins, fewer than the 10 needed"),
    Case("unmeasured-signal-not-in-spec", {"measured": ("kitting",)}, Verdict.PASS, "kitting 1.000 >= pass 0.98 on 100 check-ins",
         spec={"signals": {"kitting": {"pass": 0.98, "rollback": 0.9}}}),
    Case("small-wave-all-reported-passes", {"n": 4}, Verdict.PASS, "kitting 1.000 >= pass 0.98 on 4 check-ins"),
    Case("small-wave-waits-for-all", {"n": 4, "silent": 1}, Verdict.PENDING,
         "3 valid check-ins, fewer than the 4 needed"),
    Case("small-wave-fails-when-all-reported", {"n": 4, "fail": {"app": 2}}, Verdict.FAIL,
         "app 0.500 < rollback 0.85 on 4 check-ins", bake_complete=False),
    Case("tickets-pass", {"tickets": 5}, Verdict.PASS, "tickets_per_100 5.0 <= pass 5 over 100 devices"),
    Case("tickets-inconclusive", {"tickets": 10}, Verdict.INCONCLUSIVE,
         "tickets_per_100 10.0 between pass 5 and rollback 15 over 100 devices"),
    Case("tickets-fail", {"tickets": 16}, Verdict.FAIL, "tickets_per_100 16.0 > rollback 15 over 100 devices",
         bake_complete=False),
    Case("tickets-at-rollback-not-fail", {"tickets": 15}, Verdict.INCONCLUSIVE,
         "tickets_per_100 15.0 between pass 5 and rollback 15 over 100 devices"),
    Case("stale-reports-are-no-evidence", {"stale": 95}, Verdict.PENDING, "5 valid check-ins, fewer than the 10 needed"),
    Case("min-checkins-from-spec", {"silent": 95}, Verdict.PASS, "kitting 1.000 >= pass 0.98 on 5 check-ins",
         spec={"min_checkins": 5, "coverage": 0.05}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_verdicts(case: Case) -> None:
    decision = assess_wave(make_spec(**case.spec), wave(**case.evidence), now=NOW, bake_complete=case.bake_complete)
    assert decision.verdict == case.verdict, decision.reasons
    assert case.reason in decision.reasons


def test_pre_migration_reports_are_ignored_even_when_failing() -> None:
    evidence = wave(stale=30, fail={"kitting": 0})
    decision = assess_wave(make_spec(), evidence, now=NOW, bake_complete=True)
    assert decision.reported == 70
    assert decision.signals[0].measured == 70 and decision.signals[0].value == 1.0
    assert decision.unknown == tuple(sorted(ids(make_devices(100))[70:]))
    assert decision.verdict == Verdict.PENDING  # coverage 0.7


def test_unknown_devices_are_never_healthy() -> None:
    decision = assess_wave(make_spec(), wave(silent=10), now=NOW, bake_complete=True)
    assert (decision.reported, decision.expected, decision.coverage) == (90, 100, 0.9)
    assert decision.unknown == tuple(ids(make_devices(100))[90:])
    assert [s.measured for s in decision.signals] == [90, 90, 90, 90, 100]  # tickets count every device
    assert decision.stragglers == ()


def test_stragglers_past_the_deadline_leave_expected_and_are_listed() -> None:
    devices = make_devices(100)
    names = ids(devices)
    late = {i: LONG_AGO for i in names[85:95]}
    evidence = make_evidence(devices, silent=names[85:], migrated_at=late)
    decision = assess_wave(make_spec(), evidence, now=NOW, bake_complete=True)
    assert decision.stragglers == tuple(names[85:95])
    assert decision.unknown == tuple(names[85:])
    assert (decision.reported, decision.expected) == (85, 90)
    assert decision.verdict == Verdict.PASS  # 85 / 90 = 0.944 >= 0.9
    shorter = assess_wave(make_spec(checkin_deadline="3d"), evidence, now=NOW, bake_complete=True)
    assert shorter.stragglers == () and shorter.verdict == Verdict.PENDING


def test_all_stragglers_after_bake_go_to_a_human() -> None:
    devices = make_devices(20)
    evidence = make_evidence(devices, silent=ids(devices), migrated_at={i: LONG_AGO for i in ids(devices)})
    decision = assess_wave(make_spec(), evidence, now=NOW, bake_complete=True)
    assert decision.verdict == Verdict.INCONCLUSIVE
    assert (decision.expected, decision.coverage, len(decision.stragglers)) == (0, 0.0, 20)


def test_tickets_count_devices_that_did_not_report() -> None:
    devices = make_devices(100)
    names = ids(devices)
    evidence = make_evidence(devices, silent=names[90:], tickets={n: 2 for n in names[90:]})
    decision = assess_wave(make_spec(), evidence, now=NOW, bake_complete=True)
    tickets = decision.signals[-1]
    assert (tickets.name, tickets.value, tickets.verdict) == ("tickets_per_100", 20.0, Verdict.FAIL)


def test_missing_migration_time_is_a_caller_error() -> None:
    evidence = wave(5)
    broken = WaveEvidence(evidence.devices, {}, evidence.reports, {})
    with pytest.raises(ValueError, match="D00001"):
        assess_wave(make_spec(), broken, now=NOW, bake_complete=True)


# --- concentrated failures ---------------------------------------------------------------------

FLEET = {d.device_id: d for d in generate_fleet(2000, 11)}
U9 = "FMV LIFEBOOK U9"


def failing(devices: dict[str, Device], rate_of: Any, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    return [i for i, d in sorted(devices.items()) if rng.random() < rate_of(d)]


def assess_fleet(fail: dict[str, list[str]], devices: dict[str, Device] = FLEET, **spec: Any) -> GateDecision:
    return assess_wave(make_spec(**spec), make_evidence(devices.values(), fail=fail), now=NOW, bake_complete=True)


def test_one_model_failing_is_a_cohort_and_the_rest_passes() -> None:
    bad = failing(FLEET, lambda d: 0.30 if d.model == U9 else 0.01)
    decision = assess_fleet({"kitting": bad})
    assert [(f.selector, f.signal) for f in decision.failing_cohorts] == [(f"model={U9}", "kitting")]
    finding = decision.failing_cohorts[0]
    in_model = [i for i in bad if FLEET[i].model == U9]
    assert (finding.failures, finding.rest_failures) == (len(in_model), len(bad) - len(in_model))
    assert finding.p_value < 1e-30
    assert decision.verdict == Verdict.PASS, decision.reasons
    assert decision.expected == sum(1 for d in FLEET.values() if d.model != U9)
    assert decision.reasons[0].startswith(f"kitting failures concentrated in model={U9}: ")
    assert f"({len(in_model)} of {finding.measured} failed vs {finding.rest_failures} of" in decision.reasons[0]


def test_every_model_failing_is_fleet_wide_and_blames_no_cohort() -> None:
    bad = failing(FLEET, lambda d: 0.30)
    decision = assess_fleet({"kitting": bad})
    assert decision.verdict == Verdict.FAIL
    assert decision.failing_cohorts == ()
    assert decision.expected == len(FLEET)


def test_cohort_and_rest_both_failing_blames_no_cohort() -> None:
    bad = failing(FLEET, lambda d: 0.60 if d.model == U9 else 0.15)
    decision = assess_fleet({"kitting": bad})
    assert decision.verdict == Verdict.FAIL and decision.failing_cohorts == ()


def test_department_app_breakage_is_reported_once() -> None:
    bad = failing(FLEET, lambda d: 0.40 if "会計システム" in d.apps else 0.0)
    decision = assess_fleet({"app": bad})
    assert [f.selector for f in decision.failing_cohorts] in (["department=経理部"], ["apps=会計システム"])
    assert decision.verdict == Verdict.PASS


def test_an_app_shared_by_two_departments_is_the_finding_not_either_department() -> None:
    devices = (make_devices(60, department="経理部", apps=("会計システム",))
               + make_devices(60, 61, department="経営企画部", apps=("会計システム",))
               + make_devices(60, 121, department="経営企画部", apps=("BI",))
               + make_devices(300, 181, department="営業部", apps=("SFA",)))
    by_id = {d.device_id: d for d in devices}
    bad = failing(by_id, lambda d: 0.5 if "会計システム" in d.apps else 0.0)
    decision = assess_fleet({"app": bad}, by_id)
    assert [f.selector for f in decision.failing_cohorts] == ["apps=会計システム"]
    assert decision.verdict == Verdict.PASS


def test_two_independent_breakages_are_both_found() -> None:
    bad_kitting = failing(FLEET, lambda d: 0.4 if d.model == "dynabook G83" else 0.0)
    bad_signin = failing(FLEET, lambda d: 0.4 if d.site == "sapporo" and d.model != "dynabook G83" else 0.0, 5)
    decision = assess_fleet({"kitting": bad_kitting, "signin": bad_signin})
    assert [(f.selector, f.signal) for f in decision.failing_cohorts] == [
        ("model=dynabook G83", "kitting"), ("site=sapporo", "signin")]
    assert decision.verdict == Verdict.PASS


def test_a_cohort_failing_two_signals_has_a_finding_for_each() -> None:
    bad = failing(FLEET, lambda d: 0.5 if d.model == "MacBook Air M2" else 0.0)
    decision = assess_fleet({"signin": bad, "ztna": bad})
    assert [(f.selector, f.signal) for f in decision.failing_cohorts] == [
        ("model=MacBook Air M2", "signin"), ("model=MacBook Air M2", "ztna")]


@pytest.mark.parametrize(("failures", "min_failures", "flagged"), [(2, 3, False), (3, 3, True), (3, 4, False)])
def test_min_failures(failures: int, min_failures: int, flagged: bool) -> None:
    devices = make_devices(4, model="Surface Laptop 5") + make_devices(396, 5)
    by_id = {d.device_id: d for d in devices}
    decision = assess_fleet({"kitting": ids(devices[:failures])}, by_id, cohort={"min_failures": min_failures})
    assert bool(decision.failing_cohorts) is flagged
    assert decision.verdict == Verdict.PASS


def test_a_cohort_above_rollback_is_not_flagged_however_significant() -> None:
    bad = failing(FLEET, lambda d: 0.08 if d.model == U9 else 0.0)  # 0.92 ok: inconclusive, not a rollback
    decision = assess_fleet({"kitting": bad})
    assert decision.failing_cohorts == ()
    assert decision.verdict == Verdict.INCONCLUSIVE


# --- Fisher's exact test -----------------------------------------------------------------------

FISHER = [(0, 0, 0, 0), (0, 10, 3, 100), (1, 0, 0, 1), (1, 1, 1, 1), (5, 5, 5, 5), (10, 0, 0, 10), (0, 10, 10, 0),
          (3, 10, 2, 200), (2, 98, 1, 899), (45, 105, 3, 327), (20, 30, 5000, 25000), (300, 700, 250, 24750),
          (3000, 7000, 250, 89750), (9000, 21000, 700, 69300), (5, 0, 0, 99995), (1, 49999, 1, 49999)]


def test_fisher_by_hand() -> None:
    assert fisher_exact_greater(1, 0, 0, 1) == pytest.approx(0.5)
    assert fisher_exact_greater(0, 10, 3, 100) == 1.0
    assert fisher_exact_greater(2, 0, 0, 198) == pytest.approx(1 / math.comb(200, 2))
    # P(X >= 2) with 3 failures among 6, cohort of 3: (C(3,2)C(3,1) + C(3,3)) / C(6,3) = 10 / 20
    assert fisher_exact_greater(2, 1, 1, 2) == pytest.approx(0.5)


@pytest.mark.parametrize("table", FISHER, ids=[str(t) for t in FISHER])
def test_fisher_matches_scipy(table: tuple[int, int, int, int]) -> None:
    stats = pytest.importorskip("scipy.stats")
    a, b, c, d = table
    expected = stats.fisher_exact([[a, b], [c, d]], alternative="greater")[1]
    assert fisher_exact_greater(*table) == pytest.approx(expected, rel=1e-8, abs=1e-300)


def test_fisher_matches_scipy_on_random_tables() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(1)
    for _ in range(300):
        a, b, c, d = (rng.randrange(rng.choice([5, 50, 500, 5000])) for _ in range(4))
        expected = stats.fisher_exact([[a, b], [c, d]], alternative="greater")[1]
        assert fisher_exact_greater(a, b, c, d) == pytest.approx(expected, rel=1e-8, abs=1e-300), (a, b, c, d)


# --- output ------------------------------------------------------------------------------------

def test_same_evidence_in_another_order_gives_the_same_record() -> None:
    bad = failing(FLEET, lambda d: 0.30 if d.model == U9 else 0.01)
    names = list(FLEET)
    evidence = make_evidence(FLEET.values(), fail={"kitting": bad}, silent=names[::50], tickets={names[3]: 2},
                             alarms=[("b", "OK"), ("a", "INSUFFICIENT_DATA")], errors=["y", "x"])
    shuffled = list(FLEET)
    random.Random(9).shuffle(shuffled)

    def reorder(m: Any) -> dict[str, Any]:
        return {k: m[k] for k in shuffled if k in m}

    other = WaveEvidence(reorder(evidence.devices), reorder(evidence.migrated_at), reorder(evidence.reports),
                         dict(evidence.tickets), tuple(reversed(evidence.alarms)),
                         tuple(reversed(evidence.telemetry_errors)))
    first = assess_wave(make_spec(), evidence, now=NOW, bake_complete=True).to_json()
    assert first == assess_wave(make_spec(), other, now=NOW, bake_complete=True).to_json()
    assert first["failing_cohorts"][0]["selector"] == f"model={U9}"
    assert json.loads(json.dumps(first)) == first


def test_to_json_shape() -> None:
    decision = assess_wave(make_spec(), wave(10, silent=1), now=NOW, bake_complete=False)
    record = decision.to_json()
    assert list(record) == ["verdict", "signals", "reported", "expected", "coverage", "unknown", "stragglers",
                            "failing_cohorts", "reasons"]
    assert record["signals"][0] == {"name": "kitting", "value": 1.0, "measured": 9, "pass": 0.98, "rollback": 0.9,
                                    "verdict": "pending"}
    assert record["unknown"] == ["D00010"] and record["verdict"] == "pending"


@pytest.mark.parametrize(("verdicts", "expected"), [
    ((), Verdict.PASS),
    ((Verdict.PASS, Verdict.PENDING), Verdict.PENDING),
    ((Verdict.INCONCLUSIVE, Verdict.PENDING), Verdict.INCONCLUSIVE),
    ((Verdict.ERROR, Verdict.INCONCLUSIVE), Verdict.ERROR),
    ((Verdict.ERROR, Verdict.FAIL, Verdict.PASS), Verdict.FAIL),
])
def test_worst_of(verdicts: tuple[Verdict, ...], expected: Verdict) -> None:
    assert worst(*verdicts) == expected == Verdict.worst(*verdicts)
    assert [v.rank for v in Verdict] == [0, 1, 2, 3, 4]

