"""The rules every AWS call follows (rollout.backends.aws.calls), table-driven against a fake client and clock."""

from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.retries.standard import (
    ThrottledRetryableChecker,
    TransientRetryableChecker,
)

from rollout.backends.aws.calls import (
    ACCESS_DENIED_CODES,
    HANDLED_CODES,
    THROTTLING_CODES,
    TRANSIENT_CODES,
    AmbiguousCall,
    ApiError,
    Caller,
    RateLimits,
    action_name,
)
from rollout.errors import AwsError, AwsUnavailableError, PermissionDeniedError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "CreateGroupMembership")


class FakeClient:
    """Answers ``create_group_membership`` from a script of outcomes (exceptions or answers)."""

    class meta:  # noqa: N801 - the shape of a botocore client
        class service_model:  # noqa: N801
            signing_name = "identitystore"

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes, self.calls = list(outcomes), 0

    def create_group_membership(self, **params: Any) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else {"MembershipId": "m-1"}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def caller(clock: Clock, deadline: float = 60.0) -> Caller:
    return Caller(RateLimits({"identitystore": 0}, clock=clock, sleep=clock.sleep), deadline=deadline, base=1.0,
                  cap=8.0, clock=clock, sleep=clock.sleep, rng=random.Random(1), checkpoint=lambda point: None)


@pytest.mark.parametrize(("outcome", "retried"), [
    (client_error("ThrottlingException"), "throttled"),
    (client_error("TooManyRequestsException"), "throttled"),
    (client_error("InternalServerException", 500), "server error"),
    (client_error("Whatever", 503), "server error"),
    (EndpointConnectionError(endpoint_url="https://x"), "connection"),
    (ReadTimeoutError(endpoint_url="https://x"), "timeout"),
])
def test_retriable_failures_are_retried_with_backoff_until_they_pass(outcome: Exception, retried: str) -> None:
    clock = Clock()
    client = FakeClient(outcome, outcome, outcome)
    subject = caller(clock)
    assert subject.call(client, "CreateGroupMembership", IdentityStoreId="d-1") == {"MembershipId": "m-1"}
    assert client.calls == 4
    assert subject.stats.retries == {retried: 3}
    assert len(clock.slept) == 3 and all(0 <= s <= 8.0 for s in clock.slept)


def test_a_call_that_keeps_failing_gives_up_at_the_deadline_saying_nothing_was_lost() -> None:
    clock = Clock()
    client = FakeClient(*[client_error("ThrottlingException")] * 1000)
    with pytest.raises(AwsUnavailableError, match=r"identitystore:CreateGroupMembership kept failing "
                                                  r"\(throttled: ThrottlingException\) for 30 s; nothing was lost"):
        caller(clock, deadline=30).call(client, "CreateGroupMembership")
    assert 30 <= clock.now < 30 + 8.0


@pytest.mark.parametrize(("outcome", "ambiguous"), [
    (client_error("ThrottlingException"), False),  # refused before it happened: safe to send again
    (EndpointConnectionError(endpoint_url="https://x"), False),
    (client_error("ServiceUnavailable", 503), True),  # may have happened
    (ReadTimeoutError(endpoint_url="https://x"), True),
])
def test_a_call_without_idempotency_is_never_retried_blindly(outcome: Exception, ambiguous: bool) -> None:
    client = FakeClient(outcome)
    subject = caller(Clock())
    if ambiguous:
        with pytest.raises(AmbiguousCall, match="may or may not have happened"):
            subject.call(client, "CreateGroupMembership", idempotent=False)
        assert client.calls == 1
    else:
        subject.call(client, "CreateGroupMembership", idempotent=False)
        assert client.calls == 2


@pytest.mark.parametrize("code", sorted(ACCESS_DENIED_CODES))
def test_access_denied_names_the_action_and_who_needs_it(code: str) -> None:
    with pytest.raises(PermissionDeniedError) as raised:
        caller(Clock()).call(FakeClient(client_error(code)), "CreateGroupMembership",
                             who="the orchestrator role of site tokyo (arn:aws:iam::1:role/r)")
    assert str(raised.value).startswith(f"AWS denied identitystore:CreateGroupMembership ({code}: ")
    assert "Grant identitystore:CreateGroupMembership to the orchestrator role of site tokyo" in str(raised.value)
    assert raised.value.action == "identitystore:CreateGroupMembership"


def test_other_codes_go_to_the_caller_with_their_code() -> None:
    with pytest.raises(ApiError) as raised:
        caller(Clock()).call(FakeClient(client_error("ConflictException")), "CreateGroupMembership")
    assert raised.value.code == "ConflictException"


def test_every_handled_code_is_a_domain_error_and_botocores_retried_codes_are_all_handled() -> None:
    assert all(issubclass(kind, AwsError) for kind in HANDLED_CODES.values())
    assert set(ThrottledRetryableChecker._THROTTLED_ERROR_CODES) <= THROTTLING_CODES | TRANSIENT_CODES
    assert set(TransientRetryableChecker._TRANSIENT_ERROR_CODES) <= TRANSIENT_CODES | THROTTLING_CODES
    assert not (THROTTLING_CODES | TRANSIENT_CODES) & ACCESS_DENIED_CODES


def test_the_rate_limit_spaces_calls_across_threads() -> None:
    clock = Clock()
    limits = RateLimits({"identitystore:CreateGroupMembership": 10.0}, clock=clock, sleep=clock.sleep)
    for _ in range(31):
        limits.acquire("identitystore:CreateGroupMembership")
    assert 2.0 <= clock.now <= 2.1  # a burst of 10, then 10 a second
    assert limits.rate_of("identitystore:GetUserId") == ("identitystore", 20.0)
    assert limits.rate_of("kms:Decrypt") == ("*", 20.0)


def test_the_action_is_named_as_iam_names_it() -> None:
    class Monitoring:
        class meta:  # noqa: N801
            class service_model:  # noqa: N801
                signing_name = "monitoring"

    assert action_name(Monitoring(), "DescribeAlarms") == "cloudwatch:DescribeAlarms"



