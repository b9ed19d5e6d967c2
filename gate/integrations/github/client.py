"""GitHub's REST API for the sticky pull-request comment (the only requests importer).

Three operations (list an issue's comments, create one, update one), each sent with the JSON
media type, an API version, a timeout and the token as a bearer header. The client obeys
GitHub's rules for rate limits (``retry-after`` first, then ``x-ratelimit-reset`` when
``x-ratelimit-remaining`` is 0, else a minute for a secondary limit) within a bounded waiting
budget, retries server errors with backoff, and turns every other failure into a
:class:`GitHubError` with a message that says what to do. The token is a :class:`Secret`: no
repr, message or exception carries it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from gate import __version__
from gate.errors import ConfigError, PublishError

API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
READ_ONLY = "Resource not accessible by integration"


class Secret:
    """A token that never shows itself: ``repr``/``str`` print ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class GitHubError(PublishError):
    """GitHub refused or failed a call; ``status`` is the HTTP status (None: no answer)."""

    default_slug = "github"

    def __init__(self, message: str, *, status: int | None = None, slug: str | None = None):
        super().__init__(message, slug=slug)
        self.status = status


class ReadOnlyTokenError(GitHubError):
    """403 "Resource not accessible by integration": a fork's read-only token."""

    default_slug = "github-read-only"


class NotFoundError(GitHubError):
    """404 or 410: the repository, pull request or comment does not exist (any more)."""

    default_slug = "github-not-found"


class BodyTooLongError(GitHubError):
    """422 because the comment body is longer than GitHub accepts."""

    default_slug = "github-too-long"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Timeouts and how long the client may wait: GitHub asks clients to back off, and a CI
    step must still end."""

    timeout: float = 10.0  # seconds per call (connect and read)
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
    author: str


@dataclass(frozen=True, kw_only=True)
class Upserted:
    """What ``upsert_comment`` did: ``created`` or ``updated``, and the comment."""

    action: str
    comment: Comment


def _message(response: requests.Response) -> str:
    """GitHub's ``message`` (and validation errors) from an error body, shortened."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if not isinstance(body, Mapping):
        return ""
    parts = [str(body.get("message", ""))]
    for error in body.get("errors") or ():
        if isinstance(error, Mapping) and error.get("message"):
            parts.append(str(error["message"]))
        elif isinstance(error, str):
            parts.append(error)
    return "; ".join(p for p in parts if p)[:300]


def _comment(data: Any) -> Comment:
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), int):
        raise GitHubError("GitHub answered with something that is not a comment")
    user = data.get("user")
    if not isinstance(user, Mapping):
        user = {}
    return Comment(
        id=data["id"],
        body=str(data.get("body") or ""),
        url=str(data.get("html_url") or ""),
        author=str(user.get("login") or ""),
    )


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
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._warn = warn
        self._waited = 0.0

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, token={self._token!r})"

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

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """One call with the rules above; returns a 2xx response.

        Raises ConfigError for 401, GitHubError (or a subclass) for any other failure.
        """
        failures = 0
        for _ in range(100):  # bounded: every path below waits, fails or returns
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=self._headers(),
                    timeout=self._retry.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                failures += 1
                if failures >= self._retry.tries:
                    raise GitHubError(
                        f"{method} {url}: no answer after {failures} tries ({type(exc).__name__})",
                        slug="github-unavailable",
                    ) from None
                self._sleep(self._retry.backoff * 2 ** (failures - 1))
                continue
            if response.status_code < 300:
                return response
            wait = self._rate_limit_wait(response)
            if wait is not None:
                self._wait(*wait)
                continue
            if response.status_code >= 500:
                failures += 1
                if failures >= self._retry.tries:
                    raise GitHubError(
                        f"{method} {url}: GitHub answered {response.status_code} "
                        f"{failures} times; try again later",
                        status=response.status_code,
                        slug="github-unavailable",
                    )
                self._sleep(self._retry.backoff * 2 ** (failures - 1))
                continue
            raise self._error(method, url, response)
        raise GitHubError(f"{method} {url}: gave up after 100 attempts")

    def _error(self, method: str, url: str, response: requests.Response) -> Exception:
        status, message = response.status_code, _message(response)
        where = f"{method} {url}: {status} {message}".rstrip()
        if status == 401:
            return ConfigError(
                f"{where}: GitHub rejected the token; give the step `GITHUB_TOKEN: "
                "${{ github.token }}` (or a token that can write pull requests) in its env",
                slug="github-auth",
            )
        if status == 403 and READ_ONLY.lower() in message.lower():
            return ReadOnlyTokenError(
                f"{where}: the token is read-only (a pull request from a fork); the report "
                "is written to a file instead",
                status=status,
            )
        if status == 403:
            return GitHubError(
                f"{where}: give the workflow `permissions: pull-requests: write`",
                status=status,
                slug="github-forbidden",
            )
        if status in (404, 410):
            return NotFoundError(where, status=status)
        if status == 422 and "too long" in message.lower():
            return BodyTooLongError(where, status=status)
        return GitHubError(where, status=status)

    def _repo_url(self, repository: str, tail: str) -> str:
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
        url: str | None = self._repo_url(repository, f"issues/{number}/comments")
        params: Mapping[str, int] | None = {"per_page": 100}
        comments: list[Comment] = []
        for _ in range(self._retry.max_pages):
            if url is None:
                return comments
            response = self.request("GET", url, params=params)
            body = response.json()
            if not isinstance(body, list):
                raise GitHubError(f"GET {url}: expected a list of comments")
            comments.extend(_comment(item) for item in body)
            url, params = response.links.get("next", {}).get("url"), None
            if url is not None and not self._same_origin(url):
                raise GitHubError(f"GitHub's next page {url} is not under {self.api_url}")
        if url is not None:
            self._warn(f"stopped after {self._retry.max_pages} pages of comments")
        return comments

    def create_comment(self, repository: str, number: int, body: str) -> Comment:
        url = self._repo_url(repository, f"issues/{number}/comments")
        return _comment(self.request("POST", url, json={"body": body}).json())

    def update_comment(self, repository: str, comment_id: int, body: str) -> Comment:
        url = self._repo_url(repository, f"issues/comments/{comment_id}")
        return _comment(self.request("PATCH", url, json={"body": body}).json())


def has_marker(body: str, marker: str) -> bool:
    """Whether ``marker`` is a line of ``body`` on its own (a quote of it is ``> <!--...``)."""
    return any(line.strip() == marker for line in body.splitlines())


def upsert_comment(
    client: GitHubClient,
    repository: str,
    number: int,
    marker: str,
    render: Callable[[int | None], str],
    *,
    create: bool = True,
) -> Upserted | None:
    """Update the comment carrying ``marker``, or create one (when ``create``).

    ``render(limit)`` gives the body; on 422 "too long" it is called again with half the
    length and the call retried once. A comment deleted meanwhile (404/410) is created anew.
    Returns None when there is no comment and ``create`` is false. Raises GitHubError.
    """
    existing = next(
        (c for c in client.list_comments(repository, number) if has_marker(c.body, marker)), None
    )
    if existing is None and not create:
        return None
    body = render(None)

    def send(text: str) -> Upserted:
        if existing is not None:
            try:
                return Upserted(
                    action="updated", comment=client.update_comment(repository, existing.id, text)
                )
            except NotFoundError:
                pass  # deleted since we listed it: post a new one
        return Upserted(action="created", comment=client.create_comment(repository, number, text))

    try:
        return send(body)
    except BodyTooLongError:
        return send(render(len(body) // 2))
