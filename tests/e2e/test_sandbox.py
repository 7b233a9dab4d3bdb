"""`kms-aks sandbox` as a user runs it: the real CLI against the stand-in, offline, in a scratch copy of the project.

The tests run in file order on one sandbox: dev is deployed, its stack file edited (a node count, the policy
config, a key id) and previewed with the pack and the guard, and destroyed. Every assertion is on what the
commands printed, the PR comment they wrote, and the stand-in's cloud saved between them (`.sandbox/azure.json`):
each command is its own process, so a change applied by `up` proves the cloud outlived the command before it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from kms_aks_tools.offline import realcli

ROOT = realcli.ROOT
CLUSTER = "azure-native:containerservice:ManagedCluster"
NEW_VERSION = "0123456789abcdef0123456789abcdef"
KEY_URI = "https://kv-kmsaks-dev-01.vault.azure.net/keys/aks-kms-dev"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sandbox") / "project"
    realcli.copy_project(ROOT, folder)
    return folder


def sandbox(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`kms-aks sandbox ...` as a user types it, in its own process."""
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "kms-aks"), "sandbox", *args, "--cwd", str(project)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**os.environ, "LANG": "C.UTF-8"},
    )


def cloud(project: Path) -> dict[str, dict]:
    """The stand-in's saved Azure: ARM id -> the resource's type and outputs."""
    document = json.loads((project / ".sandbox" / "azure.json").read_text())
    return {r["id"]: r for r in document["resources"]}


def the_cluster(project: Path) -> dict:
    clusters = [r["outputs"] for r in cloud(project).values() if r["type"] == CLUSTER]
    assert len(clusters) == 1
    return clusters[0]


def comment(project: Path) -> str:
    return (project / ".sandbox" / "out" / "dev" / "comment.md").read_text()


def test_up_deploys_dev_with_the_pack_and_the_guard_and_leaves_the_stack_file_alone(project: Path) -> None:
    stack_file = (project / "Pulumi.dev.yaml").read_text()
    result = sandbox(project, "up", "--stack", "dev")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "policy pack: passed with policies/config/dev.json" in result.stdout
    assert "plan guard: passed, no irreversible KMS change" in result.stdout
    assert "sandbox up: dev is deployed into the stand-in." in result.stdout
    # `pulumi up`'s own output, streamed: the real CLI applied the plan.
    assert "Resources:" in result.stdout and "created" in result.stdout
    assert the_cluster(project)["agentPoolProfiles"][0]["count"] == 2
    assert (project / "Pulumi.dev.yaml").read_text() == stack_file, "the sandbox's secrets provider stays in .sandbox/"
    status = sandbox(project, "status")
    assert "stacks in the sandbox: dev" in status.stdout
    assert f"the stand-in's Azure: {len(cloud(project))} resources" in status.stdout


def test_a_node_count_edit_previews_as_one_update_and_up_applies_it(project: Path) -> None:
    realcli.set_stack_config(project / "Pulumi.dev.yaml", "cluster.systemNodePool.count", 3)
    previewed = sandbox(project, "preview", "--stack", "dev")
    assert previewed.returncode == 0, previewed.stdout[-4000:] + previewed.stderr[-4000:]
    assert "policy pack: passed" in previewed.stdout
    assert "agentPoolProfiles[0].count (update): 2 → 3" in previewed.stdout
    assert "plan guard: passed" in previewed.stdout
    text = comment(project)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith(("| op", "| ---"))]
    assert len(rows) == 1 and rows[0].startswith("| update | `aks-cluster` ManagedCluster |"), text
    assert "`agentPoolProfiles[0].count`: `2` → `3`" in rows[0]
    assert text.startswith("### dev: passed the plan guard (1 to update,"), text

    applied = sandbox(project, "up", "--stack", "dev")
    assert applied.returncode == 0, applied.stdout[-4000:] + applied.stderr[-4000:]
    # The update reached the cluster the previous process created: the cloud was saved and loaded.
    assert the_cluster(project)["agentPoolProfiles"][0]["count"] == 3


def test_the_packs_refusal_is_shown_and_nothing_is_judged_or_applied(project: Path) -> None:
    policy_config = project / "policies" / "config" / "dev.json"
    original = policy_config.read_text()
    policy_config.write_text((project / "policies" / "config" / "prod.json").read_text())
    try:
        result = sandbox(project, "up", "--stack", "dev")
    finally:
        policy_config.write_text(original)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "[mandatory]" in output and "aks-kms-key-vault-fit" in output
    assert "nothing was judged by the guard" in output
    assert "sandbox up: refused before anything was applied" in output


def test_a_key_id_change_passes_the_pack_and_is_refused_by_the_guard(project: Path) -> None:
    stack_file, policy_config = project / "Pulumi.dev.yaml", project / "policies" / "config" / "dev.json"
    originals = stack_file.read_text(), policy_config.read_text()
    new_key_id = f"{KEY_URI}/{NEW_VERSION}"
    old_key_id = the_cluster(project)["securityProfile"]["azureKeyVaultKms"]["keyId"]
    realcli.set_stack_config(stack_file, "kmsKey.version", NEW_VERSION)
    policy_config.write_text(
        json.dumps({**json.loads(originals[1]), "aks-kms-key-source": {"pinnedKeyIds": [new_key_id]}})
    )
    try:
        previewed = sandbox(project, "preview", "--stack", "dev")
        refused = sandbox(project, "up", "--stack", "dev")
    finally:
        stack_file.write_text(originals[0])
        policy_config.write_text(originals[1])
    assert previewed.returncode == 1, previewed.stdout[-4000:] + previewed.stderr[-4000:]
    assert "policy pack: passed" in previewed.stdout
    assert f"securityProfile.azureKeyVaultKms.keyId (update): {old_key_id} → {new_key_id}" in previewed.stdout
    assert "REFUSED [kms-key-change]" in previewed.stdout
    text = comment(project)
    assert re.match(r"### dev: refused by the plan guard, \d+ findings?, nothing applied\n", text), text
    assert f'<code title="{old_key_id}">' in text and f'<code title="{new_key_id}">' in text
    assert "- **`kms-key-change`** `aks-cluster`" in text and "  - **to proceed:** a planned rotation" in text
    assert refused.returncode == 1
    assert "sandbox up: refused before anything was applied" in refused.stdout
    assert the_cluster(project)["securityProfile"]["azureKeyVaultKms"]["keyId"] == old_key_id


def test_destroy_empties_the_stand_in_and_drops_the_stack(project: Path) -> None:
    result = sandbox(project, "destroy", "--stack", "dev")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "sandbox destroy: dev is destroyed and removed from the sandbox." in result.stdout
    assert cloud(project) == {}
    status = sandbox(project, "status")
    assert "stacks in the sandbox: none" in status.stdout
    assert "the stand-in's Azure: 0 resources" in status.stdout
