"""The rollout policy file (YAML): waves, canary, constraints, schedule and help-desk capacity.

Validated with pydantic; ``load_policy`` reports every problem at once, each with its line and key
path (``policy.yaml:14: waves[2].size: ...``). See ``examples/policy.yaml`` for a documented example.

Wave sizes: an integer is a device count, ``"5%"`` a share of the devices being rolled out (after
exclusions, rounded half up), ``"rest"`` everything left (last wave only). The canary wave's size,
if given, is a ceiling for the canary; without it the canary is exactly the devices that cover
every cohort. Durations are ``90m``, ``36h``, ``7d`` or ``2w``.

The file is read by the bounded YAML loader (``rollout.plan.yamlsafe``); numbers are finite and
bounded (``MAX_COUNT`` and the others below, durations at most 366 days), and the rollout's and
sites' names are plain identifiers (``check_identifier``), because they name files and state keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
)

from rollout.core.gatespec import (
    Duration,
    Frozen,
    GateSpec,
)
from rollout.core.selectors import Selector, SelectorSyntaxError
from rollout.errors import PolicyError, Problem
from rollout.templating import url_problem
from rollout.plan.yamlsafe import (
    YamlProblem,
    capped,
    clean_loc,
    format_key_path,
    load_yaml_file,
    located,
    parse_yaml,
    validation_problems,
)

__all__ = ["format_key_path"]  # re-exported: the plan file and the scenario name key paths the same way

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MULTI_VALUED_KEYS = frozenset({"apps", "tags"})

# Limits on numbers, so that every count, date and duration the planner computes stays in range.
MAX_COUNT = 10_000_000  # devices in a wave, a cohort's minimum, a site's cap, devices a day
MAX_WAVES = 200
MAX_TICKETS = 1_000_000_000  # tickets a day; tickets per 100 devices at most MAX_TICKETS_PER_100
MAX_TICKETS_PER_100 = 10_000
FIRST_START, LAST_START = dt.date(2000, 1, 1), dt.date(2999, 12, 31)
IDENTIFIER_LENGTH = 64
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_identifier(value: str) -> str:
    """A name that becomes a file name, a state key or an AWS name (the rollout, a site): letters,
    digits, ``-``, ``_`` and ``.``, starting with a letter or digit, at most 64 characters; so no
    ``/``, no ``..``, no absolute path, whatever the platform."""
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{value!r}: use letters, digits, '-', '_' or '.', starting with a letter or digit "
                         "(it names files, state keys and AWS resources)")
    if len(value) > IDENTIFIER_LENGTH:
        raise ValueError(f"{value[:20]!r}... is {len(value)} characters long; use at most {IDENTIFIER_LENGTH}")
    return value


Identifier = Annotated[str, AfterValidator(check_identifier)]
Count = Annotated[int, Field(le=MAX_COUNT)]


class WaveSize(Frozen):
    """How many devices a wave takes: ``count`` or ``percent`` or ``rest``."""

    kind: Literal["count", "percent", "rest"]
    value: float = 0

    @classmethod
    def parse(cls, raw: Any) -> WaveSize:
        if isinstance(raw, WaveSize):
            return raw
        if isinstance(raw, dict):
            return cls(**raw)
        if isinstance(raw, bool):
            raise ValueError("must be a count, a percentage such as '5%', or 'rest'")
        if isinstance(raw, int):
            if raw < 1:
                raise ValueError("a count must be at least 1")
            if raw > MAX_COUNT:
                raise ValueError(f"a count must be at most {MAX_COUNT:,}")
            return cls(kind="count", value=raw)
        text = str(raw).strip()
        if text == "rest":
            return cls(kind="rest")
        if text.endswith("%"):
            try:
                pct = float(text[:-1])
            except ValueError:
                pct = -1
            if not 0 < pct <= 100:
                raise ValueError(f"{text!r}: a percentage must be above 0% and at most 100%")
            return cls(kind="percent", value=pct)
        raise ValueError(f"{text!r} is not a count, a percentage such as '5%', or 'rest'")

    def resolve(self, eligible: int, remaining: int) -> int:
        """Devices this wave takes from a fleet of ``eligible``, ``remaining`` still unplaced.

        ``percent``: round-half-up of ``value% x eligible`` (5% of 9,990 -> 500).
        """
        if self.kind == "rest":
            return remaining
        if self.kind == "count":
            return int(self.value)
        return int(self.value * eligible / 100 + 0.5)

    def __str__(self) -> str:
        return {"count": f"{int(self.value)}", "percent": f"{self.value:g}%", "rest": "rest"}[self.kind]


class WaveSpec(Frozen):
    name: str = Field(min_length=1)
    canary: bool = False
    gates: dict[str, Any] | None = None  # overrides of the policy's gates for this wave
    size: Annotated[WaveSize | None, BeforeValidator(lambda v: None if v is None else WaveSize.parse(v))] = None
    bake: Duration = 0
    approvals: tuple[str, ...] | None = None

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError(f"{v!r}: use letters, digits, '-', '_' or '.' (it is used on the command line)")
        if len(v) > IDENTIFIER_LENGTH:
            raise ValueError(f"{v[:20]!r}... is {len(v)} characters long; use at most {IDENTIFIER_LENGTH}")
        return v


class CohortSpec(Frozen):
    keys: tuple[str, ...] = ("model", "os_version", "department", "site")
    combinations: tuple[tuple[str, ...], ...] = (("model", "os_version"), ("department", "apps"))
    min_size: int = Field(default=20, ge=1, le=MAX_COUNT)
    prefer_tags: tuple[str, ...] = ("it-volunteer", "pilot")


class SiteSeparation(Frozen):
    """Devices of these sites (matching ``tags``, if given) never share a wave."""

    sites: tuple[str, ...] = Field(min_length=2)
    tags: tuple[str, ...] = ()


class Exclusions(Frozen):
    devices: tuple[str, ...] = ()
    selectors: tuple[str, ...] = ()


class Constraints(Frozen):
    max_per_site_per_wave: dict[str, Count] | Count | None = None
    separate_sites: tuple[SiteSeparation, ...] = ()
    last_tags: tuple[str, ...] = ()
    exclude: Exclusions = Exclusions()

    def site_cap(self, site: str) -> int | None:
        """The most devices of ``site`` one wave may hold (``default`` applies to unnamed sites)."""
        caps = self.max_per_site_per_wave
        if caps is None or isinstance(caps, int):
            return caps
        return caps.get(site, caps.get("default"))


class MonthlyWindow(Frozen):
    """Days of every month; negative days count from the month's end (-1 is the last day)."""

    from_day: int = Field(ge=-31, le=31)
    to_day: int = Field(ge=-31, le=31)


class Blackout(Frozen):
    name: str
    start: dt.date | None = Field(default=None, alias="from")
    end: dt.date | None = Field(default=None, alias="to")
    monthly: MonthlyWindow | None = None
    sites: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Schedule(Frozen):
    start_date: dt.date
    working_days: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    blackouts: tuple[Blackout, ...] = ()

    @field_validator("start_date")
    @classmethod
    def _start_in_range(cls, v: dt.date) -> dt.date:
        if not FIRST_START <= v <= LAST_START:
            raise ValueError(f"{v} is outside {FIRST_START} to {LAST_START}; give the date the first wave starts")
        return v


class Helpdesk(Frozen):
    devices_per_day: int = Field(default=500, ge=1)
    tickets_per_100_devices: float = Field(default=0, ge=0)
    tickets_per_day: float | None = Field(default=None, gt=0)
    contact: str = ""
    faq_url: str = ""

    @field_validator("faq_url")
    @classmethod
    def _faq_url_is_safe(cls, v: str) -> str:
        """Every notice links it: an https: or mailto: address only (no javascript:, data:, http:)."""
        problem = url_problem(v) if v.strip() else ""
        if problem:
            raise ValueError(f"{v!r}: {problem}")
        return v

    def daily_capacity(self) -> int:
        """Devices the help desk can support a day: the lower of its device and ticket limits.

        400 devices/day, 5 tickets per 100 devices, 15 tickets/day -> min(400, 15 / 0.05) = 300.
        """
        limit = self.devices_per_day
        if self.tickets_per_day and self.tickets_per_100_devices:
            limit = min(limit, int(self.tickets_per_day * 100 / self.tickets_per_100_devices))
        return max(limit, 1)


class Policy(Frozen):
    rollout: Identifier
    sites: tuple[Identifier, ...] | None = None
    default_approvals: tuple[str, ...] = ("pm",)
    separation_of_duties: bool = True
    cohorts: CohortSpec = CohortSpec()
    waves: tuple[WaveSpec, ...] = Field(min_length=1, max_length=MAX_WAVES)
    constraints: Constraints = Constraints()
    schedule: Schedule
    helpdesk: Helpdesk = Helpdesk()
    gates: GateSpec = GateSpec()

    def approvals_for(self, wave: WaveSpec) -> tuple[str, ...]:
        return wave.approvals if wave.approvals is not None else self.default_approvals

    def gates_for(self, wave: WaveSpec) -> GateSpec:
        """The policy's gates with the wave's overrides applied (signals merge by name)."""
        if not wave.gates:
            return self.gates
        base = self.gates.model_dump(by_alias=True)
        over = dict(wave.gates)
        base["signals"] = {**base["signals"], **over.pop("signals", {})}
        return GateSpec.model_validate({**base, **over})

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; raise PolicyError listing every problem with line and key path.

    The file is read by the bounded YAML loader (``rollout.plan.yamlsafe``: size, nesting, value
    and alias limits), so no policy, however hostile, takes more than a moment to refuse."""
    path = Path(path)
    try:
        document = load_yaml_file(path)
    except YamlProblem as err:
        raise PolicyError(err.problems, source=path.name) from None
    return _validate(document.data, document.lines, document.duplicates, path.name)


def parse_policy(text: str, *, source: str = "policy.yaml") -> Policy:
    try:
        document = parse_yaml(text, source=source)
    except YamlProblem as err:
        raise PolicyError(err.problems, source=source) from None
    return _validate(document.data, document.lines, document.duplicates, source)


def _validate(data: Any, lines: Mapping[tuple[Any, ...], int], duplicates: Sequence[tuple[tuple[Any, ...], int, int]],
              source: str) -> Policy:
    if duplicates:
        raise PolicyError(capped([Problem(f"{source}:{line}", format_key_path(path), f"duplicate of line {first}") for path, line, first in duplicates], source),
                          source=source)
    if not isinstance(data, dict):
        raise PolicyError([Problem(source, "(top)", "expected a mapping of policy keys; see examples/policy.yaml")],
                          source=source)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(validation_problems(source, lines, err), source=source) from None
    problems = [located(source, lines, loc, msg) for loc, msg in check_policy(policy)]
    if problems:
        raise PolicyError(capped(problems, source), source=source)
    return policy


def check_policy(policy: Policy) -> list[tuple[tuple[Any, ...], str]]:
    """Rules that span several keys; each problem as ``(key path, message)``."""
    out: list[tuple[tuple[Any, ...], str]] = []
    names: dict[str, int] = {}
    for i, wave in enumerate(policy.waves):
        if wave.name in names:
            out.append((("waves", i, "name"), f"duplicate of waves[{names[wave.name]}].name"))
        names.setdefault(wave.name, i)
        if wave.canary and i != 0:
            out.append((("waves", i, "canary"), "only the first wave can be the canary"))
        if wave.size is None and not wave.canary:
            out.append((("waves", i, "size"), "missing: give a count, a percentage such as '5%', or 'rest'"))
        if wave.size is not None and wave.size.kind == "rest" and i != len(policy.waves) - 1:
            out.append((("waves", i, "size"), "'rest' is only allowed for the last wave"))
        try:
            policy.gates_for(wave)
        except ValidationError as err:
            for e in err.errors():
                out.append((("waves", i, "gates", *clean_loc(tuple(e["loc"]))), e["msg"].removeprefix("Value error, ")))
    for n, text in enumerate(policy.constraints.exclude.selectors):
        try:
            Selector.parse(text)
        except SelectorSyntaxError as err:
            out.append((("constraints", "exclude", "selectors", n), f"{err}; write it as key=value[,key=value...]"))
    percent = sum(w.size.value for w in policy.waves if w.size is not None and w.size.kind == "percent")
    if percent > 100:
        out.append((("waves",), f"wave percentages add up to {percent:g}%, more than 100%"))
    for i, combo in enumerate(policy.cohorts.combinations):
        if len(combo) < 2:
            out.append((("cohorts", "combinations", i), "a combination needs at least two keys"))
    out += _check_sites(policy)
    for i, blackout in enumerate(policy.schedule.blackouts):
        if blackout.monthly is None and (blackout.start is None or blackout.end is None):
            out.append((("schedule", "blackouts", i), "give 'from' and 'to' dates, or 'monthly'"))
        if blackout.start and blackout.end and blackout.start > blackout.end:
            out.append((("schedule", "blackouts", i, "to"), f"{blackout.end} is before 'from' {blackout.start}"))
    if not policy.schedule.working_days:
        out.append((("schedule", "working_days"), "at least one working day is needed"))
    return out + _check_helpdesk(policy.helpdesk)


def _check_helpdesk(helpdesk: Helpdesk) -> list[tuple[tuple[Any, ...], str]]:
    """The help desk's numbers within what a day's capacity can be computed from (finite already:
    the models refuse infinities and NaN)."""
    limits = {"devices_per_day": MAX_COUNT, "tickets_per_100_devices": MAX_TICKETS_PER_100,
              "tickets_per_day": MAX_TICKETS}
    out: list[tuple[tuple[Any, ...], str]] = []
    for key, limit in limits.items():
        value = getattr(helpdesk, key)
        if value is not None and value > limit:
            out.append((("helpdesk", key), f"{value:,} is more than {limit:,}; give a realistic figure"))
    return out


def _check_sites(policy: Policy) -> list[tuple[tuple[Any, ...], str]]:
    if policy.sites is None:
        return []
    known = set(policy.sites)
    out: list[tuple[tuple[Any, ...], str]] = []
    for i, rule in enumerate(policy.constraints.separate_sites):
        for site in rule.sites:
            if site not in known:
                out.append((("constraints", "separate_sites", i, "sites"), f"unknown site {site!r}"))
    caps = policy.constraints.max_per_site_per_wave
    if isinstance(caps, dict):
        for site in caps:
            if site != "default" and site not in known:
                out.append((("constraints", "max_per_site_per_wave", site), f"unknown site {site!r}"))
    for i, blackout in enumerate(policy.schedule.blackouts):
        for site in blackout.sites:
            if site not in known:
                out.append((("schedule", "blackouts", i, "sites"), f"unknown site {site!r}"))
    return out
