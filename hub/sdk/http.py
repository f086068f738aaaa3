"""An HTTP client for API connectors: timeouts, retries and errors by recovery.

- Every request has connect and read timeouts.
- Transient failures (connection errors, timeouts, HTTP 429 and 5xx, a 2xx body that is
  not the JSON it should be) are retried with exponential backoff and jitter (stamina).
  A ``Retry-After`` header (seconds or an HTTP date) or a rate-limit reset header replaces
  the backoff. A wait longer than ``RetryPolicy.max_wait`` is not slept here: the request
  fails with ``RetriableError(retry_after=…)`` and the connect worker waits (and can stop
  meanwhile).
- When a response says the rate-limit budget is spent (``…RateLimit-Remaining: 0``), the
  next request waits for the reset first instead of collecting a 429.
- Credentials refused (401, 403) are a ``FatalError`` the user can act on; other client
  errors are an ``HttpStatusError`` (a ``FatalError`` with the status) that a connector
  may catch for one record.

Messages name the client, method, path and status; never the query string (a search can
carry an e-mail address), a header (credentials) or a body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import stamina
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from hub.errors import FatalError, RetriableError

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "hub_http_requests_total", "HTTP requests made by connectors", ["client", "outcome"]
)

_RATE_REMAINING = ("ratelimit-remaining", "rate-limit-remaining")
_RATE_RESET = ("ratelimit-reset", "rate-limit-reset")
_RATE_INTERVAL_MS = "ratelimit-interval-milliseconds"  # HubSpot's window length
_EPOCH_THRESHOLD = 1_000_000_000  # a reset larger than this is a Unix time, not seconds


class RetryPolicy(BaseModel):
    """How an ``HttpClient`` waits and retries."""

    model_config = ConfigDict(frozen=True)

    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    attempts: int = Field(default=5, ge=1, description="Tries per request, the first included")
    backoff_initial: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=20.0, ge=0)
    jitter: float = Field(default=0.5, ge=0)
    max_wait: float = Field(
        default=30.0, ge=0, description="Longer server-asked waits go back to the worker"
    )


class HttpStatusError(FatalError):
    """The server refused the request (a 4xx other than 429; 401/403 say the credentials
    were refused). ``status`` lets a connector treat one record's 403 or 404 apart."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class _Transient(Exception):
    """A failure worth retrying; ``wait`` is what the server asked for (None: backoff)."""

    def __init__(self, what: str, wait: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.wait = wait


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def _header(headers: httpx.Headers, suffixes: tuple[str, ...]) -> str | None:
    for name, value in headers.items():
        if name.lower().endswith(suffixes):
            return value
    return None


def rate_limit_wait(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds until the rate-limit window resets, from ``Retry-After`` or the common
    reset headers (``RateLimit-Reset``, ``X-RateLimit-Reset``, ``X-Rate-Limit-Reset``, in
    seconds or as a Unix time) or HubSpot's ``…-Interval-Milliseconds``."""
    current = now if now is not None else time.time()
    wait = parse_retry_after(headers.get("retry-after"), current)
    if wait is not None:
        return wait
    reset = _header(headers, _RATE_RESET)
    if reset is not None:
        try:
            number = float(reset)
        except ValueError:
            return parse_retry_after(reset, current)
        return max(0.0, number - current) if number > _EPOCH_THRESHOLD else max(0.0, number)
    interval = _header(headers, (_RATE_INTERVAL_MS,))
    if interval is not None:
        try:
            return max(0.0, float(interval) / 1000.0)
        except ValueError:
            return None
    return None


def budget_spent(headers: httpx.Headers) -> bool:
    remaining = _header(headers, _RATE_REMAINING)
    if remaining is None:
        return False
    try:
        return float(remaining) <= 0
    except ValueError:
        return False


class HttpClient:
    """JSON over HTTP with the retry policy above. One per connector (not thread-safe)."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._not_before = 0.0  # monotonic time before which the budget is spent
        self._client = httpx.Client(
            base_url=base_url,
            auth=auth,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(self.policy.read_timeout, connect=self.policy.connect_timeout),
            follow_redirects=False,
        )
        self.requests = 0  # made, retries included

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- public ---------------------------------------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request_json("GET", path, params=params)

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """The decoded JSON body of a 2xx answer, after retries; see the module doc."""
        return self._with_retries(method, path, params, json, want_json=True)[1]

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """A 2xx answer, after retries; see the module doc."""
        return self._with_retries(method, path, params, json, want_json=False)[0]

    def _with_retries(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        *,
        want_json: bool,
    ) -> tuple[httpx.Response, Any]:
        where = f"{self.name}: {method} {path.split('?', 1)[0]}"
        policy = self.policy
        last: _Transient | None = None
        try:
            for attempt in stamina.retry_context(
                on=self._backoff_hook,
                attempts=policy.attempts,
                timeout=None,
                wait_initial=policy.backoff_initial,
                wait_max=policy.backoff_max,
                wait_jitter=policy.jitter,
            ):
                with attempt:
                    try:
                        return self._once(method, path, params, json, want_json, where)
                    except _Transient as exc:
                        last = exc
                        raise
        except _Transient as exc:
            last = exc
        assert last is not None
        REQUESTS.labels(self.name, "gave_up").inc()
        raise RetriableError(
            f"{where}: {last.what} after {policy.attempts} attempts", retry_after=last.wait
        )

    # -- one attempt ---------------------------------------------------------------------------

    def _backoff_hook(self, exc: Exception) -> bool | float:
        if not isinstance(exc, _Transient):
            return False
        if exc.wait is None:
            return True
        if exc.wait > self.policy.max_wait:
            return False  # too long to sleep here: the worker waits instead
        return exc.wait

    def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        want_json: bool,
        where: str,
    ) -> tuple[httpx.Response, Any]:
        wait = self._not_before - time.monotonic()
        if wait > 0:
            if wait > self.policy.max_wait:
                raise _Transient("rate limit budget spent", wait)
            self._sleep(wait)
        self.requests += 1
        try:
            response = self._client.request(method, path, params=params, json=json)
        except httpx.TimeoutException:
            REQUESTS.labels(self.name, "timeout").inc()
            raise _Transient("timed out") from None
        except httpx.TransportError as exc:
            REQUESTS.labels(self.name, "transport_error").inc()
            raise _Transient(f"connection failed ({type(exc).__name__})") from None
        status = response.status_code
        if budget_spent(response.headers):
            reset = rate_limit_wait(response.headers)
            if reset is not None:
                self._not_before = time.monotonic() + reset
        if status == 429 or status >= 500:
            REQUESTS.labels(self.name, str(status)).inc()
            asked = rate_limit_wait(response.headers) if status in (429, 503) else None
            raise _Transient(f"HTTP {status}", asked)
        if status in (401, 403):
            REQUESTS.labels(self.name, str(status)).inc()
            raise HttpStatusError(
                f"{where}: HTTP {status}: the credentials were refused "
                "(expired, revoked or missing a scope); update them and restart the connector",
                status=status,
            )
        if status >= 400:
            REQUESTS.labels(self.name, str(status)).inc()
            raise HttpStatusError(f"{where}: HTTP {status}", status=status)
        body: Any = None
        if want_json:
            try:
                body = response.json()
            except ValueError:
                REQUESTS.labels(self.name, "bad_json").inc()
                raise _Transient(f"HTTP {status} with a body that is not JSON") from None
        REQUESTS.labels(self.name, "ok").inc()
        return response, body


def utc_from_millis(value: Any) -> datetime | None:
    """A timestamp in epoch milliseconds (as many APIs send them) as an aware datetime."""
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


__all__ = [
    "HttpClient",
    "HttpStatusError",
    "RetryPolicy",
    "budget_spent",
    "parse_retry_after",
    "rate_limit_wait",
    "utc_from_millis",
]
