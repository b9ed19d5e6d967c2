"""A stand-in for GitHub's REST API on 127.0.0.1 that checks every request against GitHub's
published OpenAPI description (tests/fixtures/github/openapi.trimmed.json, trimmed from the npm
package @octokit/openapi by tests/fixtures/github/trim_openapi.py).

It keeps issue comments in memory, paginates like GitHub (``per_page``, ``page``, a ``Link``
header with absolute URLs), and answers scripted failures first (a scripted answer can also be
a raw body of any type, or drip its body one byte at a time). ``GET /user`` answers as GitHub
does for a workflow's GITHUB_TOKEN (403: an installation token has no user) unless
``token_user`` names the token's account; ``GET .../issues/{n}`` and the comment writes of a
``locked`` issue answer as for a locked conversation. Both answers are built from GitHub's own
examples (examples.json). Each request's method, path,
query and body are validated with openapi-core; headers against GitHub's required ones; every
success response against the description too, so the fake's answers have GitHub's shape.
"""

from __future__ import annotations

import copy
import json
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"
DESCRIPTION = json.loads((FIXTURES / "openapi.trimmed.json").read_text(encoding="utf-8"))
EXAMPLES = json.loads((FIXTURES / "examples.json").read_text(encoding="utf-8"))
TOKEN = "ghs_tok3n_that_must_never_be_printed_0123456789"
LIST = re.compile(
    r"^(?P<prefix>.*)/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/(?P<n>\d+)/comments$"
)
ONE = re.compile(
    r"^(?P<prefix>.*)/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/comments/(?P<id>\d+)$"
)
# The workflow_run poster's look-ups (gate/integrations/github/poster.py).
PULL = re.compile(r"^(?P<prefix>.*)/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/pulls/(?P<n>\d+)$")
RUN = re.compile(
    r"^(?P<prefix>.*)/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/actions/runs/(?P<id>\d+)$"
)
ISSUE = re.compile(r"^(?P<prefix>.*)/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/(?P<n>\d+)$")
READ_ONLY = {
    "message": "Resource not accessible by integration",
    "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
    "status": "403",
}
LOCKED = {"message": "Unable to create comment because issue is locked.", "status": "403"}
USER = {
    "login": "github-actions[bot]",
    "id": 41898282,
    "node_id": "MDM6Qm90NDE4OTgyODI=",
    "avatar_url": "https://avatars.githubusercontent.com/in/15368?v=4",
    "gravatar_id": "",
    "url": "https://api.github.com/users/github-actions%5Bbot%5D",
    "html_url": "https://github.com/apps/github-actions",
    "followers_url": "https://api.github.com/users/github-actions%5Bbot%5D/followers",
    "following_url": "https://api.github.com/users/github-actions%5Bbot%5D/following{/other_user}",
    "gists_url": "https://api.github.com/users/github-actions%5Bbot%5D/gists{/gist_id}",
    "starred_url": "https://api.github.com/users/github-actions%5Bbot%5D/starred{/owner}{/repo}",
    "subscriptions_url": "https://api.github.com/users/github-actions%5Bbot%5D/subscriptions",
    "organizations_url": "https://api.github.com/users/github-actions%5Bbot%5D/orgs",
    "repos_url": "https://api.github.com/users/github-actions%5Bbot%5D/repos",
    "events_url": "https://api.github.com/users/github-actions%5Bbot%5D/events{/privacy}",
    "received_events_url": "https://api.github.com/users/github-actions%5Bbot%5D/received_events",
    "type": "Bot",
    "site_admin": False,
}


@dataclass
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class Scripted:
    """An answer given instead of the normal one to the next matching request."""

    method: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    path: str = ""  # a substring of the path; empty: any
    raw: bytes | None = None  # the body as it is (else ``body`` as JSON)
    content_type: str = "application/json"
    drip: float = 0.0  # seconds between the body's bytes (0: all at once)


class FakeGitHub:
    def __init__(self, server: HTTPServer, prefix: str = "") -> None:
        self.server = server
        self.prefix = prefix
        self.base = server.url_for(prefix).rstrip("/")
        described = copy.deepcopy(DESCRIPTION)
        root = server.url_for("").rstrip("/")
        described["servers"] = [{"url": root}, {"url": root + "/api/v3"}]
        self.openapi = OpenAPI.from_dict(described)
        self.comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.pulls: dict[tuple[str, int], dict[str, Any]] = {}  # GET pulls/{n}
        self.runs: dict[tuple[str, int], dict[str, Any]] = {}  # GET actions/runs/{id}
        self.scripted: list[Scripted] = []
        self.seen: list[Seen] = []
        self.problems: list[str] = []
        self.next_id = 1000
        self.token_user: str | None = None  # None: an installation token (GITHUB_TOKEN)
        self.locked: dict[tuple[str, int], str] = {}  # issue -> active_lock_reason
        self.lock_answer: dict[str, Any] = LOCKED  # what a write to a locked issue gets
        self.closing = threading.Event()  # set at teardown: a dripping answer stops
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    # --- state -----------------------------------------------------------------------------

    def add_comment(
        self, repository: str, number: int, body: str, login: str = USER["login"]
    ) -> int:
        self.next_id += 1
        owner, repo = repository.split("/")
        user = dict(USER, login=login, type="Bot" if login.endswith("[bot]") else "User")
        self.comments.setdefault((repository, number), []).append(
            {
                "id": self.next_id,
                "node_id": f"IC_{self.next_id}",
                "url": f"https://api.github.com/repos/{owner}/{repo}/issues/comments/{self.next_id}",
                "html_url": f"https://github.com/{owner}/{repo}/pull/{number}#issuecomment-{self.next_id}",
                "body": body,
                "user": user,
                "created_at": "2026-11-20T10:00:00Z",
                "updated_at": "2026-11-20T10:00:00Z",
                "issue_url": f"https://api.github.com/repos/{owner}/{repo}/issues/{number}",
                "author_association": "NONE",
            }
        )
        return self.next_id

    def bodies(self, repository: str, number: int) -> list[str]:
        return [c["body"] for c in self.comments.get((repository, number), [])]

    def calls(self) -> list[tuple[str, str]]:
        return [(s.method, s.path.removeprefix(self.prefix)) for s in self.seen]

    def script(
        self,
        method: str,
        status: int,
        body: Any,
        path: str = "",
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        drip: float = 0.0,
        **headers: str,
    ) -> None:
        self.scripted.append(
            Scripted(method, status, body, dict(headers), path, raw, content_type, drip)
        )

    def _drip(self, body: bytes, seconds: float) -> Iterator[bytes]:
        """The body one byte at a time, ``seconds`` apart (until the test ends)."""
        for index in range(len(body)):
            if self.closing.wait(seconds):
                return
            yield body[index : index + 1]

    # --- the server --------------------------------------------------------------------------

    def _check(self, request: Request) -> None:
        try:
            self.openapi.validate_request(WerkzeugOpenAPIRequest(request))
        except Exception as exc:  # openapi-core raises several kinds; each is a finding
            self.problems.append(
                f"{request.method} {request.full_path}: {type(exc).__name__}: {exc}"
            )
        if request.headers.get("Accept") != "application/vnd.github+json":
            self.problems.append(f"{request.method} {request.path}: Accept header missing")
        if not request.headers.get("X-GitHub-Api-Version"):
            self.problems.append(f"{request.method} {request.path}: X-GitHub-Api-Version missing")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.problems.append(f"{request.method} {request.path}: wrong Authorization")
        known = {"per_page", "page", "since"} if request.method == "GET" else set()
        if unknown := set(request.args) - known:
            self.problems.append(f"{request.method} {request.path}: undocumented query {unknown}")

    def handle(self, request: Request) -> Response:
        body = request.get_json(silent=True) if request.data else None
        self.seen.append(
            Seen(request.method, request.path, dict(request.args), body, dict(request.headers))
        )
        self._check(request)
        for index, scripted in enumerate(self.scripted):
            if scripted.method == request.method and scripted.path in request.path:
                del self.scripted[index]
                raw = scripted.raw
                if raw is None:
                    raw = json.dumps(scripted.body).encode()
                if scripted.drip:
                    return Response(
                        self._drip(raw, scripted.drip),
                        scripted.status,
                        scripted.headers,
                        content_type=scripted.content_type,
                        direct_passthrough=True,
                    )
                return Response(
                    raw, scripted.status, scripted.headers, content_type=scripted.content_type
                )
        response = self._answer(request, body)
        if response.status_code < 300:
            try:
                self.openapi.validate_response(
                    WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response)
                )
            except Exception as exc:
                self.problems.append(f"response to {request.method} {request.path}: {exc}")
        return response

    def _user(self) -> Response:
        """GET /user: the token's account, or 403 for an installation token."""
        if self.token_user is None:
            return self._json(READ_ONLY, 403)
        kind = "Bot" if self.token_user.endswith("[bot]") else "User"
        # the description tells a public from a private profile by ``user_view_type``, which
        # GitHub sends and its older example lacks
        user = dict(EXAMPLES["user"], login=self.token_user, type=kind, user_view_type="public")
        return self._json(user, 200)

    def issue(self, repository: str, number: int) -> dict[str, Any]:
        """GitHub's example issue as ``repository``'s ``number``, locked or not."""
        owner, repo = repository.split("/")
        issue = copy.deepcopy(EXAMPLES["issue"])
        url = f"https://api.github.com/repos/{owner}/{repo}/issues/{number}"
        reason = self.locked.get((repository, number))
        issue.update(
            number=number,
            url=url,
            comments_url=f"{url}/comments",
            html_url=f"https://github.com/{owner}/{repo}/pull/{number}",
            locked=reason is not None,
            active_lock_reason=reason,
        )
        return issue

    def _lookup(self, request: Request) -> Response | None:
        """GET of a pull request or a workflow run that was stored in ``pulls``/``runs``."""
        for pattern, store, key in ((PULL, self.pulls, "n"), (RUN, self.runs, "id")):
            match = pattern.match(request.path)
            if match and match["prefix"] == self.prefix and request.method == "GET":
                found = store.get((f"{match['owner']}/{match['repo']}", int(match[key])))
                if found is None:
                    return self._json({"message": "Not Found", "status": "404"}, 404)
                return self._json(found, 200)
        return None

    def _answer(self, request: Request, body: Any) -> Response:
        path = request.path
        if path == f"{self.prefix}/user" and request.method == "GET":
            return self._user()
        if (looked_up := self._lookup(request)) is not None:
            return looked_up
        match = ISSUE.match(path)
        if match and match["prefix"] == self.prefix and request.method == "GET":
            return self._json(self.issue(f"{match['owner']}/{match['repo']}", int(match["n"])), 200)
        if request.method in ("POST", "PATCH") and self._locked(path):
            return self._json(self.lock_answer, 403)
        if (match := LIST.match(path)) and match["prefix"] == self.prefix:
            key = (f"{match['owner']}/{match['repo']}", int(match["n"]))
            if request.method == "GET":
                return self._page(request, self.comments.get(key, []))
            if request.method == "POST":
                self.add_comment(key[0], key[1], body["body"], self.token_user or USER["login"])
                return self._json(self.comments[key][-1], 201)
        if (
            (match := ONE.match(path))
            and match["prefix"] == self.prefix
            and request.method == "PATCH"
        ):
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(match["id"]):
                        comment["body"] = body["body"]
                        comment["updated_at"] = "2026-11-21T10:00:00Z"
                        return self._json(comment, 200)
            return self._json(
                {"message": "Not Found", "documentation_url": "x", "status": "404"}, 404
            )
        return self._json({"message": "Not Found", "status": "404"}, 404)

    def _locked(self, path: str) -> bool:
        """Whether ``path`` writes a comment of a locked issue."""
        if (match := LIST.match(path)) and match["prefix"] == self.prefix:
            return (f"{match['owner']}/{match['repo']}", int(match["n"])) in self.locked
        if (match := ONE.match(path)) and match["prefix"] == self.prefix:
            for (repository, number), comments in self.comments.items():
                if any(c["id"] == int(match["id"]) for c in comments):
                    return (repository, number) in self.locked
        return False

    def _page(self, request: Request, comments: list[dict[str, Any]]) -> Response:
        per_page = min(int(request.args.get("per_page", 30)), 100)
        page = int(request.args.get("page", 1))
        last = max(1, math.ceil(len(comments) / per_page))
        chunk = comments[(page - 1) * per_page : page * per_page]
        links = []
        url = f"{request.host_url.rstrip('/')}{request.path}?per_page={per_page}&page="
        if page < last:
            links.append(f'<{url}{page + 1}>; rel="next"')
            links.append(f'<{url}{last}>; rel="last"')
        if page > 1:
            links.append(f'<{url}1>; rel="first"')
            links.append(f'<{url}{page - 1}>; rel="prev"')
        headers = {"Link": ", ".join(links)} if links else {}
        return Response(json.dumps(chunk), 200, headers, content_type="application/json")

    @staticmethod
    def _json(body: Any, status: int) -> Response:
        return Response(json.dumps(body), status, content_type="application/json")
