"""`kms-aks plan` end to end: the real program, the real pack over its protocol, the exit code and the output.

In-process through `kms-aks`'s own `main` (the `kms_aks` fixture); the last test runs it through make."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kms_aks_tools.offline.mock_engine import ROOT
from tests.cli import TERMINAL, UNKNOWN_STACK, project_stacks
from tests.conftest import KmsAks

STACKS = Path(__file__).parent / "stacks"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_plan_clean(kms_aks: KmsAks, stack: str) -> None:
    result = kms_aks("plan", "--stack", stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"stack {stack} (preview)" in result.stdout
    assert "aks-cluster azure-native:containerservice:ManagedCluster" in result.stdout
    assert "KMS enabled: yes" in result.stdout
    assert "identity type: UserAssigned" in result.stdout
    assert "mandatory policy violations" not in result.stdout
    assert "Critical path" in result.stdout
    protected = {"dev": 0, "prod": 3}[stack]
    # prod has one more: the key-new-version alert.
    count = 19 if stack == "prod" else 18
    throwaway = ": a throwaway stack" if stack == "dev" else ""
    assert (
        f"{count} cloud resources to create ({protected} protected from deletion{throwaway}), in 4 components"
        in result.stdout
    )


def test_standard_key_against_an_hsm_policy_is_blocked_naming_the_policy(kms_aks: KmsAks) -> None:
    result = kms_aks("plan", "--stack", "dev", "--policy-config", "policies/config/prod.json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mandatory policy violations" in result.stdout
    assert "aks-kms-key-vault-fit on kms-key" in result.stdout
    assert "this stack would be blocked" in result.stdout


def test_json_output_parses_and_lists_every_resource(kms_aks: KmsAks, tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    result = kms_aks("plan", "--stack", "prod", "--json", str(target), "--applied")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(target.read_text())
    names = {r["name"] for r in document["resources"]}
    assert names >= {"rg", "kms-vault", "kms-key", "kms-identity", "kms-crypto-user", "aks-admins", "aks-cluster"}
    assert document["mode"] == "applied"
    assert document["verdict"] == "clean"
    path = document["critical_path"]
    assert path[:-1] == ["rg", "kms-vault", "kms-key", "kms-crypto-user", "kms-grant-propagation", "aks-cluster"]
    # Two extension resources on the cluster tie for last place.
    assert path[-1] in {"monitoring-cluster-diagnostics", "monitoring-container-insights-association"}
    # The propagation wait and the cluster each form a wave of their own; the cluster's diagnostic setting follows.
    assert [len(w) for w in document["waves"]] == [2, 4, 5, 4, 1, 1, 2]
    assert document["waves"][4] == ["kms-grant-propagation"] and document["waves"][5] == ["aks-cluster"]
    cluster = next(r for r in document["resources"] if r["name"] == "aks-cluster")
    assert cluster["highlights"]["key id"].startswith("https://kv-kmsaks-prod-01.vault.azure.net/keys/aks-kms-prod/")


def test_json_to_stdout_stays_parseable_with_violations(kms_aks: KmsAks) -> None:
    result = kms_aks("plan", "--stack", "dev", "--policy-config", "policies/config/prod.json", "--json", "-")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["verdict"] == "blocked"
    assert any(
        v["policy"] == "aks-kms-key-vault-fit" and v["enforcementLevel"] == "mandatory" for v in document["violations"]
    )
    assert "mandatory policy violations" in result.stderr


def test_graph_is_written_as_dot(kms_aks: KmsAks, tmp_path: Path) -> None:
    target = tmp_path / "plan.dot"
    result = kms_aks("plan", "--stack", "dev", "--graph", str(target))
    assert result.returncode == 0, result.stderr
    dot = target.read_text()
    assert dot.startswith("digraph plan {")
    cluster = (
        "urn:pulumi:dev::kms-aks::kms-aks:index:KmsAksCluster$azure-native:containerservice:ManagedCluster::aks-cluster"
    )
    policy = "urn:pulumi:dev::kms-aks::kms-aks:index:KmsIdentity$azure-native:keyvault:AccessPolicy::kms-access-policy"
    wait = "urn:pulumi:dev::kms-aks::kms-aks:index:KmsIdentity$time:index/sleep:Sleep::kms-grant-propagation"
    # The grant -> the propagation wait -> the cluster: the KMS chain, drawn in red.
    assert f'"{policy}" -> "{wait}" [color="#cf222e", penwidth=2];' in dot
    assert f'"{wait}" -> "{cluster}" [color="#cf222e", penwidth=2];' in dot


def test_bad_config_exits_non_zero_naming_the_key(kms_aks: KmsAks) -> None:
    result = kms_aks("plan", "--stack", str(STACKS / "Pulumi.bad-node-count.yaml"))
    assert result.returncode == 2
    assert "kms-aks:cluster.systemNodePool.count: Input should be a valid integer (got 'banana')" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "stack bad-node-count (preview)" not in result.stdout  # nothing half-printed


@pytest.mark.stacks
def test_unknown_stack_lists_the_stacks(kms_aks: KmsAks) -> None:
    result = kms_aks("plan", "--stack", UNKNOWN_STACK)
    assert result.returncode == 2
    assert f"unknown stack '{UNKNOWN_STACK}'; stacks: {project_stacks()}" in result.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{not json", "not valid JSON"), ('["aks-kms-enabled"]', "expected an object of policy names")],
)
def test_broken_policy_config_gets_a_clear_message(
    kms_aks: KmsAks, tmp_path: Path, content: str, expected: str
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(content)
    result = kms_aks("plan", "--stack", "dev", "--policy-config", str(broken))
    assert result.returncode == 2
    assert expected in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_policy_config_file_is_named(kms_aks: KmsAks, tmp_path: Path) -> None:
    result = kms_aks("plan", "--stack", "dev", "--policy-config", str(tmp_path / "absent.json"))
    assert result.returncode == 2
    assert "absent.json does not exist" in result.stdout


def test_secrets_are_redacted_from_what_the_plan_prints() -> None:
    from kms_aks_tools.offline.recording import SECRET_SIG, SECRET_SIG_KEY, redact_secrets

    secret = {SECRET_SIG_KEY: SECRET_SIG, "value": "hunter2"}
    redacted = redact_secrets({"a": [secret, {"b": secret}], "c": "plain"})
    assert redacted == {"a": ["[secret]", {"b": "[secret]"}], "c": "plain"}
    assert "hunter2" not in json.dumps(redacted)


def test_graph_as_svg_uses_graphviz_and_keeps_the_dot(kms_aks: KmsAks, tmp_path: Path) -> None:
    assert shutil.which("dot"), "make test installs graphviz (make graphviz); the next test covers its absence"
    target = tmp_path / "plan.svg"
    result = kms_aks("plan", "--stack", "prod", "--graph", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_text().lstrip().startswith(("<?xml", "<svg"))
    assert "ManagedCluster" in target.read_text()
    assert (tmp_path / "plan.dot").read_text().startswith("digraph plan {")


def test_graph_without_graphviz_writes_dot_and_says_how_to_render(
    kms_aks: KmsAks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kms_aks_tools.commands import plan as plan_module

    monkeypatch.setattr(plan_module.shutil, "which", lambda _: None)
    target = tmp_path / "plan.svg"
    result = kms_aks("plan", "--stack", "prod", "--graph", str(target))
    assert result.returncode == 0, result.stderr  # the graph is an extra; the verdict decides the exit code
    assert not target.exists()
    assert (tmp_path / "plan.dot").read_text().startswith("digraph plan {")
    assert "graphviz `dot` not found: wrote DOT to" in result.stdout
    assert "make graphviz" in result.stdout
    assert f"dot -Tsvg {tmp_path / 'plan.dot'} -o {target}" in result.stdout


def test_nothing_but_make_graphviz_runs_apt_get() -> None:
    def dry_run(*args: str) -> str:
        return subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    assert "apt-get" not in dry_run("plan", "ARGS=--graph plan.svg")
    assert "apt-get" not in dry_run("plan")
    assert "apt-get install" in dry_run("graphviz")
    # make test renders the graph, so it runs the graphviz target (which installs nothing when dot is there).
    assert re.search(r"^test: .*\bgraphviz\b", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_make_plan_is_the_same_command_and_fails_on_a_mandatory_violation() -> None:
    # Through the Makefile, as the README says to run it (the suite itself runs under `make test`, so the
    # venv stamp is there and make installs nothing).
    result = subprocess.run(
        ["make", "-s", "plan", "STACK=dev", "ARGS=--policy-config policies/config/prod.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**TERMINAL, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "aks-kms-key-vault-fit on kms-key" in result.stdout
