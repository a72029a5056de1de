"""A small HTTP client for every external endpoint: one base URL, a client-side rate limit, and
retries that respect the server (429 + Retry-After, 5xx, dropped connections) before giving up with
an error that names the URL.

    client = HttpClient("https://npiregistry.cms.hhs.gov", rate_limit=2.0)
    data = client.get_json("/api/", params={"version": "2.1", "number": "1234567893"})

The Airflow hook (`claimsflow_airflow.hooks.endpoint`) builds one from a connection; the domain code only
sees this class, so it runs and is tested without Airflow.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from include.common.errors import HttpError

log = logging.getLogger("claimsflow.http")

DEFAULT_USER_AGENT = "claimsflow/1.0 (+https://github.com/claimsflow)"
RETRYABLE_EXCEPTIONS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class RateLimiter:
    """Token bucket shared by the threads of one client: at most `rate` requests per second on
    average, `burst` at once. `acquire()` blocks until a token is free."""

    def __init__(self, rate: float, burst: int | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate limit must be positive, got {rate}")
        self.rate = float(rate)
        self.burst = max(1, int(burst if burst is not None else 1))
        self._tokens = float(self.burst)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token; returns how long the caller waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return waited
                wait = (1 - self._tokens) / self.rate
            self._sleep(wait)
            waited += wait

    def penalise(self, seconds: float) -> None:
        """The server said slow down (429): no request from this client for `seconds`."""
        with self._lock:
            self._tokens = min(self._tokens, 0.0) - seconds * self.rate


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # total tries per request
    backoff: float = 1.0  # first wait; doubles each time, with jitter
    max_backoff: float = 60.0
    max_retry_after: float = 300.0  # a Retry-After longer than this fails the request instead of sleeping
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 500, 502, 503, 504}))

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter, not crypto


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def redact(url: str) -> str:
    """A URL fit for a log line: no user:password part."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return parts.geturl()


class HttpClient:
    """Requests against one endpoint with rate limiting and retries. Thread-safe for concurrent use."""

    def __init__(
        self,
        base_url: str,
        *,
        rate_limit: float | None = None,
        burst: int | None = None,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: Any = None,
    ) -> None:
        if not urlsplit(base_url).scheme:
            raise ValueError(f"base URL needs a scheme (http/https): {base_url!r}")
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        # `limiter` (anything with acquire()/penalise(), e.g. PgRateLimiter shared across workers) wins
        # over the per-client token bucket of `rate_limit`.
        self.limiter = limiter or (RateLimiter(rate_limit, burst, sleep=sleep) if rate_limit else None)
        self._sleep = sleep
        self._local = threading.local()
        self._headers = {"User-Agent": DEFAULT_USER_AGENT, **(headers or {})}
        self._auth = auth
        self.requests_sent = 0
        self._count_lock = threading.Lock()

    # One requests.Session per thread: sessions are not guaranteed thread-safe.
    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            if self._auth:
                session.auth = self._auth
            self._local.session = session
        return session

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    def url(self, path_or_url: str) -> str:
        """Absolute URLs pass through; paths are resolved against the base URL."""
        if urlsplit(path_or_url).scheme:
            return path_or_url
        return urljoin(self.base_url, path_or_url.lstrip("/"))

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        accept: Iterable[int] = (200,),
    ) -> requests.Response:
        """Send with retries; returns a response whose status is in `accept`, else raises HttpError."""
        url = self.url(path_or_url)
        accept = frozenset(accept)
        last_problem = ""
        for attempt in range(1, self.retry.attempts + 1):
            if self.limiter:
                self.limiter.acquire()
            with self._count_lock:
                self.requests_sent += 1
            try:
                response = self.session.request(method, url, params=params, headers=headers, stream=stream,
                                                timeout=self.timeout, allow_redirects=True)
            except RETRYABLE_EXCEPTIONS as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                wait = self.retry.delay(attempt)
            else:
                if response.status_code in accept:
                    return response
                status = response.status_code
                body = _snippet(response)
                response.close()
                if status not in self.retry.statuses:
                    raise HttpError(f"{method} answered HTTP {status}: {body}", source=redact(url), status=status)
                last_problem = f"HTTP {status}: {body}"
                wait = self.retry.delay(attempt)
                server_wait = retry_after_seconds(response.headers.get("Retry-After"))
                if server_wait is not None:
                    if server_wait > self.retry.max_retry_after:
                        raise HttpError(f"server asks to retry after {server_wait:.0f}s (limit "
                                        f"{self.retry.max_retry_after:.0f}s)", source=redact(url), status=status)
                    wait = max(server_wait, 0.0)
                if status == 429 and self.limiter:
                    self.limiter.penalise(wait)
            if attempt < self.retry.attempts:
                log.warning("%s %s failed (%s); retry %d/%d in %.1fs", method, redact(url), last_problem,
                            attempt, self.retry.attempts - 1, wait)
                self._sleep(wait)
        raise HttpError(f"{method} failed after {self.retry.attempts} attempts; last: {last_problem}", source=redact(url))

    def get(self, path_or_url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path_or_url, **kwargs)

    def get_text(self, path_or_url: str, **kwargs: Any) -> str:
        response = self.get(path_or_url, **kwargs)
        return response.text

    def get_json(self, path_or_url: str, *, params: dict[str, Any] | None = None) -> Any:
        """GET and decode JSON; a body that is not JSON counts as a failed attempt (servers under load
        answer HTML error pages with 200), and fails for good after the retries."""
        url = self.url(path_or_url)
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            response = self.get(url, params=params)
            try:
                return response.json()
            except (ValueError, json.JSONDecodeError) as exc:
                last = f"not JSON ({exc}): {_snippet(response)}"
            if attempt < self.retry.attempts:
                wait = self.retry.delay(attempt)
                log.warning("GET %s answered %s; retry %d/%d in %.1fs", redact(response.url), last, attempt,
                            self.retry.attempts - 1, wait)
                self._sleep(wait)
        raise HttpError(f"GET answered something that is not JSON {self.retry.attempts} times; last: {last}",
                        source=redact(url))


def _snippet(response: requests.Response, limit: int = 200) -> str:
    try:
        text = response.text
    except Exception:  # a body we cannot read is only reported, never raised
        text = ""
    text = " ".join(text.split())
    return (text[:limit] + "...") if len(text) > limit else text or "(no body)"
