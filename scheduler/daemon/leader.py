"""Leader election on a coordination.k8s.io/v1 Lease: only the leader writes.

Same Lease semantics as client-go and the official client's `kubernetes.leaderelection`
(holderIdentity, leaseDurationSeconds, acquireTime, renewTime, leaseTransitions; duration 15 s,
renew 10 s, retry 2 s), written here because the official one falls short for a daemon: it has
no release on shutdown (a restart would wait a whole lease duration), it reads the global client
configuration instead of the ApiClient it is given, and its blocking loop cannot be stopped.
Clock skew: like client-go, expiry is judged by when *this* replica last saw the Lease change,
not by the timestamps written in it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scheduler.actuator.retry import one_line, repeated_failure_level

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _spec(lease: client.V1Lease) -> client.V1LeaseSpec:
    """The Lease's spec. A Lease without one was not written by a leader elector: an error, handled
    like a failed API call."""
    if lease.spec is None:
        raise ValueError("the leader election Lease has no spec")
    return lease.spec


@dataclass
class LeaderElector:
    api: client.ApiClient
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    on_change: Callable[[bool], None] = lambda leading: None
    request_timeout: float = 5.0  # a hung call must not freeze `leading` past the renew deadline
    # the longest lease duration honoured from another holder: a Lease rewritten to hold for days
    # (by hand, or by something that is not a replica) is taken over after this, not obeyed
    max_foreign_duration: float = 60.0
    monotonic: Callable[[], float] = time.monotonic
    _leading: bool = False
    _seen: tuple[str, str] | None = None  # (holder, renewTime) last observed
    _seen_at: float = 0.0  # when it last changed, by our monotonic clock
    _renewed_at: float = 0.0
    holder: str = ""  # who held the Lease at the last look ("" when nobody, or not looked yet)
    _failures: int = 0  # consecutive failed attempts (for the log's backoff)
    _held: bool = False  # whether somebody (us or another) held an unexpired Lease at the last look
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def somebody_leads(self) -> bool:
        """Whether this replica, or another holding an unexpired Lease, leads: what readiness
        reports, so that a Lease nobody renews (or one held by something that is not a
        replica, once its honoured duration is over) shows as an unready Deployment."""
        return self._leading or self._held

    def _set(self, leading: bool) -> None:
        if leading != self._leading:
            self._leading = leading
            log.info(
                "%s %s the leader Lease %s/%s",
                self.identity,
                "acquired" if leading else "lost",
                self.namespace,
                self.name,
            )
            self.on_change(leading)

    def try_acquire_or_renew(self) -> bool:
        """One attempt; returns whether we lead afterwards."""
        coord = client.CoordinationV1Api(self.api)
        now = _now()
        try:
            lease = coord.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.request_timeout)
        except ApiException as err:
            if err.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=int(self.lease_duration),
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            try:
                coord.create_namespaced_lease(self.namespace, body, _request_timeout=self.request_timeout)
            except ApiException as err2:
                if err2.status == 409:
                    return False  # someone else created it first
                raise
            self._renewed_at = self.monotonic()
            self.holder, self._held = self.identity, True
            return True
        spec = _spec(lease)
        holder = spec.holder_identity or ""
        observed = (holder, str(spec.renew_time))
        if observed != self._seen:
            self._seen, self._seen_at = observed, self.monotonic()
        duration = min(float(spec.lease_duration_seconds or self.lease_duration), self.max_foreign_duration)
        expired = self.monotonic() - self._seen_at > duration
        self.holder = holder
        self._held = bool(holder) and not expired
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = int(self.lease_duration)
        spec.renew_time = now
        try:
            coord.replace_namespaced_lease(
                self.name,
                self.namespace,
                lease,  # 409 if someone won the race
                _request_timeout=self.request_timeout,
            )
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        self._renewed_at = self.monotonic()
        self.holder, self._held = self.identity, True
        return True

    def step(self) -> None:
        try:
            ok = self.try_acquire_or_renew()
            self._failures = 0
        except Exception as err:  # noqa: BLE001 - API down: keep leading only until the renew deadline passes
            log.log(
                repeated_failure_level(self._failures),  # it retries every 2 s
                "leader election: %s (%d in a row); retrying in %.0fs",
                one_line(err),
                self._failures + 1,
                self.retry_period,
            )
            self._failures += 1
            self._held = False  # nobody can be seen leading
            ok = self._leading and self.monotonic() - self._renewed_at < self.renew_deadline
        self._set(ok)

    def run(self) -> None:
        while not self._stop.is_set():
            self.step()
            # a leader renews well inside its deadline; a candidate retries every retry_period
            wait = self.retry_period if not self._leading else min(self.retry_period, self.renew_deadline / 2)
            self._stop.wait(wait)

    def start(self) -> LeaderElector:
        self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        self._thread.start()
        return self

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; a leader hands the Lease back so a successor need not wait it out.
        A clean hand-back is one info line ("released"), not a loss of leadership."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if release and self._leading:
            try:
                coord = client.CoordinationV1Api(self.api)
                lease = coord.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.request_timeout)
                spec = _spec(lease)
                if spec.holder_identity == self.identity:
                    spec.holder_identity = None
                    spec.lease_duration_seconds = 1
                    spec.renew_time = _now()
                    coord.replace_namespaced_lease(
                        self.name, self.namespace, lease, _request_timeout=self.request_timeout
                    )
                    self._leading = self._held = False
                    self.holder = ""
                    log.info("%s released the leader Lease %s/%s", self.identity, self.namespace, self.name)
                    self.on_change(False)
            except Exception as err:  # noqa: BLE001 - best effort on the way out
                log.warning("could not release the leader Lease: %s", one_line(err))
        self._set(False)
