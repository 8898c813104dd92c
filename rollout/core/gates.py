"""Triage gates: judge one wave from its evidence. Pure: no I/O, no clock, no AWS, no database.

``assess_wave(spec, evidence, now=..., bake_complete=...) -> GateDecision``. The rules:

1. Evidence. A report counts for a device only if ``report.at >= migrated_at[device]``. Devices
   without one are *unknown*: never healthy, never failing.
2. Stragglers: unknown devices silent for more than ``spec.checkin_deadline`` seconds since their
   migration. They leave ``expected`` (the engine defers or excepts them) but stay in ``unknown``.
3. Signals, over the judged devices (below). A rate (kitting, signin, ztna, app) is ok / measured
   over the valid reports that measured it: PASS at or above ``pass``, FAIL below ``rollback``,
   INCONCLUSIVE between; PENDING when measured on fewer than ``needed`` check-ins (see 4).
   ``tickets_per_100`` is 100 x tickets / judged devices (reported or not), mirrored: PASS at or
   below ``pass``, FAIL above ``rollback``.
4. Evidence threshold: ``needed = min(min_checkins, expected)``. With fewer valid reports (or
   ``expected == 0``) every signal is PENDING. A FAIL needs only that: it waits neither for the
   coverage nor for the bake.
5. PASS needs: the bake complete, ``coverage >= spec.coverage``, every signal PASS, no alarm in
   ALARM or INSUFFICIENT_DATA, no telemetry error. While waiting (bake running, coverage short,
   too few check-ins) INCONCLUSIVE signals and INSUFFICIENT_DATA alarms give PENDING; after it, a
   signal still between thresholds or unmeasured, or an alarm without data, gives INCONCLUSIVE.
6. An alarm in ALARM gives FAIL; a telemetry error gives ERROR. The wave's verdict is the worst
   of every rule that fired (PASS < PENDING < INCONCLUSIVE < ERROR < FAIL) and ``reasons`` are the
   sentences of the rules at that level, after one sentence per failing cohort.
7. Concentrated failures. Each ``key=value`` of ``spec.cohort.keys`` present among the reported
   devices (one cohort per app for multi-valued keys) is tested per rate signal: ``a``/``b``
   failures/successes in the cohort, ``c``/``d`` in the rest of the wave. It qualifies when
   ``a >= min_failures``, its own rate is below ``rollback`` and the one-sided Fisher p <= alpha.
   Overlaps are resolved greedily: the qualifying cohort with the smallest p (ties: earlier key in
   ``cohort.keys``, then value) is a finding, for every signal it qualifies on; its devices are
   then removed and the remaining cohorts are re-tested on the devices left, until none qualifies.
   So a department whose breakage also shows up in each of its apps, or in an OS build that most
   of a failing laptop model runs, is reported once, while an independent second breakage is still
   found. The signals and the verdict are then judged on the devices *outside* every finding
   (``reported``/``expected``/``coverage`` too). If that rest still fails a signal, the breakage is
   fleet-wide: that signal's findings are withdrawn (no cohort is blamed) and the rest re-judged.
8. Output is deterministic: sorted tuples, fixed orders, nothing taken from dict or set order.

Worked example: 500 devices migrated, 20 silent (12 for longer than the deadline), bake complete,
min_checkins 10, coverage 0.9, kitting pass 0.98 / rollback 0.90. ``expected = 500 - 12 = 488``,
``reported = 480``, coverage 0.984. The 150 ``model=M`` devices report 45 kitting failures, the
330 others 3: p = 2e-30 <= 0.001, rate 0.70 < 0.90, so ``model=M`` is a failing cohort. The rest
has 330 check-ins (expected 338, coverage 0.976) with kitting 327/330 = 0.991 >= 0.98 -> PASS:
the engine rolls back ``model=M`` only. Had the rest been at 0.88, the wave would FAIL with no
cohort blamed.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from rollout.core.device import Device
from rollout.core.fisher import log_fisher_greater
from rollout.core.gatespec import GateSpec, Threshold
from rollout.core.selectors import Selector, SelectorSyntaxError
from rollout.core.signals import LOWER_IS_BETTER, RATE_SIGNALS, SIGNALS
from rollout.core.verdicts import (
    CohortFinding,
    GateDecision,
    SignalResult,
    Verdict,
    WaveEvidence,
    finding_sentence,
    signal_sentence,
    worst,
)

# --- assessment ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Scan:
    valid: dict[str, int]  # device id -> outcome code (base 3 per rate signal: 0 unmeasured, 1 ok, 2 failed)
    unknown: tuple[str, ...]
    stragglers: frozenset[str]


def assess_wave(spec: GateSpec, evidence: WaveEvidence, *, now: datetime, bake_complete: bool) -> GateDecision:
    """Judge one wave (see the module docstring for the rules)."""
    missing = sorted(evidence.devices.keys() - evidence.migrated_at.keys())
    if missing:
        raise ValueError(f"devices without a migration time: {', '.join(missing[:5])}")
    rates = tuple(s for s in RATE_SIGNALS if s in spec.signals)
    scan = _scan(evidence, rates, spec.checkin_deadline, now)
    findings = _find_cohorts(spec, rates, evidence.devices, scan)
    while True:
        pop = _Population.of(evidence, scan, findings)
        signals = _judge_signals(spec, rates, pop)
        failed = {s.name for s in signals if s.verdict == Verdict.FAIL}
        if not any(f.signal in failed for f in findings):
            break
        findings = [f for f in findings if f.signal not in failed]  # fleet-wide: blame no cohort
    verdict, reasons = _conclude(spec, evidence, signals, pop, bake_complete)
    cohort_reasons = [finding_sentence(f) for f in findings]
    return GateDecision(verdict, signals, pop.reported, pop.expected, pop.coverage, scan.unknown,
                        tuple(sorted(scan.stragglers)), tuple(findings), tuple(cohort_reasons + reasons))


def _scan(evidence: WaveEvidence, rates: tuple[str, ...], deadline: int, now: datetime) -> _Scan:
    weights = tuple(zip((3 ** i for i in range(len(rates))), rates))
    valid: dict[str, int] = {}
    unknown: list[str] = []
    stragglers: set[str] = set()
    for device_id in evidence.devices:
        migrated = evidence.migrated_at[device_id]
        report = evidence.reports.get(device_id)
        if report is None or report.at < migrated:
            unknown.append(device_id)
            if (now - migrated).total_seconds() > deadline:
                stragglers.add(device_id)
            continue
        code, checks = 0, report.checks
        for weight, name in weights:
            ok = checks.get(name)
            if ok is not None:
                code += weight if ok else 2 * weight
        valid[device_id] = code
    return _Scan(valid, tuple(sorted(unknown)), frozenset(stragglers))


def _split(codes: Mapping[int, int], weight: int) -> tuple[int, int]:
    """(failures, successes) of the rate signal at ``weight`` among outcome-code counts."""
    fails = oks = 0
    for code, count in codes.items():
        digit = code // weight % 3
        if digit == 1:
            oks += count
        elif digit == 2:
            fails += count
    return fails, oks


@dataclass(frozen=True, slots=True)
class _Population:
    """The judged devices: the wave outside the failing cohorts."""

    codes: Counter[int]
    devices: int
    reported: int
    expected: int
    tickets: int

    @property
    def coverage(self) -> float:
        return self.reported / self.expected if self.expected else 0.0

    @classmethod
    def of(cls, evidence: WaveEvidence, scan: _Scan, findings: Sequence[CohortFinding]) -> _Population:
        terms = {t for f in findings for t in Selector.parse(f.selector).terms}
        codes: Counter[int] = Counter()
        devices = stragglers = tickets = 0
        for device_id, device in evidence.devices.items():
            if terms and any(value in device.values_of(key) for key, value in terms):
                continue
            devices += 1
            tickets += evidence.tickets.get(device_id, 0)
            code = scan.valid.get(device_id)
            if code is not None:
                codes[code] += 1
            elif device_id in scan.stragglers:
                stragglers += 1
        return cls(codes, devices, sum(codes.values()), devices - stragglers, tickets)

def _judge_signals(spec: GateSpec, rates: tuple[str, ...], pop: _Population) -> tuple[SignalResult, ...]:
    needed = min(spec.min_checkins, pop.expected)
    enough = pop.expected > 0 and pop.reported >= needed
    out: list[SignalResult] = []
    for name in SIGNALS:
        threshold = spec.signals.get(name)
        if threshold is None:
            continue
        if name in LOWER_IS_BETTER:
            measured = pop.devices
            value = 100 * pop.tickets / measured if measured else None
        else:
            fails, oks = _split(pop.codes, 3 ** rates.index(name))
            measured = fails + oks
            value = oks / measured if measured else None
        verdict = Verdict.PENDING
        if enough and value is not None and measured >= needed:
            verdict = _threshold_verdict(name, value, threshold)
        out.append(SignalResult(name, value, measured, threshold.pass_, threshold.rollback, verdict))
    return tuple(out)


def _threshold_verdict(name: str, value: float, t: Threshold) -> Verdict:
    if name in LOWER_IS_BETTER:
        return Verdict.PASS if value <= t.pass_ else Verdict.FAIL if value > t.rollback else Verdict.INCONCLUSIVE
    return Verdict.PASS if value >= t.pass_ else Verdict.FAIL if value < t.rollback else Verdict.INCONCLUSIVE


def _conclude(spec: GateSpec, evidence: WaveEvidence, signals: tuple[SignalResult, ...], pop: _Population,
              bake_complete: bool) -> tuple[Verdict, list[str]]:
    """Every rule that fires gives (verdict, sentence); the worst verdict wins, with its sentences."""
    needed = min(spec.min_checkins, pop.expected)
    enough = pop.expected > 0 and pop.reported >= needed
    covered = pop.expected > 0 and pop.coverage >= spec.coverage
    later = Verdict.INCONCLUSIVE if bake_complete and covered and enough else Verdict.PENDING
    rules: list[tuple[Verdict, str]] = []
    for alarm in sorted(evidence.alarms, key=lambda a: (a.name, a.state)):
        if alarm.state == "ALARM":
            rules.append((Verdict.FAIL, f"alarm {alarm.name} is in ALARM"))
        elif alarm.state != "OK":
            rules.append((later, f"alarm {alarm.name} is in {alarm.state}: no data, no pass"))
    rules += [(Verdict.ERROR, f"telemetry read failed: {msg}") for msg in sorted(evidence.telemetry_errors)]
    if pop.expected == 0:
        rules.append((Verdict.INCONCLUSIVE if bake_complete else Verdict.PENDING,
                      f"no device is expected to report ({pop.devices} judged, all of them stragglers)"))
    elif not enough:
        rules.append((Verdict.PENDING, f"{pop.reported} valid check-ins, fewer than the {needed} needed"))
    rules.append((Verdict.PASS, "the bake is complete") if bake_complete else
                 (Verdict.PENDING, "the bake is not complete"))
    if pop.expected:
        sign = ">=" if covered else "<"
        rules.append((Verdict.PASS if covered else Verdict.PENDING, f"coverage {pop.coverage:.3f} {sign} "
                      f"{spec.coverage:g} ({pop.reported} of {pop.expected} expected devices reported)"))
    if enough:
        for s in signals:
            verdict = later if s.verdict in (Verdict.PENDING, Verdict.INCONCLUSIVE) else s.verdict
            rules.append((verdict, signal_sentence(s, needed)))
    verdict = worst(*(v for v, _ in rules))
    return verdict, [sentence for v, sentence in rules if v == verdict]


# --- concentrated failures -----------------------------------------------------------------------

Profile = tuple[tuple[str, ...], ...]  # a device's values for each cohort key


def _find_cohorts(spec: GateSpec, rates: tuple[str, ...], devices: Mapping[str, Device],
                  scan: _Scan) -> list[CohortFinding]:
    """Greedy: the most significant qualifying cohort, then re-test on the devices it leaves."""
    keys = tuple(dict.fromkeys(spec.cohort.keys))
    live: Counter[tuple[Profile, int]] = Counter()  # one pass: devices grouped by (profile, outcome)
    for device_id, code in scan.valid.items():
        device = devices[device_id]
        live[(tuple(device.values_of(k) for k in keys), code)] += 1
    findings: list[CohortFinding] = []
    while rates:
        picked = _best_cohort(spec, rates, keys, live)
        if picked is None:
            break
        (rank, value), found = picked
        findings += found
        live = Counter({pc: n for pc, n in live.items() if value not in pc[0][rank]})
    return findings


def _best_cohort(spec: GateSpec, rates: tuple[str, ...], keys: tuple[str, ...],
                 live: Counter[tuple[Profile, int]]) -> tuple[tuple[int, str], list[CohortFinding]] | None:
    cohorts: defaultdict[tuple[int, str], Counter[int]] = defaultdict(Counter)
    total: Counter[int] = Counter()
    for (profile, code), n in live.items():
        total[code] += n
        for rank, values in enumerate(profile):
            for value in set(values):
                cohorts[(rank, value)][code] += n
    totals = [_split(total, 3 ** i) for i in range(len(rates))]
    best: tuple[float, tuple[int, str], list[CohortFinding]] | None = None
    for cohort in sorted(cohorts):
        selector = _selector(keys[cohort[0]], cohort[1])
        if selector is None:
            continue
        tested = [_test_cohort(spec, name, 3 ** i, cohorts[cohort], totals[i], selector)
                  for i, name in enumerate(rates)]
        found = [t for t in tested if t is not None]
        if found and (best is None or min(p for p, _ in found) < best[0]):
            best = (min(p for p, _ in found), cohort, [f for _, f in found])
    return None if best is None else (best[1], best[2])


def _test_cohort(spec: GateSpec, name: str, weight: int, codes: Counter[int], totals: tuple[int, int],
                 selector: str) -> tuple[float, CohortFinding] | None:
    """(log p, finding) when the cohort qualifies on this signal (rule 7), else None."""
    a, b = _split(codes, weight)
    if a < spec.cohort.min_failures or b / (a + b) >= spec.signals[name].rollback:
        return None
    c, d = totals[0] - a, totals[1] - b
    log_p = log_fisher_greater(a, b, c, d)
    if log_p > math.log(spec.cohort.alpha):
        return None
    return log_p, CohortFinding(selector, name, a, a + b, c, c + d, math.exp(log_p))


def _selector(key: str, value: str) -> str | None:
    """``key=value`` if it parses back to exactly that term (a value with a comma cannot)."""
    text = f"{key}={value}"
    try:
        return text if Selector.parse(text).terms == ((key, value),) else None
    except SelectorSyntaxError:
        return None
