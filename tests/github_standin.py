"""A stand-in for the part of GitHub's REST API the preview workflow's comment step uses: a PR's issue comments.

As GitHub answers (docs.github.com/rest/issues/comments): `GET /repos/{owner}/{repo}/issues/{number}/comments`
lists oldest first, `per_page` at most 100 (default 30), `page` from 1, with a `Link` header to the next page;
`POST` to the same path creates a comment (201); `PATCH /repos/{owner}/{repo}/issues/comments/{id}` edits one
(200; 404 for a comment of another repository or none). No token: 401. A body over 65,536 characters: 422. It
listens on loopback only; requests are counted so a test can see what the step did.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 65536
LIST = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$")
ONE = re.compile(r"^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$")


@dataclass
class GitHubStandin:
    url: str = ""
    comments: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 1000

    def add(self, repo: str, issue: int, body: str, login: str = "someone") -> dict[str, Any]:
        comment = {"id": self.next_id, "repo": repo, "issue": issue, "body": body, "user": {"login": login}}
        self.next_id += 1
        self.comments.append(comment)
        return comment

    def on(self, repo: str, issue: int) -> list[dict[str, Any]]:
        return [c for c in self.comments if c["repo"] == repo and c["issue"] == issue]


def _public(comment: dict[str, Any]) -> dict[str, Any]:
    return {"id": comment["id"], "body": comment["body"], "user": comment["user"]}


def _handler(state: GitHubStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if re.match(r"^(Bearer|token) \S+$", self.headers.get("Authorization", "")):
                return True
            self._send(401, {"message": "Requires authentication"})
            return False

        def _body(self) -> dict[str, Any] | None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                data = json.loads(raw)
            except json.JSONDecodeError:
                self._send(400, {"message": "Problems parsing JSON"})
                return None
            body = data.get("body") if isinstance(data, dict) else None
            if not isinstance(body, str) or not body or len(body) > MAX_BODY:
                self._send(422, {"message": "Validation Failed", "errors": [{"field": "body"}]})
                return None
            return data

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            state.requests.append(("GET", parts.path))
            match = LIST.match(parts.path)
            if not self._authorised():
                return
            if not match:
                self._send(404, {"message": "Not Found"})
                return
            query = parse_qs(parts.query)
            per_page = min(int(query.get("per_page", ["30"])[0]), 100)
            page = int(query.get("page", ["1"])[0])
            comments = state.on(match[1], int(match[2]))
            batch = comments[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(comments):
                headers["Link"] = f'<{state.url}{parts.path}?per_page={per_page}&page={page + 1}>; rel="next"'
            self._send(200, [_public(c) for c in batch], headers)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            state.requests.append(("POST", path))
            match = LIST.match(path)
            if not self._authorised():
                return
            if not match:
                self._send(404, {"message": "Not Found"})
                return
            if (data := self._body()) is not None:
                self._send(201, _public(state.add(match[1], int(match[2]), data["body"], login="github-actions[bot]")))

        def do_PATCH(self) -> None:
            path = urlsplit(self.path).path
            state.requests.append(("PATCH", path))
            match = ONE.match(path)
            if not self._authorised():
                return
            found = next(
                (c for c in state.comments if match and c["id"] == int(match[2]) and c["repo"] == match[1]), None
            )
            if found is None:
                self._send(404, {"message": "Not Found"})
                return
            if (data := self._body()) is not None:
                found["body"] = data["body"]
                self._send(200, _public(found))

    return Handler


@contextmanager
def running_github() -> Iterator[GitHubStandin]:
    state = GitHubStandin()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    # shutdown() waits for the loop's next poll: at the default half second, each test would end half a second late.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
