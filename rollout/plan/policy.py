"""The rollout policy file (YAML): waves, canary, constraints, schedule and help-desk capacity.

Validated with pydantic; ``load_policy`` reports every problem at once, each with its line and key
path (``policy.yaml:14: waves[2].size: ...``). See ``examples/policy.yaml`` for a documented example.

Wave sizes: an integer is a device count, ``"5%"`` a share of the devices being rolled out (after
exclusions, rounded half up), ``"rest"`` everything left (last wave only). The canary wave's size,
if given, is a ceiling for the canary; without it the canary is exactly the devices that cover
every cohort. Durations are ``90m``, ``36h``, ``7d`` or ``2w``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
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
from rollout.errors import PolicyError, Problem
from rollout.templating import url_problem

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MULTI_VALUED_KEYS = frozenset({"apps", "tags"})
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
        return v


class CohortSpec(Frozen):
    keys: tuple[str, ...] = ("model", "os_version", "department", "site")
    combinations: tuple[tuple[str, ...], ...] = (("model", "os_version"), ("department", "apps"))
    min_size: int = Field(default=20, ge=1)
    prefer_tags: tuple[str, ...] = ("it-volunteer", "pilot")


class SiteSeparation(Frozen):
    """Devices of these sites (matching ``tags``, if given) never share a wave."""

    sites: tuple[str, ...] = Field(min_length=2)
    tags: tuple[str, ...] = ()


class Exclusions(Frozen):
    devices: tuple[str, ...] = ()
    selectors: tuple[str, ...] = ()


class Constraints(Frozen):
    max_per_site_per_wave: dict[str, int] | int | None = None
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
    rollout: str = Field(min_length=1)
    sites: tuple[str, ...] | None = None
    default_approvals: tuple[str, ...] = ("pm",)
    separation_of_duties: bool = True
    cohorts: CohortSpec = CohortSpec()
    waves: tuple[WaveSpec, ...] = Field(min_length=1)
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
    """Read and validate a policy file; raise PolicyError listing every problem with line and key path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyError([Problem(str(path), "", f"cannot read: {err.strerror}")], source=path.name) from None
    except UnicodeDecodeError as err:
        raise PolicyError([Problem(path.name, "", f"not UTF-8 (byte offset {err.start})")], source=path.name) from None
    return parse_policy(text, source=path.name)


def parse_policy(text: str, *, source: str = "policy.yaml") -> Policy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise PolicyError([Problem(f"{source}{line}", "", f"not valid YAML: {getattr(err, 'problem', err)}")],
                          source=source) from None
    lines = _key_lines(root)
    duplicates = _duplicate_keys(root)
    if duplicates:
        raise PolicyError([Problem(f"{source}:{line}", format_key_path(path), f"duplicate of line {first}")
                           for path, line, first in duplicates], source=source)
    if not isinstance(data, dict):
        raise PolicyError([Problem(source, "", "expected a mapping of policy keys")], source=source)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(_pydantic_problems(source, lines, err), source=source) from None
    problems = [_problem(source, lines, loc, msg) for loc, msg in check_policy(policy)]
    if problems:
        raise PolicyError(problems, source=source)
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
                out.append((("waves", i, "gates", *_clean_loc(tuple(e["loc"]))), e["msg"].removeprefix("Value error, ")))
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


def _duplicate_keys(node: yaml.Node | None) -> list[tuple[tuple[Any, ...], int, int]]:
    """Keys that appear twice in one mapping (YAML keeps the last silently): (path, line, first line)."""
    out: list[tuple[tuple[Any, ...], int, int]] = []

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        if isinstance(n, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in n.value:
                line = key.start_mark.line + 1
                if key.value in seen:
                    out.append((path + (key.value,), line, seen[key.value]))
                seen.setdefault(key.value, line)
                walk(value, path + (key.value,))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, path + (i,))

    if node is not None:
        walk(node, ())
    return out


def _key_lines(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Map every key path of a composed YAML tree to its 1-based line."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                child = path + (key.value,)
                walk(value, child)
                lines[child] = key.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, path + (i,))

    if node is not None:
        walk(node, ())
    return lines


_UNION_TAG = re.compile(r"^(int|str|float|bool|none|function-\w+\[.*\]|\w+\[.*\])$")


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the branch names pydantic puts in the path of a union's errors (``dict[str,int]``, ``int``)."""
    return tuple(p for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p)))


def _pydantic_problems(source: str, lines: Mapping[tuple[Any, ...], int], err: ValidationError) -> list[Problem]:
    """One problem per key path; of a union's alternatives, the deepest path is the useful one."""
    found = [(_clean_loc(tuple(e["loc"])), e["msg"]) for e in err.errors()]
    kept = [
        (loc, msg) for loc, msg in found
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other, _ in found)
    ]
    return [_problem(source, lines, loc, msg) for loc, msg in dict(kept).items()]


def _problem(source: str, lines: Mapping[tuple[Any, ...], int], loc: tuple[Any, ...], msg: str) -> Problem:
    line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
    where = f"{source}:{line}" if line else source
    return Problem(where, format_key_path(loc), msg.removeprefix("Value error, "))


def format_key_path(loc: tuple[Any, ...]) -> str:
    """``('waves', 2, 'size')`` -> ``waves[2].size``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"
