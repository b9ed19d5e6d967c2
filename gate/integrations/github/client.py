"""GitHub's REST API for the sticky pull-request comment (the only requests importer).

The calls perf-gate makes (list an issue's comments, create one, update one; the token's user;
an issue; the poster's pull request and workflow run look-ups), each sent with the JSON media
type, an API version, a timeout and the token as a bearer header. The client obeys GitHub's
rules for rate limits (``retry-after`` first, then ``x-ratelimit-reset`` when
``x-ratelimit-remaining`` is 0, else a minute for a secondary limit) within a bounded waiting
budget, retries server errors with backoff, and turns every other failure into a
:class:`GitHubError` with a message that says what to do.

Every call ends by a deadline (connect, headers, body and retries together): a per-read
timeout alone never fires on a server that sends one byte every few seconds, so a watchdog
shuts the call's socket down when the deadline passes. Every answer is checked before use:
a 2xx that is not JSON, or JSON of another shape, is a GitHubError, never a traceback.

The token is a :class:`Secret`: no repr, message or exception carries it, and text that comes
back from the server (an error message that echoes the request's headers) is redacted before
it becomes part of a message.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3.poolmanager
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from gate import __version__
from gate.errors import ConfigError, PublishError

API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
READ_ONLY = "Resource not accessible by integration"
DEFAULT_DEADLINE = 30.0  # seconds one API call may take in all (see RetryPolicy.deadline)
# Who writes a comment made with the GITHUB_TOKEN of a workflow run: the Actions app's bot.
ACTIONS_BOT = "github-actions[bot]"
SNIPPET = 80  # characters of an unexpected answer quoted in a message
REDACTED = "***"


class Secret:
    """A token that never shows itself: ``repr``/``str`` print ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """``text`` without this token (as it is, or URL-quoted) and without anything that
        looks like a credential (see :func:`redact`)."""
        return redact(text, self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


# A header value or a token-like word: what a server may echo from the request it refused.
_CREDENTIALS = (
    # "Authorization: Bearer x", "authorization=token x", "'Authorization': 'Basic x'"
    re.compile(
        r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|token|basic)\s+)?[^\s'\",;:]+"
    ),
    re.compile(r"(?i)\b(bearer\s+)[^\s'\",;]+"),
    re.compile(r"(?i)\b(basic\s+)[A-Za-z0-9+/=]{8,}"),
    # "token x", "access_token=x" where x looks like a credential (a digit, 8+ characters),
    # not "token is" or "token expired"
    re.compile(r"(?i)\b([\w-]*token['\"]?(?:\s*[:=]\s*|\s+)['\"]?)(?=[\w.\-/+=]*\d)[\w.\-/+=]{8,}"),
    # GitHub's token formats wherever they stand
    re.compile(r"()\b(?:gh[pousr]_[A-Za-z0-9_]{16,}|github_pat_[A-Za-z0-9_]{16,})"),
)


def redact(text: str, token: str = "") -> str:
    """``text`` with ``token`` and credential-looking values replaced by ``***``.

    Applied to everything a server sends back before it reaches a message: GitHub (or a proxy
    in front of it) may echo the refused request's ``Authorization`` header in its answer.
    """
    if token:
        for form in {token, quote(token, safe=""), quote(token)}:
            text = text.replace(form, REDACTED)
    for pattern in _CREDENTIALS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


class GitHubError(PublishError):
    """GitHub refused or failed a call; ``status`` is the HTTP status (None: no answer), and
    ``answer`` the redacted ``METHOD URL: STATUS MESSAGE`` it came from."""

    default_slug = "github"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        slug: str | None = None,
        answer: str = "",
    ) -> None:
        super().__init__(message, slug=slug)
        self.status = status
        self.answer = answer


class ReadOnlyTokenError(GitHubError):
    """403 "Resource not accessible by integration": a fork's read-only token."""

    default_slug = "github-read-only"


class NotFoundError(GitHubError):
    """404 or 410: the repository, pull request or comment does not exist (any more)."""

    default_slug = "github-not-found"


class BodyTooLongError(GitHubError):
    """422 because the comment body is longer than GitHub accepts."""

    default_slug = "github-too-long"


class LockedError(GitHubError):
    """The pull request's conversation is locked: GitHub refuses comments and edits from
    accounts without write access, whatever the workflow's permissions say."""

    default_slug = "github-locked"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Timeouts and how long the client may wait: GitHub asks clients to back off, and a CI
    step must still end."""

    timeout: float = 10.0  # seconds per connect and per read
    # seconds one call may take in all: connect, headers, body, the retries of 5xx answers and
    # failed connections, and their backoff (rate-limit waits have their own budget below)
    deadline: float = DEFAULT_DEADLINE
    tries: int = 3  # attempts for a 5xx or a connection failure
    backoff: float = 1.0  # seconds before the second attempt, doubled after
    wait_budget: float = 120.0  # seconds of rate-limit waiting in all, per client
    secondary_wait: float = 60.0  # a secondary limit without retry-after: GitHub says >= 1 min
    max_pages: int = 100  # 10,000 comments


@dataclass(frozen=True, kw_only=True)
class Comment:
    id: int
    body: str
    url: str
    author: str  # the login of its user ("" for a deleted account, GitHub's "ghost")


@dataclass(frozen=True, kw_only=True)
class Upserted:
    """What ``upsert_comment`` did: ``created`` or ``updated``, and the comment; ``foreign``
    counts the comments that carry the marker but were written by another account (left
    alone)."""

    action: str
    comment: Comment
    foreign: int = 0


# ---------------------------------------------------------------------------------------------
# the deadline: a watchdog that shuts the call's socket down

_current = threading.local()  # the _Exchange of the call this thread is making, if any


def _shut(sock: Any) -> None:
    """Wake a read blocked on ``sock``: shutdown (not close) makes it return at once."""
    raw = sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)
    if isinstance(raw, socket.socket):
        try:
            socket.socket.shutdown(raw, socket.SHUT_RDWR)
        except OSError:
            pass  # closed already: nothing is waiting on it


class _Exchange:
    """One HTTP exchange under a deadline. A timer thread shuts the sockets the exchange used
    down when the deadline passes, so a read blocked on a server that drips its answer (or its
    headers) ends then, not when the server stops. Sockets, not connections, are kept: a
    connection that will close hands its socket to the response and forgets it. Name
    resolution happens before there is a socket and is the one step no timeout bounds; a
    connection made after the deadline is shut as soon as it exists."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._done = False
        self._lock = threading.Lock()
        self._sockets: list[Any] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Exchange:
        _current.exchange = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()
        _current.exchange = None

    def watch(self, sock: Any) -> None:
        with self._lock:
            if not any(sock is known for known in self._sockets):
                self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _watch(connection: HTTPConnection) -> None:
    """Hand ``connection``'s socket (once it has one) to this thread's exchange."""
    exchange = getattr(_current, "exchange", None)
    if isinstance(exchange, _Exchange) and connection.sock is not None:
        exchange.watch(connection.sock)


class _WatchedHTTPConnection(HTTPConnection):
    """urllib3's connection whose socket is known to the exchange that uses it: a new one's
    when it connects, a kept-alive one's when a request is sent on it."""

    def connect(self) -> None:
        super().connect()
        _watch(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    """The same for HTTPS (HTTPSConnection subclasses HTTPConnection, not the watched one)."""

    connect = _WatchedHTTPConnection.connect
    request = _WatchedHTTPConnection.request


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter with watched connections, direct and through an HTTP(S) proxy (a
    SOCKS proxy keeps its own connections: its calls end by the per-read timeout only)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _POOLS
        return manager


# ---------------------------------------------------------------------------------------------
# answers


def _kind(value: Any) -> str:
    """What a JSON value is, for a message: ``a list of 2 items``, ``a string ('a/b')``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        keys = ", ".join(key[:20] for key in sorted(map(str, value))[:6])
        return f"an object with keys {keys or 'none'}"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    return f"a number ({repr(value)[:40]})"


def _message(response: requests.Response) -> str:
    """GitHub's ``message`` (and validation errors) from an error body, shortened."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return " ".join(response.text[:200].split())
    if not isinstance(body, Mapping):
        return ""
    parts = [str(body.get("message", ""))]
    errors = body.get("errors")
    for error in errors if isinstance(errors, list) else ():
        if isinstance(error, Mapping) and error.get("message"):
            parts.append(str(error["message"]))
        elif isinstance(error, str):
            parts.append(error)
    return " ".join("; ".join(p for p in parts if p).split())[:300]


class GitHubClient:
    """The REST calls perf-gate makes, against ``api_url`` (GitHub Enterprise Server:
    ``https://HOST/api/v3``). ``session``, ``sleep`` and ``clock`` are injected for tests."""

    def __init__(
        self,
        *,
        api_url: str,
        token: Secret,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        warn: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._session = session or requests.Session()
        for prefix in ("https://", "http://"):
            self._session.mount(prefix, _DeadlineAdapter())
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._warn = warn
        self._waited = 0.0
        self._login: tuple[str | None] | None = None  # the token's user, once asked

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, token={self._token!r})"

    def redact(self, text: str) -> str:
        """``text`` from the server, safe to print: see :func:`redact`."""
        return self._token.redact(text)

    def _headers(self) -> dict[str, str]:
        return {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {self._token.reveal()}",
            "User-Agent": f"perf-gate/{__version__}",
        }

    def _wait(self, seconds: float, why: str) -> None:
        """Sleep for a rate limit, or raise when that would pass the waiting budget."""
        seconds = max(seconds, 0.0)
        if self._waited + seconds > self._retry.wait_budget:
            raise GitHubError(
                f"{why}: waiting {seconds:.0f} s more would pass perf-gate's budget of "
                f"{self._retry.wait_budget:.0f} s; the comment is posted on the next run",
                slug="github-rate-limit",
            )
        self._warn(f"{why}; waiting {seconds:.0f} s")
        self._waited += seconds
        self._sleep(seconds)

    def _rate_limit_wait(self, response: requests.Response) -> tuple[float, str] | None:
        """Seconds to wait when ``response`` is a rate-limit answer, else None."""
        if response.status_code not in (403, 429):
            return None
        headers = response.headers
        retry_after = headers.get("retry-after")
        if retry_after is not None and retry_after.strip().isdigit():
            return float(retry_after), "GitHub's secondary rate limit (retry-after)"
        if headers.get("x-ratelimit-remaining") == "0":
            reset = headers.get("x-ratelimit-reset", "")
            if reset.strip().isdigit():
                return int(reset) - self._clock() + 1, "GitHub's primary rate limit"
            return self._retry.secondary_wait, "GitHub's primary rate limit"
        if "secondary rate limit" in _message(response).lower():
            return self._retry.secondary_wait, "GitHub's secondary rate limit"
        return None

    def _late(self, method: str, url: str, tries: int) -> GitHubError:
        attempts = f" ({tries} tries)" if tries > 1 else ""
        return GitHubError(
            f"{method} {url}: no complete answer within {self._retry.deadline:g} s{attempts}, "
            "perf-gate's deadline for one GitHub call; GitHub or the network is too slow, or "
            "GITHUB_API_URL is not GitHub's API; the comment is posted on the next run",
            slug="github-timeout",
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """One call with the rules above; returns a 2xx response.

        Ends by ``RetryPolicy.deadline`` (plus any rate-limit waits). Raises ConfigError for
        401, GitHubError (or a subclass) for any other failure.
        """
        deadline = time.monotonic() + self._retry.deadline
        failures = 0
        for _ in range(100):  # bounded: every path below waits, fails or returns
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._late(method, url, failures + 1)
            per_read = min(self._retry.timeout, left)
            exchange = _Exchange(left)
            try:
                with exchange:
                    response = self._session.request(
                        method,
                        url,
                        params=params,
                        json=json,
                        headers=self._headers(),
                        timeout=(per_read, per_read),
                        allow_redirects=False,
                    )
            except requests.RequestException as exc:
                failures += 1
                pause = self._retry.backoff * 2 ** (failures - 1)
                if exchange.expired or time.monotonic() + pause >= deadline:
                    raise self._late(method, url, failures) from None
                if failures >= self._retry.tries:
                    raise GitHubError(
                        f"{method} {url}: no answer after {failures} tries ({type(exc).__name__})",
                        slug="github-unavailable",
                    ) from None
                self._sleep(pause)
                continue
            if exchange.expired:  # a close-delimited body cut short by the watchdog reads as whole
                raise self._late(method, url, failures + 1)
            if response.status_code < 300:
                return response
            wait = self._rate_limit_wait(response)
            if wait is not None:
                self._wait(*wait)
                deadline += max(wait[0], 0.0)  # waiting is budgeted apart, not a slow answer
                continue
            if response.status_code >= 500:
                failures += 1
                pause = self._retry.backoff * 2 ** (failures - 1)
                if failures >= self._retry.tries or time.monotonic() + pause >= deadline:
                    times = "once" if failures == 1 else f"{failures} times"
                    raise GitHubError(
                        f"{method} {url}: GitHub answered {response.status_code} {times} "
                        f"(within perf-gate's {self._retry.deadline:g} s for one call); try "
                        "again later",
                        status=response.status_code,
                        slug="github-unavailable",
                    )
                self._sleep(pause)
                continue
            raise self._error(method, url, response)
        raise GitHubError(f"{method} {url}: gave up after 100 attempts")

    def _error(self, method: str, url: str, response: requests.Response) -> Exception:
        status, message = response.status_code, self.redact(_message(response))
        where = f"{method} {url}: {status} {message}".rstrip()
        if status == 401:
            return ConfigError(
                f"{where}: GitHub rejected the token; give the step `GITHUB_TOKEN: "
                "${{ github.token }}` (or a token that can write pull requests) in its env",
                slug="github-auth",
            )
        if status in (403, 422) and "locked" in message.lower():
            return LockedError(
                f"{where}: the conversation is locked, so GitHub refuses comments from this "
                "token; a maintainer can unlock it (the report is in the job summary)",
                status=status,
                answer=where,
            )
        if status == 403 and READ_ONLY.lower() in message.lower():
            return ReadOnlyTokenError(
                f"{where}: the token is read-only (a pull request from a fork); the report "
                "is written to a file instead",
                status=status,
                answer=where,
            )
        if status == 403:
            return GitHubError(
                f"{where}: give the workflow `permissions: pull-requests: write`",
                status=status,
                slug="github-forbidden",
                answer=where,
            )
        if status in (404, 410):
            return NotFoundError(where, status=status, answer=where)
        if status == 422 and "too long" in message.lower():
            return BodyTooLongError(where, status=status, answer=where)
        return GitHubError(where, status=status, answer=where)

    def json(self, response: requests.Response) -> Any:
        """The JSON of a 2xx answer; GitHubError (one line, redacted) when it is not JSON: a
        captive portal, a proxy's page, or a server that is not GitHub's API."""
        try:
            return response.json()
        except (ValueError, RecursionError):
            pass
        request = response.request
        where = f"{request.method} {request.url}" if request is not None else response.url
        kind = response.headers.get("content-type") or "no content type"
        snippet = self.redact(" ".join(response.text[:400].split()))[:SNIPPET]
        raise GitHubError(
            f"{where}: GitHub answered {response.status_code} with a body that is not JSON "
            f"({kind}, {len(response.content)} bytes: {snippet!r}); is GITHUB_API_URL GitHub's "
            "API (https://HOST/api/v3 on GitHub Enterprise Server)?",
            status=response.status_code,
            slug="github-answer",
        )

    def shape_error(self, response: requests.Response, expected: str, got: Any) -> GitHubError:
        """A 2xx answer of another shape than GitHub's REST API gives."""
        request = response.request
        where = f"{request.method} {request.url}" if request is not None else response.url
        return GitHubError(
            f"{where}: GitHub answered {response.status_code} with {self.redact(_kind(got))}, "
            f"not {expected}; is GITHUB_API_URL GitHub's API?",
            status=response.status_code,
            slug="github-answer",
        )

    def _comment(self, response: requests.Response, data: Any) -> Comment:
        """A comment from GitHub's answer; ``id`` and ``user`` (an object, or null for a
        deleted account) are required, as in GitHub's description of an issue comment."""
        if not isinstance(data, Mapping):
            raise self.shape_error(response, "a comment", data)
        number, user = data.get("id"), data.get("user", ...)
        if not isinstance(number, int) or isinstance(number, bool):
            raise self.shape_error(response, "a comment (no integer 'id')", data)
        if user is not None and not isinstance(user, Mapping):
            raise self.shape_error(response, "a comment (no 'user' object)", data)
        login = user.get("login") if isinstance(user, Mapping) else ""
        body = data.get("body")
        return Comment(
            id=number,
            body=body if isinstance(body, str) else "",
            url=self.redact(str(data.get("html_url") or "")),
            author=login if isinstance(login, str) else "",
        )

    def repo_url(self, repository: str, tail: str) -> str:
        owner, _, name = repository.partition("/")
        if not owner or not name or "/" in name:
            raise ConfigError(
                f"repository {repository!r}: expected OWNER/NAME (GITHUB_REPOSITORY or --repo)",
                slug="github-event",
            )
        return f"{self.api_url}/repos/{quote(owner, safe='')}/{quote(name, safe='')}/{tail}"

    def _same_origin(self, url: str) -> bool:
        """A ``next`` link must point at the API we were given: the token goes with it."""
        ours, theirs = urlsplit(self.api_url), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)

    def list_comments(self, repository: str, number: int) -> list[Comment]:
        """Every comment of issue/PR ``number``, following ``Link: rel="next"`` pages."""
        url: str | None = self.repo_url(repository, f"issues/{number}/comments")
        params: Mapping[str, int] | None = {"per_page": 100}
        comments: list[Comment] = []
        for _ in range(self._retry.max_pages):
            if url is None:
                return comments
            response = self.request("GET", url, params=params)
            body = self.json(response)
            if not isinstance(body, list):
                raise self.shape_error(response, "a list of comments", body)
            comments.extend(self._comment(response, item) for item in body)
            url, params = response.links.get("next", {}).get("url"), None
            if url is not None and not self._same_origin(url):
                raise GitHubError(
                    f"GitHub's next page {self.redact(url)[:200]} is not under {self.api_url}"
                )
        if url is not None:
            self._warn(f"stopped after {self._retry.max_pages} pages of comments")
        return comments

    def create_comment(self, repository: str, number: int, body: str) -> Comment:
        url = self.repo_url(repository, f"issues/{number}/comments")
        response = self.request("POST", url, json={"body": body})
        return self._comment(response, self.json(response))

    def update_comment(self, repository: str, comment_id: int, body: str) -> Comment:
        url = self.repo_url(repository, f"issues/comments/{comment_id}")
        response = self.request("PATCH", url, json={"body": body})
        return self._comment(response, self.json(response))

    def token_login(self) -> str | None:
        """The login of the account the token belongs to (``GET /user``, asked once), or None
        when GitHub says the token is not a person's: an installation token (a workflow's
        GITHUB_TOKEN, a GitHub App's) gets 403 there."""
        if self._login is None:
            url = f"{self.api_url}/user"
            try:
                response = self.request("GET", url)
            except GitHubError as exc:
                if exc.status not in (403, 404):
                    raise
                self._login = (None,)
            else:
                data = self.json(response)
                login = data.get("login") if isinstance(data, Mapping) else None
                if not isinstance(login, str) or not login:
                    raise self.shape_error(response, "a user with a 'login'", data)
                self._login = (login,)
        return self._login[0]

    def issue_lock(self, repository: str, number: int) -> str | None:
        """Why issue/PR ``number`` is locked (``locked`` with its ``active_lock_reason``, or
        "locked"), None when it is not or GitHub does not say: this look-up only names the
        cause of a refusal, so its own failures are not errors."""
        try:
            response = self.request("GET", self.repo_url(repository, f"issues/{number}"))
            data = self.json(response)
        except PublishError:
            return None
        if not isinstance(data, Mapping) or data.get("locked") is not True:
            return None
        reason = data.get("active_lock_reason")
        return f"locked as {self.redact(reason)[:40]!r}" if isinstance(reason, str) else "locked"


def has_marker(body: str, marker: str) -> bool:
    """Whether ``marker`` is a line of ``body`` on its own (a quote of it is ``> <!--...``)."""
    return any(line.strip() == marker for line in body.splitlines())


def same_login(left: str, right: str) -> bool:
    """GitHub logins are case-insensitive."""
    return bool(left) and left.casefold() == right.casefold()


def _locked(
    client: GitHubClient, repository: str, number: int, exc: GitHubError
) -> GitHubError | None:
    """A LockedError when a 403/422 refusal came from a locked conversation, else None."""
    if exc.status not in (403, 422) or isinstance(
        exc, (ReadOnlyTokenError, BodyTooLongError, LockedError)
    ):
        return None
    lock = client.issue_lock(repository, number)
    if lock is None:
        return None
    return LockedError(
        f"{exc.answer or exc.message}: the conversation of {repository}#{number} is {lock}, so "
        "GitHub refuses comments from this token; a maintainer can unlock it (the report is in "
        "the job summary)",
        status=exc.status,
        answer=exc.answer,
    )


def upsert_comment(
    client: GitHubClient,
    repository: str,
    number: int,
    marker: str,
    render: Callable[[int | None], str],
    *,
    create: bool = True,
    author: Callable[[], str | None] | None = None,
) -> Upserted | None:
    """Update this gate's comment, or create one (when ``create``).

    This gate's comment is the first that carries ``marker`` on a line of its own **and** was
    written by ``author()`` (default: the token's user, :meth:`GitHubClient.token_login`): a
    person who quotes the marker, or another bot, never has a comment edited; a new one is
    posted instead. ``author`` is asked only when some comment carries the marker; None (the
    account is unknown) edits nothing.

    ``render(limit)`` gives the body; on 422 "too long" it is called again with half the
    length and the call retried once. A comment deleted meanwhile (404/410) is created anew.
    Returns None when there is no comment and ``create`` is false. Raises GitHubError
    (LockedError when the refusal came from a locked conversation).
    """
    marked = [c for c in client.list_comments(repository, number) if has_marker(c.body, marker)]
    existing: Comment | None = None
    if marked:
        login = (author or client.token_login)()
        existing = next((c for c in marked if login and same_login(c.author, login)), None)
    foreign = len(marked) - (existing is not None)
    if existing is None and not create:
        return None
    body = render(None)

    def send(text: str) -> Upserted:
        try:
            if existing is not None:
                try:
                    done = client.update_comment(repository, existing.id, text)
                    return Upserted(action="updated", comment=done, foreign=foreign)
                except NotFoundError:
                    pass  # deleted since we listed it: post a new one
            done = client.create_comment(repository, number, text)
            return Upserted(action="created", comment=done, foreign=foreign)
        except GitHubError as exc:
            raise _locked(client, repository, number, exc) or exc from None

    try:
        return send(body)
    except BodyTooLongError:
        return send(render(len(body) // 2))
