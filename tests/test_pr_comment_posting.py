"""One PR comment per stack: `python -m kms_aks_tools.pr_comment` against a stand-in of GitHub's comment API.

make e2e runs the workflow's comment step end to end (tests/e2e/test_pr_comment.py); these check the API calls.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms_aks_tools.change_summary import MARKER
from tests.github_standin import GitHubStandin, running_github

REPO = "contoso/kms-aks"


@pytest.fixture
def github() -> Iterator[GitHubStandin]:
    with running_github() as standin:
        yield standin


def post(
    github: GitHubStandin, comment: Path, stack: str, pr: int = 7, token: str | None = "t0ken"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN")}
    env.update(GITHUB_API_URL=github.url, GITHUB_REPOSITORY=REPO)
    if token:
        env["GH_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "kms_aks_tools.pr_comment", "--stack", stack, "--pr", str(pr), str(comment)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def body(tmp_path: Path, stack: str, verdict: str) -> Path:
    path = tmp_path / f"{stack}.md"
    path.write_text(f"### {stack}: {verdict}\n\n{MARKER.format(stack=stack)}\n")
    return path


def test_each_push_edits_the_stacks_comment_and_leaves_every_other_comment_alone(
    github: GitHubStandin, tmp_path: Path
) -> None:
    # 150 comments before ours: the marker is looked for past the first page of 100.
    for number in range(150):
        github.add(REPO, 7, f"review remark {number}")
    github.add(REPO, 8, f"### dev: on another PR\n\n{MARKER.format(stack='dev')}\n")
    first = post(github, body(tmp_path, "dev", "refused by the plan guard, 1 finding, nothing applied"), "dev")
    assert first.returncode == 0, first.stderr
    assert "created comment" in first.stdout
    prod = post(github, body(tmp_path, "prod", "passed the plan guard"), "prod")
    assert prod.returncode == 0, prod.stderr
    second = post(github, body(tmp_path, "dev", "passed the plan guard"), "dev")
    assert second.returncode == 0, second.stderr
    assert "updated comment" in second.stdout

    ours = [c for c in github.on(REPO, 7) if "kms-aks-comment" in c["body"]]
    assert [c["body"].splitlines()[0] for c in ours] == [
        "### dev: passed the plan guard",
        "### prod: passed the plan guard",
    ]
    assert len(github.on(REPO, 7)) == 152
    assert github.on(REPO, 8)[0]["body"].startswith("### dev: on another PR"), "another PR's comment is not ours"
    assert ("PATCH", f"/repos/{REPO}/issues/comments/{ours[0]['id']}") in github.requests


def test_no_token_or_no_marker_is_named_and_nothing_is_posted(github: GitHubStandin, tmp_path: Path) -> None:
    no_token = post(github, body(tmp_path, "dev", "passed"), "dev", token=None)
    assert (
        no_token.returncode == 2 and "GH_TOKEN (or GITHUB_TOKEN) and GITHUB_REPOSITORY must be set" in no_token.stderr
    )
    unmarked = tmp_path / "plain.md"
    unmarked.write_text("### dev: passed\n")
    no_marker = post(github, unmarked, "dev")
    assert no_marker.returncode == 2 and "has no marker" in no_marker.stderr
    assert github.comments == [] and github.requests == []


def test_an_api_refusal_is_named_with_exit_2(github: GitHubStandin, tmp_path: Path) -> None:
    huge = tmp_path / "huge.md"
    huge.write_text("x" * 70000 + "\n" + MARKER.format(stack="dev") + "\n")
    refused = post(github, huge, "dev")
    assert refused.returncode == 2
    assert f"POST /repos/{REPO}/issues/7/comments: HTTP 422" in refused.stderr
    assert github.comments == []
