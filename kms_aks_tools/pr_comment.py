"""One PR comment per stack, updated on each push: find the stack's comment by its marker, edit it, else add it.

    python -m kms_aks_tools.pr_comment --stack dev --pr 12 out/dev/comment.md

`.ci/pulumi-stack comment STACK OUT PR` runs it in the preview workflow. It speaks GitHub's REST API (issue
comments: list, create, update) with the workflow's token, from the environment GitHub Actions sets:
`GITHUB_API_URL`, `GITHUB_REPOSITORY`, and `GH_TOKEN` (or `GITHUB_TOKEN`). The comment file must carry the
stack's marker (`kms_aks_tools.comment_marker.MARKER`), which `kms-aks changes --markdown` writes.
Exit status: 0 posted or updated, 2 bad input (no token, no marker, an API error: the message names it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kms_aks_tools.comment_marker import MARKER

PER_PAGE = 100
# A PR with more than 5,000 comments is not one this looks through: the loop is bounded.
MAX_PAGES = 50
TIMEOUT_SECONDS = 30


class CommentError(Exception):
    """What went wrong, for the job log."""


class GitHub:
    """The few issue-comment calls of GitHub's REST API this needs."""

    def __init__(self, api_url: str, repository: str, token: str) -> None:
        self.api_url, self.repository, self.token = api_url.rstrip("/"), repository, token

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.api_url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            raise CommentError(f"{method} {path}: HTTP {error.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError) as error:
            raise CommentError(f"{method} {path}: {error}") from None

    def comments(self, pr: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            batch = self._call("GET", f"/repos/{self.repository}/issues/{pr}/comments?per_page={PER_PAGE}&page={page}")
            found.extend(batch)
            if len(batch) < PER_PAGE:
                break
        return found

    def create(self, pr: int, body: str) -> dict[str, Any]:
        return self._call("POST", f"/repos/{self.repository}/issues/{pr}/comments", {"body": body})

    def update(self, comment_id: int, body: str) -> dict[str, Any]:
        return self._call("PATCH", f"/repos/{self.repository}/issues/comments/{comment_id}", {"body": body})


def upsert(github: GitHub, pr: int, stack: str, body: str) -> tuple[str, int]:
    """Edit the stack's comment when the PR has one (by its marker), else add it: ("updated"|"created", id)."""
    marker = MARKER.format(stack=stack)
    if marker not in body:
        raise CommentError(f"the comment has no marker {marker!r}: write it with `kms-aks changes --markdown`")
    existing = next((c for c in github.comments(pr) if marker in (c.get("body") or "")), None)
    if existing is not None:
        return "updated", github.update(existing["id"], body)["id"]
    return "created", github.create(pr, body)["id"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kms_aks_tools.pr_comment", description=__doc__.split("\n\n")[0])
    parser.add_argument("comment", type=Path, help="the comment file (kms-aks changes --markdown)")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--pr", type=int, required=True)
    args = parser.parse_args(argv)
    token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")
    repository = os.environ.get("GITHUB_REPOSITORY")
    try:
        if not token or not repository:
            raise CommentError(
                "GH_TOKEN (or GITHUB_TOKEN) and GITHUB_REPOSITORY must be set, as GitHub Actions sets them"
            )
        body = args.comment.read_text(encoding="utf-8")
        github = GitHub(os.environ.get("GITHUB_API_URL", "https://api.github.com"), repository, token)
        done, comment_id = upsert(github, args.pr, args.stack, body)
    except (CommentError, OSError) as error:
        sys.stderr.write(f"pr comment: {error}\n")
        return 2
    sys.stdout.write(f"pr comment: {done} comment {comment_id} for stack {args.stack} on PR #{args.pr}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
