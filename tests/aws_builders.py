"""Builders for the AWS backend's tests: a provisioned local AWS, fleets with managed nodes, and
``Faults``, a botocore ``before-send`` hook that makes AWS throttle, fail and time out.

botocore's Stubber cannot test retries (its errors are never retried); ``Faults`` answers the
request itself with a real error response (ThrottlingException, HTTP 503) that botocore parses,
counts against its retry quota and retries like AWS's own, or lets the request through and then
raises a read timeout, as when AWS did the work but the answer was lost.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.retries.standard
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session

from rollout.awslocal.site import provision
from rollout.backends.aws.backend import AwsBackend
from rollout.backends.aws.clients import AwsSettings
from rollout.core.contract import SiteContract
from rollout.core.device import Device
from rollout.plan.fleet import generate_fleet

FAST: dict[str, Any] = {"rates": {"identitystore": 1000.0, "ssm": 1000.0, "dynamodb": 1000.0, "cloudwatch": 1000.0,
                                  "sts": 1000.0}, "backoff_base": 0.002, "retry_deadline": 120.0}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self.body


def _cbor_text(text: str) -> bytes:
    data = text.encode("utf-8")
    return (bytes([0x60 + len(data)]) if len(data) < 24 else bytes([0x78, len(data)])) + data


def error_response(request: AWSPreparedRequest, protocol: str, status: int, code: str, message: str) -> AWSResponse:
    """An error answer as the service's protocol writes it, for botocore to parse."""
    headers = {"x-amzn-RequestId": "zt-fault", "x-amzn-ErrorType": code}
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        headers["Content-Type"] = "application/x-amz-json-1.1"
    elif protocol == "smithy-rpc-v2-cbor":
        body = bytes([0xA2]) + _cbor_text("__type") + _cbor_text(code) + _cbor_text("message") + _cbor_text(message)
        headers.update({"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"})
    else:
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
                "<RequestId>zt-fault</RequestId></ErrorResponse>").encode()
        headers["Content-Type"] = "text/xml"
    return AWSResponse(request.url, status, headers, _Raw(body))


@dataclass
class Faults:
    """Per request: ``throttle`` -> ThrottlingException, ``unavailable`` -> 503, ``timeout`` -> the
    request is done, then its answer is lost. ``deny`` operations answer AccessDeniedException."""

    throttle: float = 0.0
    unavailable: float = 0.0
    timeout: float = 0.0
    deny: Collection[str] = ()
    seed: int = 7
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng, self.lock, self.http = random.Random(self.seed), threading.Lock(), URLLib3Session()

    def hook(self, request: AWSPreparedRequest, event_name: str = "", **kwargs: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        protocol = wire_protocol(request)
        if operation in self.deny:
            return error_response(request, protocol, 400, "AccessDeniedException", f"not authorized to {operation}")
        with self.lock:
            draw = self.rng.random()
            self.injected["requests"] += 1
        if draw < self.throttle:
            self.injected["throttled"] += 1
            return error_response(request, protocol, 400, "ThrottlingException", "Rate exceeded")
        if draw < self.throttle + self.unavailable:
            self.injected["503"] += 1
            return error_response(request, protocol, 503, "ServiceUnavailable", "Service unavailable")
        if draw < self.throttle + self.unavailable + self.timeout:
            self.injected["timeout after the request was done"] += 1
            self.http.send(request)
            raise ReadTimeoutError(endpoint_url=request.url)
        return None

    def session(self) -> boto3.session.Session:
        """A session whose every client goes through the faults."""
        session = boto3.session.Session()
        session.events.register("before-send", self.hook)
        return session


def wire_protocol(request: AWSPreparedRequest) -> str:
    """The protocol the request speaks (and its answer must): json, smithy-rpc-v2-cbor or query."""
    kind = str(request.headers.get("Content-Type", b"") or "")
    kind = kind.decode() if isinstance(kind, bytes) else kind
    if "cbor" in kind:
        return "smithy-rpc-v2-cbor"
    return "json" if "json" in kind else "query"


def fast_botocore_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scale botocore's own retry backoff down a thousandfold: the same retries, in milliseconds."""
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "_DEFAULT_BACKOFF_CONFIG",
                        {"throttling_base_scale": 0.001, "non_throttling_base_scale": 0.001})
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "_SERVICE_BACKOFF_CONFIG", {})


def managed_fleet(n: int, seed: int = 11) -> list[Device]:
    return generate_fleet(n, seed, managed_nodes=True)


def provisioned(n: int, seed: int = 11) -> tuple[list[Device], dict[str, SiteContract]]:
    devices = managed_fleet(n, seed)
    return devices, provision(devices)


def backend(contracts: dict[str, SiteContract], waves: dict[str, int] | None = None, *,
            session_factory: Callable[[], boto3.session.Session] | None = None, **settings: Any) -> AwsBackend:
    return AwsBackend("zt-2027", contracts, waves or {"canary": 0, "wave-1": 1},
                      AwsSettings.model_validate({**FAST, **settings}), session_factory=session_factory)
