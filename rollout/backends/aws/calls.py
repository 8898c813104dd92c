"""Every AWS call of the orchestrator goes through ``Caller.call``: rate limits, retries, backoff,
and the one place where botocore's errors become the project's (``rollout.errors``).

Rules:

1. Rate: a token bucket per API (``identitystore:CreateGroupMembership``, else per service, else
   ``DEFAULT_RATE``) caps calls per second across all worker threads; ``rates`` configures it.
2. botocore retries first (standard mode, ``total_max_attempts`` attempts in all: botocore's own
   ``max_attempts`` counts retries, one less than it says). In standard mode a sustained burst of
   throttling empties botocore's retry quota and every later call fails at once, so then:
3. the orchestrator backs off itself (full jitter, ``base * 2**n`` capped at ``cap`` seconds) and
   tries again until ``deadline`` seconds have passed; then ``AwsUnavailableError``. Throttling is
   never a device's failure.
4. A call that is not idempotent (SendCommand) is never retried blindly: after a timeout or a 5xx
   it may have happened, so ``AmbiguousCall`` is raised and the caller looks before sending again.
   Throttling and connection failures before the request was sent are safe to retry.
5. AccessDenied becomes ``PermissionDeniedError`` naming the IAM action and who needs it; every
   other error code is an ``ApiError`` for the caller to interpret (ConflictException, ...).

Nothing here logs request parameters, headers or credentials: a debug line names the API, the
outcome, the attempt and the time taken.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from rollout.errors import AwsError, AwsUnavailableError, PermissionDeniedError
from rollout.faults import FaultSwitch

log = logging.getLogger("rollout.aws")

DEFAULT_RATE = 20.0
DEFAULT_RATES: Mapping[str, float] = {
    "identitystore": 20.0,
    "ssm:SendCommand": 10.0,
    "ssm": 20.0,
    "dynamodb": 50.0,
    "cloudwatch": 10.0,
    "sts": 5.0,
}

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown", "EC2ThrottledException",
    "ThrottlingError",
})
TRANSIENT_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "InternalServerError",
    "InternalServerException", "InternalFailure", "InternalError", "ServiceUnavailable", "ServiceUnavailableException",
    "InternalServiceError", "ExpiredToken", "ExpiredTokenException",
})
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                                 "AuthorizationError", "UnrecognizedClientException", "InvalidClientTokenId"})
#: How each handled code is treated: a meta-test checks that every one maps to a domain error.
HANDLED_CODES: Mapping[str, type[AwsError]] = {
    **{c: AwsUnavailableError for c in THROTTLING_CODES | TRANSIENT_CODES},
    **{c: PermissionDeniedError for c in ACCESS_DENIED_CODES},
}
NOT_SENT = (EndpointConnectionError, ConnectTimeoutError)  # the request never reached AWS
MAYBE_SENT = (ReadTimeoutError, ConnectionClosedError, BotoConnectionError)


class ApiError(AwsError):
    """An error code the caller interprets (``code``), e.g. ConflictException or ResourceNotFoundException."""


class AmbiguousCall(AwsError):
    """A non-idempotent call failed in a way that may have happened anyway: look before sending again."""


IAM_PREFIXES = {"monitoring": "cloudwatch"}  # signing names that differ from the IAM action prefix


def action_name(client: Any, operation: str) -> str:
    """``identitystore:CreateGroupMembership``: the IAM action of an API call."""
    signing = client.meta.service_model.signing_name
    return f"{IAM_PREFIXES.get(signing, signing)}:{operation}"


def method_name(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


class RateLimits:
    """Token buckets per API, shared by every thread (rule 1)."""

    def __init__(self, rates: Mapping[str, float] | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rates = {**DEFAULT_RATES, **(rates or {})}
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def rate_of(self, action: str) -> tuple[str, float]:
        service = action.split(":")[0]
        for key in (action, service):
            if key in self.rates:
                return key, float(self.rates[key])
        return "*", DEFAULT_RATE

    def acquire(self, action: str) -> None:
        key, rate = self.rate_of(action)
        if rate <= 0:
            return
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (max(1.0, rate), now))
            tokens = min(max(1.0, rate), tokens + (now - at) * rate) - 1.0
            self._buckets[key] = (tokens, now)
            wait = -tokens / rate if tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)


@dataclass
class CallStats:
    """What the calls cost: counts per API, retries by reason, time spent backing off."""

    calls: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    backoff_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, counter: str, key: str, n: int = 1) -> None:
        with self._lock:
            getattr(self, counter)[key] += n


class Caller:
    """Calls AWS under rules 1-5 of the module docstring."""

    def __init__(self, limits: RateLimits | None = None, *, deadline: float = 300.0, base: float = 0.2,
                 cap: float = 20.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 checkpoint: Callable[[str], None] | None = None) -> None:
        self.limits = limits or RateLimits()
        self.checkpoint = checkpoint or FaultSwitch()
        self.deadline, self.base, self.cap = deadline, base, cap
        self.clock, self.sleep = clock, sleep
        self.rng = rng or random.Random()
        self.stats = CallStats()

    def call(self, client: Any, operation: str, *, who: str = "", idempotent: bool = True, **params: Any) -> Any:
        """Call ``operation`` with ``params``; ``who`` says whose role it runs as (for AccessDenied)."""
        action = action_name(client, operation)
        method = getattr(client, method_name(operation))
        give_up = self.clock() + self.deadline
        attempt = 0
        while True:
            attempt += 1
            self.limits.acquire(action)
            began = self.clock()
            self.stats.add("calls", action)
            try:
                answer = method(**params)
                log.debug("%s ok in %.0f ms (attempt %d)", action, 1000 * (self.clock() - began), attempt)
                self.checkpoint(f"after_call:{action}")
                return answer
            except ClientError as err:
                reason = self._classify(err, action, who)
                exc: Exception = err
            except NOT_SENT as err:
                reason, exc = "connection", err
            except MAYBE_SENT as err:
                reason, exc = "timeout", err
            except BotoCoreError as err:  # no credentials or region, a bad endpoint, a TLS failure
                raise AwsError(f"{action}: {err}. Check the AWS credentials, region and network, then run again; "
                               "nothing of this call was done.", action=action) from err
            log.debug("%s failed: %s (attempt %d)", action, reason, attempt)
            if not idempotent and reason not in ("throttled", "connection"):
                raise AmbiguousCall(f"{action} may or may not have happened ({reason}: {_short(exc)})",
                                    action=action) from exc
            self.stats.add("retries", reason)
            if self.clock() >= give_up:
                raise AwsUnavailableError(
                    f"{action} kept failing ({reason}: {_short(exc)}) for {self.deadline:.0f} s; nothing was lost: "
                    "run again later, or lower the rate for this API.", action=action) from exc
            self.pause(attempt)

    def pause(self, attempt: int) -> None:
        """Back off before attempt ``attempt + 1`` (full jitter, capped)."""
        pause = self.rng.uniform(0, min(self.cap, self.base * 2 ** min(attempt, 16)))
        self.stats.backoff_seconds += pause
        self.sleep(pause)

    def _classify(self, err: ClientError, action: str, who: str) -> str:
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in ACCESS_DENIED_CODES:
            raise PermissionDeniedError(
                f"AWS denied {action} ({code}: {error.get('Message', '')}). Grant {action} to "
                f"{who or 'the orchestrator'}; the actions it needs are listed in stacks/README.md. "
                "Nothing of this call was done.", code=code, action=action) from None
        if code in THROTTLING_CODES:
            return "throttled"
        if code in TRANSIENT_CODES or status >= 500:
            return "server error"
        raise ApiError(f"{action}: {code}: {error.get('Message', '')}", code=code, action=action) from err


def _short(err: Exception) -> str:
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "error"))
    return type(err).__name__
