"""One device of the fleet, as every layer sees it: the inventory's columns and the ``Device`` record.

Loading an inventory file is ``rollout.plan.inventory``'s job; this module only holds the record,
so that the pure core (selectors, gates, engine) and the stores can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

REQUIRED_COLUMNS = ("device_id", "hostname", "serial", "user", "site", "department", "model", "os", "os_version")
LIST_COLUMNS = ("apps", "tags")
COLUMNS = REQUIRED_COLUMNS + LIST_COLUMNS
LIST_SEPARATOR = ";"


class Device(NamedTuple):
    """One device of the fleet. Immutable; ``attributes`` holds extra columns as sorted pairs."""

    device_id: str
    hostname: str
    serial: str
    user: str
    site: str
    department: str
    model: str
    os: str
    os_version: str
    apps: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()

    def values_of(self, key: str) -> tuple[str, ...]:
        """All values of ``key`` for this device: one for plain fields, any number for apps/tags.

        ``app`` and ``tag`` are accepted for ``apps`` and ``tags``; other keys look in attributes.
        An unknown key gives no values.
        """
        key = KEY_ALIASES.get(key, key)
        if key in LIST_COLUMNS:
            return getattr(self, key)  # type: ignore[no-any-return]
        if key in REQUIRED_COLUMNS:
            return (getattr(self, key),)
        for name, value in self.attributes:
            if name == key:
                return (value,)
        return ()

    def to_record(self) -> dict[str, str]:
        """The device as one inventory row (lists joined with ``;``), extra columns last."""
        row = {c: getattr(self, c) for c in REQUIRED_COLUMNS}
        row["apps"] = LIST_SEPARATOR.join(self.apps)
        row["tags"] = LIST_SEPARATOR.join(self.tags)
        row.update(self.attributes)
        return row


KEY_ALIASES = {"app": "apps", "tag": "tags"}


def parse_record(record: Mapping[str, str]) -> Device:
    """A device from ``Device.to_record()`` output (trusted: written by this program)."""
    values = dict(record)
    lists = {k: tuple(v for v in values.pop(k, "").split(LIST_SEPARATOR) if v) for k in LIST_COLUMNS}
    plain = {c: values.pop(c) for c in REQUIRED_COLUMNS}
    return Device(**plain, apps=lists["apps"], tags=lists["tags"], attributes=tuple(sorted(values.items())))
