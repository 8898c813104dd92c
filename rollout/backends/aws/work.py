"""One device's work in an AWS backend call, and the call's error budget (SSM's MaxErrors).

``Budget(N)``: the N+1-th failed device spends it (``spent``), and the backend dispatches no more
devices in that call; failures of devices already in flight still count. ``Budget(None)`` has no
limit. Thread-safe: the backend's workers fail devices concurrently.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rollout.core.device import Device


class DeviceFailure(Exception):
    """This device cannot be moved (no such user, no managed node): a failure of the device alone."""


@dataclass
class Work:
    device: Device
    steps: int
    error: str = ""
    failed: bool = False
    retriable: bool = False
    ref: str = ""

    @property
    def instance(self) -> str:
        return dict(self.device.attributes).get("instance_id", "")


class Budget:
    """Failures so far against ``max_errors`` (None: no limit)."""

    def __init__(self, max_errors: int | None) -> None:
        self.max_errors, self.failures = max_errors, 0
        self._lock = threading.Lock()

    def fail(self, work: Work, error: str) -> None:
        with self._lock:
            work.failed, work.error = True, error
            self.failures += 1

    @property
    def spent(self) -> bool:
        return self.max_errors is not None and self.failures > self.max_errors
