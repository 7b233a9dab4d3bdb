"""The preview workflow's comment step, run as the workflow runs it, after a real `pulumi preview` and guard.

The step's own script is taken from .github/workflows/preview.yml and run with the environment GitHub Actions
gives it (GH_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL, GITHUB_STEP_SUMMARY, STACK, PR), against a stand-in of
GitHub's issue-comment API on loopback (tests/github_standin.py). Two pushes to one PR: the first passes the guard,
the second carries a malformed guard-overrides.yaml, so the guard fails; the stack keeps one comment, which says so,
and the step fails the job.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from kms_aks_tools.offline import realcli
from tests.e2e.conftest import PASSPHRASE, Workspace, toolchain_bin
from tests.github_standin import running_github

ROOT = Path(__file__).resolve().parents[2]
REPO = "contoso/kms-aks"
PR = 42


@pytest.fixture(scope="module")
def space(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A project copy and backend of its own (the session's stand-in cloud), with dev initialised as a team does."""
    base = tmp_path_factory.mktemp("pr-comment")
    realcli.copy_project(ROOT, base / "project")
    (base / "state").mkdir()
    assert workspace.standin is not None
    env = realcli.cli_environment(
        toolchain_bin(),
        home=base,
        backend=base / "state",
        passphrase=PASSPHRASE,
        debug_providers=workspace.standin.debug_providers,
    )
    own = Workspace(path=base / "project", env=env, out=base / "out", standin=workspace.standin)
    assert own.ci("policy-venv").returncode == 0
    created = own.pulumi("stack", "init", "dev", "--secrets-provider", "passphrase")
    assert created.returncode == 0, created.stderr
    return own


def comment_step() -> dict:
    steps = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())["jobs"]["preview"]["steps"]
    (step,) = [s for s in steps if "pulumi-stack comment" in str(s.get("run", ""))]
    return step


def run_step(workspace: Workspace, github_url: str, summary: Path) -> subprocess.CompletedProcess[str]:
    """The comment step's script under bash, as the workflow's `shell: bash` runs it (-e -o pipefail)."""
    env = {
        **workspace.env,
        "STACK": "dev",
        "PR": str(PR),
        "GH_TOKEN": "ghs_e2e-stand-in-token",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": github_url,
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", str(comment_step()["run"])],
        cwd=workspace.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_one_comment_per_stack_updated_on_each_push_and_a_failed_guard_says_so_and_fails(
    space: Workspace, tmp_path: Path
) -> None:
    workspace = space
    overrides = workspace.path / "guard-overrides.yaml"
    summary = tmp_path / "summary.md"
    with running_github() as github:
        github.add(REPO, PR, "LGTM once the preview is green")
        # Push 1: the workflow's preview step, then its comment step.
        previewed = workspace.ci("preview", "dev", "out/dev")
        assert previewed.returncode == 0, previewed.stdout[-3000:] + previewed.stderr[-3000:]
        first = run_step(workspace, github.url, summary)
        assert first.returncode == 0, first.stdout + first.stderr
        (ours,) = [c for c in github.on(REPO, PR) if "<!-- kms-aks-comment stack=dev -->" in c["body"]]
        assert re.match(r"### dev: passed the plan guard \(\d+ to create\)\n", ours["body"]), ours["body"]

        # Push 2: a malformed overrides file. The guard cannot read it (exit 2): the preview step fails, and the
        # comment step still comments, saying the guard failed, and fails too.
        overrides.write_text("keyRotations:\n  - urn: not-a-urn\n")
        try:
            failed = workspace.ci("preview", "dev", "out/dev")
            second = run_step(workspace, github.url, summary)
        finally:
            overrides.unlink()
        assert failed.returncode == 2, failed.stdout[-3000:] + failed.stderr[-3000:]
        assert (
            "plan guard: bad input: overrides file guard-overrides.yaml"
            in (workspace.path / "out/dev/guard.txt").read_text()
        )
        assert second.returncode == 1, second.stdout + second.stderr
        comments = github.on(REPO, PR)
        assert len(comments) == 2, "one comment for the stack, edited, beside the reviewer's"
        body = comments[1]["body"]
        assert comments[1]["id"] == ours["id"]
        assert body.startswith("### dev: the plan guard failed, nothing judged, nothing applied\n"), body
        assert "overrides file guard-overrides.yaml: keyRotations.0" in body
        assert str(workspace.path) not in body
        assert ("PATCH", f"/repos/{REPO}/issues/comments/{ours['id']}") in github.requests
    # The job summary got both comments, as GitHub shows them on the run.
    assert summary.read_text().count("<!-- kms-aks-comment stack=dev -->") == 2
