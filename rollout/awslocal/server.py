"""moto's AWS emulation as a real HTTP endpoint on 127.0.0.1, for the demo, the tests and the benchmarks.

``LocalAws`` runs moto's server app in a thread of this process, with two changes that make it
behave like AWS where the orchestrator depends on it:

- Requests are handled one at a time (a lock around the app). moto checks a condition and writes
  in separate steps; AWS makes each request atomic, and the state store's conditional writes rely
  on it. Connections are still accepted concurrently, and ``latency`` seconds are spent *outside*
  the lock per request, like a network round trip, so concurrent clients overlap their waits.
- ``CreateGroupMembership`` of a membership that exists answers ConflictException, as IAM Identity
  Center does (moto would add a second membership).

moto is an optional dependency: ``pip install 'zt-rollout[aws-local]'``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rollout.errors import InputError

REGION = "ap-northeast-1"
FAKE_KEY = "AKIAZTROLLOUTLOCAL00"
FAKE_SECRET = "zt-rollout-local-fake-secret-not-a-credential"


def _require_moto() -> None:
    try:
        import moto  # noqa: F401
    except ImportError:
        raise InputError("the local AWS emulation needs moto: pip install 'zt-rollout[aws-local]' "
                         "(or run `make demo-aws`).") from None


_patched = False
#: Every membership change that took effect: (verb, group id, user id), in order (for the tests).
MEMBERSHIP_LOG: list[tuple[str, str, str]] = []


def apply_aws_behaviour() -> None:
    """Make moto's identity store refuse a duplicate membership, as AWS does, and log every
    membership change that takes effect (idempotent)."""
    global _patched
    if _patched:
        return
    from moto.identitystore.exceptions import ConflictException
    from moto.identitystore.models import IdentityStoreBackend

    create, delete = IdentityStoreBackend.create_group_membership, IdentityStoreBackend.delete_group_membership

    def create_unique(self: Any, identity_store_id: str, group_id: str, member_id: dict[str, str]) -> Any:
        for membership in self.identity_stores.get(identity_store_id, _Empty()).group_memberships.values():
            if membership["GroupId"] == group_id and membership["MemberId"] == member_id:
                raise ConflictException(message="Member is already in the group",
                                        reason="UNIQUENESS_CONSTRAINT_VIOLATION")
        answer = create(self, identity_store_id, group_id, member_id)
        MEMBERSHIP_LOG.append(("create", group_id, member_id["UserId"]))
        return answer

    def delete_logged(self: Any, identity_store_id: str, membership_id: str) -> None:
        existing = self.identity_stores.get(identity_store_id, _Empty()).group_memberships.get(membership_id)
        delete(self, identity_store_id, membership_id)
        if existing is not None:
            MEMBERSHIP_LOG.append(("delete", existing["GroupId"], existing["MemberId"]["UserId"]))

    IdentityStoreBackend.create_group_membership = create_unique  # type: ignore[method-assign]
    IdentityStoreBackend.delete_group_membership = delete_logged  # type: ignore[method-assign]
    _patched = True


class _Empty:
    group_memberships: dict[str, Any] = {}


class _OneAtATime:
    """WSGI middleware: ``latency`` outside the lock, then the app under it."""

    def __init__(self, app: Callable[..., Iterable[bytes]], latency: float) -> None:
        self.app, self.latency, self.lock = app, latency, threading.Lock()
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if self.latency:
            time.sleep(self.latency)
        with self.lock:
            self.requests += 1
            return list(self.app(environ, start_response))


_serving: list[str] = []  # endpoints of the LocalAws servers running in this process


def serving_here() -> bool:
    """Whether this process's AWS SDK endpoint is a LocalAws running in this very process."""
    return os.environ.get("AWS_ENDPOINT_URL", "") in _serving


class LocalAws:
    """moto on ``http://127.0.0.1:<port>``; ``env()`` is what a client process needs to use it."""

    def __init__(self, latency: float = 0.0, port: int = 0) -> None:
        _require_moto()
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        apply_aws_behaviour()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self.app = _OneAtATime(DomainDispatcherApplication(create_backend_app), latency)
        self._server = make_server("127.0.0.1", port, self.app, threaded=True)
        self.port = int(self._server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="zt-local-aws", daemon=True)

    def start(self) -> LocalAws:
        self._thread.start()
        _serving.append(self.endpoint)
        return self

    def stop(self) -> None:
        if self.endpoint in _serving:
            _serving.remove(self.endpoint)
        self._server.shutdown()
        self._thread.join(timeout=10)

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
                "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}

    @property
    def requests(self) -> int:
        return self.app.requests

    def reset(self) -> None:
        """Forget every resource (moto's reset API) and the membership log."""
        import urllib.request

        MEMBERSHIP_LOG.clear()
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=30)


@contextmanager
def local_aws(latency: float = 0.0) -> Iterator[LocalAws]:
    """Run a ``LocalAws`` and point this process's AWS SDK at it for the duration."""
    server = LocalAws(latency).start()
    saved = {k: os.environ.get(k) for k in (*server.env(), "AWS_PROFILE", "AWS_SESSION_TOKEN")}
    os.environ.update(server.env())
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    try:
        yield server
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
