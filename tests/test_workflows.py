"""The GitHub workflows: actionlint-clean, and shaped the way issue 5 requires (OIDC, guard, policy pack, order)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
PREVIEW = WORKFLOWS / "preview.yml"
DEPLOY = WORKFLOWS / "deploy.yml"


def actionlint() -> str:
    """The actionlint binary the dev requirements install next to this interpreter (or on PATH).

    A missing linter fails the suite: a workflow lint that silently skips would pass broken YAML.
    """
    name = "actionlint.exe" if os.name == "nt" else "actionlint"
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(
        f"actionlint not found next to {sys.executable} nor on PATH: install requirements-dev.txt "
        "(make test does); the workflow lint must not be skipped"
    )


def run_actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint(), "-no-color", *(str(f) for f in files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), path
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def stacks() -> list[str]:
    """Every stack of the project: one Pulumi.<stack>.yaml per stack."""
    found = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
    assert found, "no Pulumi.<stack>.yaml in the project"
    return found


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def index_of(job: dict[str, Any], predicate: Any, what: str) -> int:
    for i, step in enumerate(steps(job)):
        if predicate(step):
            return i
    raise AssertionError(f"no step {what}")


def uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def runs(step: dict[str, Any], pattern: str) -> bool:
    return re.search(pattern, str(step.get("run", ""))) is not None


# --------------------------------------------------------------------------------------------------
# actionlint
# --------------------------------------------------------------------------------------------------


def test_workflows_exist() -> None:
    assert PREVIEW.is_file()
    assert DEPLOY.is_file()


def test_actionlint_passes_on_every_workflow() -> None:
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    assert files
    result = run_actionlint(*files)
    assert result.returncode == 0, f"actionlint failed:\n{result.stdout}\n{result.stderr}"


def test_actionlint_really_lints(tmp_path: Path) -> None:
    # The lint above means something only if actionlint rejects a broken workflow here.
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: pulumi/actions@v6\n        with:\n          policy-packs: policies\n"
        "      - run: echo ${{ github.event.no_such_context.x }\n"
    )
    result = run_actionlint(broken, cwd=tmp_path)
    assert result.returncode != 0
    assert "policy-packs" in result.stdout


# --------------------------------------------------------------------------------------------------
# preview.yml
# --------------------------------------------------------------------------------------------------


def test_preview_runs_on_pull_requests() -> None:
    assert "pull_request" in load(PREVIEW)["on"]


@pytest.mark.stacks
def test_offline_job_needs_no_secrets_and_covers_every_stack() -> None:
    doc = load(PREVIEW)
    offline = doc["jobs"]["offline"]
    text = yaml.safe_dump(offline)
    assert "secrets." not in text
    assert "vars." not in text
    assert "id-token" not in text
    assert offline.get("permissions") == {"contents": "read"}
    test = index_of(offline, lambda s: runs(s, r"^make test\b"), "running `make test`")
    e2e = index_of(offline, lambda s: runs(s, r"^make e2e\b"), "running `make e2e`")
    go = index_of(offline, lambda s: uses(s, "actions/setup-go"), "setting up Go for make e2e")
    assert go < e2e and test < e2e
    # kms-aks itself, not make: its exit code (the worst stack's) tells a policy block (1) from bad input (2).
    # --all plans every Pulumi.<stack>.yaml (tests/test_every_stack.py proves it), so no stack is named here.
    plan = steps(offline)[index_of(offline, lambda s: runs(s, r"kms-aks plan --all"), "running `kms-aks plan --all`")]
    assert "make plan" not in plan["run"]
    assert "--stack" not in plan["run"]


def _oidc_env(job: dict[str, Any]) -> None:
    env = job["env"]
    assert env["ARM_USE_OIDC"] == "true"
    for name, var in (
        ("ARM_CLIENT_ID", "AZURE_CLIENT_ID"),
        ("ARM_TENANT_ID", "AZURE_TENANT_ID"),
        ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID"),
    ):
        assert env[name] == f"${{{{ vars.{var} }}}}"
    assert env["PULUMI_BACKEND_URL"].startswith("azblob://${{ vars.")
    assert env["AZURE_STORAGE_ACCOUNT"].startswith("${{ vars.")
    assert job["permissions"]["id-token"] == "write"
    assert job["permissions"]["contents"] == "read"
    login = index_of(job, lambda s: uses(s, "azure/login"), "with azure/login")
    assert steps(job)[login]["uses"] == "azure/login@v2"
    assert set(steps(job)[login]["with"]) == {"client-id", "tenant-id", "subscription-id"}
    # No `stack select --create`: it wrote the secrets provider only into the runner's checkout, and every
    # later run fell back to the passphrase provider. The stack file must name it; the job checks first.
    assert "stack select" not in yaml.safe_dump(job)
    check = index_of(job, lambda s: runs(s, r"\.ci/pulumi-stack check-secrets"), "checking the secrets provider")
    assert check < _pulumi_step(job, "preview")


def _pulumi_step(job: dict[str, Any], command: str) -> int:
    return index_of(
        job, lambda s: runs(s, rf"^\.ci/pulumi-stack {command} \"\$\{{STACK\}}\""), f".ci/pulumi-stack {command}"
    )


def _cli_installed_at_the_e2e_version(job: dict[str, Any]) -> None:
    install = steps(job)[index_of(job, lambda s: uses(s, "pulumi/actions"), "installing the Pulumi CLI")]
    assert install["uses"] == "pulumi/actions@v6"
    assert set(install["with"]) == {"pulumi-version"}, "pulumi/actions only installs; .ci/pulumi-stack runs"
    assert f"v{install['with']['pulumi-version']}" == e2e_cli_version()
    venv = index_of(job, lambda s: runs(s, r"\.ci/pulumi-stack policy-venv"), "preparing policies/venv")
    assert venv < _pulumi_step(job, "preview")


# --------------------------------------------------------------------------------------------------
# The stack matrix comes from the stack files
# --------------------------------------------------------------------------------------------------


def stack_matrix(folder: Path | None = None) -> dict[str, list[str]]:
    """What `.ci/stack-matrix [folder]` gives the workflows (its `name=JSON` lines for $GITHUB_OUTPUT)."""
    args = [sys.executable, str(ROOT / ".ci" / "stack-matrix"), *([str(folder)] if folder else [])]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return {name: json.loads(value) for name, _, value in (line.partition("=") for line in result.stdout.splitlines())}


@pytest.mark.stacks
def test_the_stack_matrix_lists_every_stack_file_protected_ones_after_throwaway_ones() -> None:
    matrix = stack_matrix()
    assert matrix["stacks"] == stacks()
    # dev says protectKmsResources: false; prod does not (and the default is true). A stack added by
    # docs/configuration.md (a copy of prod) is protected too; every stack is in exactly one of the two lists.
    assert "dev" in matrix["throwaway"] and "prod" in matrix["protected"]
    assert sorted(matrix["throwaway"] + matrix["protected"]) == stacks()
    assert not set(matrix["throwaway"]) & set(matrix["protected"])
    for stack in matrix["throwaway"]:
        assert "kms-aks:protectKmsResources: false" in (ROOT / f"Pulumi.{stack}.yaml").read_text(), stack
    assert stack_matrix(ROOT / "fleet")["stacks"] == sorted(
        p.name[len("Pulumi.") : -len(".yaml")] for p in (ROOT / "fleet").glob("Pulumi.*.yaml")
    )


def test_a_new_stack_file_is_a_new_matrix_entry_and_unsure_means_protected(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.eu-1.yaml").write_text("config:\n  kms-aks:protectKmsResources: false  # throwaway\n")
    (tmp_path / "Pulumi.us-1.yaml").write_text("config:\n  kms-aks:location: eastus\n")
    # Commented out, or under another key: not a throwaway stack.
    (tmp_path / "Pulumi.us-2.yaml").write_text("config:\n  # kms-aks:protectKmsResources: false\n")
    (tmp_path / "Pulumi.yaml").write_text("name: kms-aks\n")  # the project file is not a stack
    assert stack_matrix(tmp_path) == {
        "stacks": ["eu-1", "us-1", "us-2"],
        "throwaway": ["eu-1"],
        "protected": ["us-1", "us-2"],
    }
    empty = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "stack-matrix"), str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert empty.returncode == 2 and "no Pulumi.<stack>.yaml" in empty.stderr


def _matrix_source(job: dict[str, Any]) -> str:
    value = job["strategy"]["matrix"]["stack"]
    assert isinstance(value, str), f"a stack list written by hand: {value!r}"
    found = re.fullmatch(r"\$\{\{ fromJSON\(needs\.stacks\.outputs\.([a-z]+)\) \}\}", value)
    assert found, value
    return found[1]


def _lists_the_stack_files(doc: dict[str, Any]) -> dict[str, str]:
    """The `stacks` job: `.ci/stack-matrix` (root and fleet/) into $GITHUB_OUTPUT, exposed as job outputs."""
    job = doc["jobs"]["stacks"]
    runs_ = {step.get("id"): step.get("run", "") for step in steps(job)}
    assert runs_["list"] == '.ci/stack-matrix >> "${GITHUB_OUTPUT}"'
    assert runs_["fleet"] == '.ci/stack-matrix fleet >> "${GITHUB_OUTPUT}"'
    assert "secrets." not in yaml.safe_dump(job) and job["permissions"] == {"contents": "read"}
    return job["outputs"]



@pytest.mark.stacks
def test_preview_job_is_a_stack_matrix_with_oidc_the_pack_and_the_guard() -> None:
    doc = load(PREVIEW)
    outputs = _lists_the_stack_files(doc)
    job = doc["jobs"]["preview"]
    assert _matrix_source(job) == "stacks"
    assert outputs["stacks"] == "${{ steps.list.outputs.stacks }}"
    assert set(job["needs"]) == {"stacks", "offline"}
    assert job["permissions"]["pull-requests"] == "write"
    _oidc_env(job)
    _cli_installed_at_the_e2e_version(job)
    comment = index_of(job, lambda s: runs(s, r"pulumi-stack comment"), "commenting the guard's verdict")
    assert _pulumi_step(job, "preview") < comment


def test_the_pr_comment_is_the_guards_verdict_as_data_and_one_comment_per_stack() -> None:
    # The comment step is one call of the shared script (which make e2e runs against a stand-in of GitHub's API):
    # it renders the comment from the guard's verdict as data and the preview it judged, then edits the stack's
    # comment or adds it.
    job = load(PREVIEW)["jobs"]["preview"]
    step = steps(job)[index_of(job, lambda s: runs(s, r"pulumi-stack comment"), "commenting on the PR")]
    assert str(step["run"]).strip() == '.ci/pulumi-stack comment "${STACK}" "out/${STACK}" "${PR}"'
    assert step["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert "guard.txt" in step["if"] and step["if"].startswith("always()"), "a refused plan is commented too"
    shared = (ROOT / ".ci" / "pulumi-stack").read_text()
    preview = re.search(r"^  preview\)\n(.*?)^    ;;", shared, re.S | re.M)
    assert preview and '--json "$out/guard.json" 2>&1 | tee "$out/guard.txt"' in preview[1], "errors and data kept"
    comment = re.search(r"^  comment\)\n(.*?)^    ;;", shared, re.S | re.M)
    assert comment, ".ci/pulumi-stack has no comment command"
    assert re.search(
        r'"\$KMS_AKS" changes "\$out/preview\.json" --stack "\$stack" --guard-output "\$out/guard\.txt" \\\n\s+'
        r'--guard-json "\$out/guard\.json" --markdown "\$out/comment\.md"',
        comment[1],
    ), comment[1]
    assert "-m kms_aks_tools.pr_comment" in comment[1] and 'exit "$status"' in comment[1]
    assert "gh pr comment" not in PREVIEW.read_text(), "a new comment per push is what this replaces"


# --------------------------------------------------------------------------------------------------
# deploy.yml
# --------------------------------------------------------------------------------------------------


def test_deploy_runs_on_push_to_main_and_by_hand() -> None:
    on = load(DEPLOY)["on"]
    assert on["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in on


def test_deploy_matrix_comes_from_the_stack_files_throwaway_before_protected_then_the_fleet() -> None:
    doc = load(DEPLOY)
    outputs = _lists_the_stack_files(doc)
    jobs = doc["jobs"]
    assert set(jobs) == {"stacks", "throwaway", "protected", "fleet"}
    assert _matrix_source(jobs["throwaway"]) == "throwaway"
    assert _matrix_source(jobs["protected"]) == "protected"
    assert _matrix_source(jobs["fleet"]) == "fleet"
    assert outputs == {
        "throwaway": "${{ steps.list.outputs.throwaway }}",
        "protected": "${{ steps.list.outputs.protected }}",
        "fleet": "${{ steps.fleet.outputs.stacks }}",
    }
    # Together the two stack jobs deploy every stack file once: dev (throwaway) before prod (protected).
    matrix = stack_matrix()
    assert sorted(matrix["throwaway"] + matrix["protected"]) == stacks()
    assert jobs["throwaway"]["needs"] == "stacks"
    assert set(jobs["protected"]["needs"]) == {"stacks", "throwaway"}
    assert set(jobs["fleet"]["needs"]) == {"stacks", "protected"}
    # A job whose list is empty is skipped (an empty matrix is an error), and skipping one does not skip the next.
    assert "outputs.throwaway != '[]'" in jobs["throwaway"]["if"]
    for later in ("protected", "fleet"):
        assert "!failure() && !cancelled()" in jobs[later]["if"]
    for key in ("throwaway", "protected"):
        environment = jobs[key]["environment"]
        assert (environment["name"] if isinstance(environment, dict) else environment) == "${{ matrix.stack }}"


@pytest.mark.stacks
def test_deploy_concurrency_is_per_stack_and_never_cancels() -> None:
    jobs = load(DEPLOY)["jobs"]
    for key in ("throwaway", "protected", "fleet"):
        concurrency = jobs[key]["concurrency"]
        assert "${{ matrix.stack }}" in concurrency["group"]
        assert concurrency["cancel-in-progress"] is False
    # The cluster jobs share one group per stack; the fleet's are its own.
    assert jobs["throwaway"]["concurrency"]["group"] == jobs["protected"]["concurrency"]["group"]
    assert jobs["fleet"]["concurrency"]["group"] != jobs["protected"]["concurrency"]["group"]


@pytest.mark.parametrize("key", ["throwaway", "protected"])
def test_deploy_guards_a_preview_then_applies_exactly_its_plan(key: str) -> None:
    job = load(DEPLOY)["jobs"][key]
    assert job["env"]["STACK"] == "${{ matrix.stack }}"
    _oidc_env(job)
    _cli_installed_at_the_e2e_version(job)
    assert "pull-requests" not in job["permissions"]
    assert _pulumi_step(job, "preview") < _pulumi_step(job, "up")


def test_the_shared_commands_preview_save_a_plan_guard_it_and_up_applies_it() -> None:
    script = (ROOT / ".ci" / "pulumi-stack").read_text()
    preview = re.search(r"pulumi preview (.*?)>", script, re.S)
    assert preview and "--json" in preview[1] and '--save-plan "$out/plan.json"' in preview[1]
    # The guard needs the unchanged resources to tie a changed grant to the KMS identity (tests/test_guard.py).
    assert "--show-sames" in preview[1]
    assert "policy_pack_args" in preview[1]
    assert '--policy-pack policies --policy-pack-config "policies/config/${stack}.json"' in script
    assert re.search(r'"\$KMS_AKS" guard "\$out/preview\.json"', script)
    assert "--overrides guard-overrides.yaml" in script
    up = re.search(r"pulumi up (.*?)\n\s*\$\(policy_pack_args", script, re.S)
    assert up and '--plan "$out/plan.json"' in up[1] and "--skip-preview" in up[1]


def test_every_shared_command_the_workflows_run_is_exercised_by_the_e2e() -> None:
    # One source for the commands: the workflows and the real-CLI scenarios both call .ci/pulumi-stack.
    used = set()
    for path in (PREVIEW, DEPLOY):
        used |= set(re.findall(r"\.ci/pulumi-stack ([a-z-]+)", path.read_text()))
    # tests/e2e/test_sandbox.py drives `kms-aks sandbox`, whose commands are these too
    # (kms_aks_tools/sandbox/actions.py).
    sources = [*(ROOT / "tests" / "e2e").glob("*.py"), ROOT / "kms_aks_tools" / "sandbox" / "actions.py"]
    exercised = set(re.findall(r"\.ci\(\s*\"([a-z-]+)\"", "\n".join(p.read_text() for p in sources)))
    assert used == {"policy-venv", "check-secrets", "preview", "up", "comment", "fleet-preview", "fleet-up"}
    assert used <= exercised


@pytest.mark.parametrize("path", [PREVIEW, DEPLOY], ids=["preview", "deploy"])
def test_a_fleet_job_previews_every_fleet_stack(path: Path) -> None:
    job = load(path)["jobs"]["fleet"]
    assert _matrix_source(job) == "fleet"
    _oidc_env_without_pack(job)
    check = index_of(job, lambda s: runs(s, r'check-secrets "\$\{STACK\}" fleet'), "checking the fleet's secrets")
    preview = _pulumi_step(job, "fleet-preview")
    assert check < preview
    if path == DEPLOY:
        assert preview < _pulumi_step(job, "fleet-up")
    else:
        # In a PR the fleet is previewed after the clusters' previews, never applied.
        assert "preview" in job["needs"]
        assert "fleet-up" not in yaml.safe_dump(job)


def _oidc_env_without_pack(job: dict[str, Any]) -> None:
    env = job["env"]
    assert env["ARM_USE_OIDC"] == "true"
    assert env["PULUMI_BACKEND_URL"].startswith("azblob://${{ vars.")
    assert job["permissions"]["id-token"] == "write"
    assert "stack select" not in yaml.safe_dump(job)


def e2e_cli_version() -> str:
    """The CLI version `make e2e` builds: the wrapper module's requirement on pulumi/pkg/v3."""
    found = re.search(r"github\.com/pulumi/pulumi/pkg/v3 (v[0-9.]+)", (ROOT / "e2e/toolchain/cli/go.mod").read_text())
    assert found
    return found[1]


def test_workflows_use_no_long_lived_secrets() -> None:
    for path in (PREVIEW, DEPLOY):
        assert "secrets." not in path.read_text(), f"{path.name}: use OIDC and repository variables"


# --------------------------------------------------------------------------------------------------
# What the workflows call must exist
# --------------------------------------------------------------------------------------------------


@pytest.mark.stacks
@pytest.mark.parametrize("stack", stacks())
def test_policy_pack_config_exists_for_every_stack(stack: str) -> None:
    assert (ROOT / "policies" / "config" / f"{stack}.json").is_file()


def _make_dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    assert make, "make is required"
    return subprocess.run([make, "-n", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60, check=False)


def test_make_guard_runs_the_guard() -> None:
    result = _make_dry_run("guard", "PREVIEW=preview.json", "ARGS=--overrides guard-overrides.yaml")
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"kms-aks guard preview\.json --overrides guard-overrides\.yaml\s*$", result.stdout, re.MULTILINE
    ), result.stdout


def test_make_install_stamp_used_by_the_workflows_exists() -> None:
    result = _make_dry_run(".venv/.installed")
    assert result.returncode == 0, result.stderr
