"""Cohort selectors: ``model=FMV-U9``, ``department=経理部,app=会計システム``.

A selector is a comma-separated list of ``key=value`` terms; a device matches when every term
matches (AND). A term matches when the value is among the device's values for the key, so
``app=会計システム`` matches any device that has that app among its apps. Keys are inventory columns
(``app`` and ``tag`` are the singular forms of ``apps`` and ``tags``) or extra columns.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from rollout.core.device import KEY_ALIASES, LIST_COLUMNS, REQUIRED_COLUMNS, Device


class SelectorSyntaxError(ValueError):
    """A selector string that cannot be parsed; the message says which term and why."""


@dataclass(frozen=True, slots=True)
class Selector:
    """An AND of ``key=value`` terms, kept in the order written."""

    terms: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str, *, known_keys: Collection[str] | None = None) -> Selector:
        """Parse ``key=value[,key=value...]``; with ``known_keys``, reject keys not among them."""
        terms: list[tuple[str, str]] = []
        for raw in text.split(","):
            key, eq, value = raw.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not eq or not key or not value:
                raise SelectorSyntaxError(f"{raw.strip()!r} is not key=value")
            if known_keys is not None and key not in known_keys:
                raise SelectorSyntaxError(f"unknown key {key!r} (known: {', '.join(sorted(known_keys))})")
            terms.append((key, value))
        return cls(tuple(terms))

    def matches(self, device: Device) -> bool:
        return all(value in device.values_of(key) for key, value in self.terms)

    def predicate(self) -> Callable[[Device], bool]:
        """A faster ``matches`` for scanning many devices: plain columns are read by position."""
        checks = [_term_check(key, value) for key, value in self.terms]
        if len(checks) == 1:
            return checks[0]
        return lambda d: all(check(d) for check in checks)

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.terms)


def _term_check(key: str, value: str) -> Callable[[Device], bool]:
    canon = KEY_ALIASES.get(key, key)
    if canon in REQUIRED_COLUMNS:
        index = Device._fields.index(canon)

        def equal(d: Device) -> bool:
            return bool(d[index] == value)

        return equal
    if canon in LIST_COLUMNS:
        index = Device._fields.index(canon)

        def member(d: Device) -> bool:
            return value in d[index]

        return member
    return lambda d: value in d.values_of(key)
