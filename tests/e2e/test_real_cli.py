"""Scenarios under the real Pulumi CLI and engine (built from source), attached to the Azure stand-in.

Every assertion is on what the CLI really produced: exit codes, `pulumi preview --json`, the state export, the
policy pack's messages and the guard's verdicts. The tests run in file order and share one backend: the dev and
prod stacks are created, changed and destroyed as a team would.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from kms_aks_tools.offline.mock_engine import run_stack
from kms_aks_tools.offline.recording import UNKNOWN
from tests.e2e.conftest import Workspace

STACKS = ("dev", "prod")
CLUSTER_TYPE = "azure-native:containerservice:ManagedCluster"
GRANT_TYPES = {"azure-native:keyvault:AccessPolicy", "azure-native:authorization:RoleAssignment"}
WAIT_TYPE = "time:index/sleep:Sleep"
KMS_TYPES = {
    "azure-native:keyvault:Key",
    "azure-native:keyvault:Vault",
    "azure-native:managedidentity:UserAssignedIdentity",
}
NEW_VERSION = "0123456789abcdef0123456789abcdef"
# Resources azure-native names in Check when the program gives no name: the input that carries it.
AUTO_NAMED = {"azure-native:authorization:RoleAssignment": "roleAssignmentName"}


def _type(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def _resources(export: dict) -> dict[str, dict]:
    return {r["urn"]: r for r in export["deployment"].get("resources", []) if not r["type"].startswith("pulumi:")}


def _one(resources: dict[str, dict], type_token: str) -> dict:
    found = [r for r in resources.values() if r["type"] == type_token]
    assert len(found) == 1, f"{type_token}: {len(found)}"
    return found[0]


def _preview_json(space: Workspace, stack: str) -> dict:
    return json.loads((space.out / stack / "preview.json").read_text())


# ---------------------------------------------------------------------------------------------------- set-up


def test_a_stack_file_without_a_secrets_provider_is_refused_until_init_writes_one(workspace: Workspace) -> None:
    for stack in STACKS:
        refused = workspace.ci("check-secrets", stack)
        assert refused.returncode == 2
        assert f"Pulumi.{stack}.yaml has no secretsprovider" in refused.stderr
        created = workspace.pulumi("stack", "init", stack, "--secrets-provider", "passphrase")
        assert created.returncode == 0, created.stderr
        # The CLI wrote the provider's lines into the stack file: committed, every later run finds them.
        assert re.search(r"^encryptionsalt: v1:", workspace.stack_file(stack).read_text(), re.MULTILINE)
        assert workspace.ci("check-secrets", stack).returncode == 0


# ---------------------------------------------------------------------------------------- 1. preview + guard


@pytest.mark.parametrize("stack", STACKS)
def test_preview_with_the_pack_passes_and_the_guard_passes_it(workspace: Workspace, stack: str) -> None:
    result = workspace.ci("preview", stack, str(workspace.out / stack))
    assert result.returncode == 0, result.stderr
    preview = _preview_json(workspace, stack)
    ops = {step["urn"]: step["op"] for step in preview["steps"]}
    assert set(ops.values()) == {"create"}
    types = {_type(urn) for urn in ops}
    assert {CLUSTER_TYPE, WAIT_TYPE, *KMS_TYPES} <= types
    # The real engine's URNs: no root Stack type in a top-level resource's URN.
    assert not any("pulumi:pulumi:Stack$" in urn for urn in ops)
    assert (workspace.out / stack / "plan.json").is_file()
    assert "passed" in (workspace.out / stack / "guard.txt").read_text().lower()


# --------------------------------------------------------------------------------- 2. up, then the state


@pytest.mark.parametrize("stack", STACKS)
def test_up_applies_the_reviewed_plan_and_the_state_holds_the_design(workspace: Workspace, stack: str) -> None:
    result = workspace.ci("up", stack, str(workspace.out / stack))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    resources = _resources(workspace.export(stack))
    protected = stack == "prod"
    for type_token in KMS_TYPES:
        assert _one(resources, type_token).get("protect", False) is protected, type_token
    key = _one(resources, "azure-native:keyvault:Key")
    assert _type(key["parent"]) == "kms-aks:index:KeyVaultWithKey"
    cluster = _one(resources, CLUSTER_TYPE)
    assert _type(cluster["parent"]) == "kms-aks:index:KmsAksCluster"
    grants = {urn for urn, r in resources.items() if r["type"] in GRANT_TYPES}
    wait = _one(resources, WAIT_TYPE)
    assert grants and grants <= set(wait["dependencies"]), "the propagation wait waits for every grant"
    assert wait["urn"] in cluster["dependencies"], "the cluster waits for the propagation wait"
    assert cluster["outputs"]["securityProfile"]["azureKeyVaultKms"]["keyId"] == key["outputs"]["keyUriWithVersion"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_mock_engine_records_what_the_real_engine_registers(workspace: Workspace, stack: str) -> None:
    real = _resources(workspace.export(stack))
    mocked = {r.urn: r for r in run_stack(stack).resources if not r.type.startswith("pulumi:")}
    assert set(real) == set(mocked)
    for urn, resource in real.items():
        recorded = mocked[urn]
        assert resource.get("parent", "") == recorded.parent, urn
        assert set(resource.get("dependencies", [])) == set(recorded.dependencies), urn
        assert resource.get("protect", False) == recorded.protect, urn
        if not resource["custom"]:
            continue
        inputs = _plain(resource["inputs"])
        # What the provider's Check adds to the program's inputs: azure-native's auto-name (a random UUID for a
        # role assignment's name), its `__createBeforeDelete` marker and (3.x) `azureApiVersion`, the API version
        # the resource's outputs report too. The mock engine runs no Check.
        added = {key: inputs.pop(key) for key in set(inputs) - set(recorded.inputs)}
        auto_name = added.pop(AUTO_NAMED.get(resource["type"], ""), None)
        if "azureApiVersion" in added:
            assert added.pop("azureApiVersion") == resource["outputs"]["azureApiVersion"], urn
        assert set(added) <= {"__createBeforeDelete"}, (urn, added)
        assert inputs == _plain(recorded.inputs), urn
        if auto_name is None:
            assert resource["id"] == recorded.id, urn
        else:
            assert resource["id"].rsplit("/", 1) == [recorded.id.rsplit("/", 1)[0], auto_name], urn


def _plain(value: object) -> object:
    """Secrets as the export's ciphertext and the recording's marker compare as "[secret]"."""
    if isinstance(value, dict):
        if "4dabf18193072939515e22adb298388d" in value:
            return "[secret]"
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_up_refuses_a_change_the_reviewed_plan_did_not_contain(workspace: Workspace) -> None:
    out = workspace.out / "dev-unreviewed"
    assert workspace.ci("preview", "dev", str(out)).returncode == 0
    workspace.set_config("dev", "cluster.systemNodePool.count", 5)
    try:
        applied = workspace.ci("up", "dev", str(out))
    finally:
        workspace.set_config("dev", "cluster.systemNodePool.count", 2)
    assert applied.returncode != 0
    assert "violates plan" in applied.stdout + applied.stderr


# --------------------------------------------------------------------------------- 3. policy violations


def test_dev_under_prods_policy_config_fails_with_the_packs_mandatory_messages(workspace: Workspace) -> None:
    result = workspace.pulumi(
        "preview", "--stack", "dev", "--policy-pack", "policies", "--policy-pack-config", "policies/config/prod.json"
    )
    assert result.returncode != 0
    assert "[mandatory]" in result.stdout
    assert "aks-kms-key-vault-fit" in result.stdout and "requireHsm" in result.stdout
    assert "aks-kms-deletion-protection" in result.stdout


def test_a_system_assigned_identity_is_blocked_by_the_real_cli(workspace: Workspace, tmp_path: Path) -> None:
    # A test-only entry point (system_assigned.py): the real program, the cluster's identity swapped.
    variant = Workspace(path=tmp_path / "variant", env=workspace.env, out=workspace.out)
    shutil.copytree(workspace.path, variant.path, symlinks=True)
    shutil.copy(Path(__file__).parent / "system_assigned.py", variant.path / "system_assigned.py")
    project = variant.path / "Pulumi.yaml"
    project.write_text(project.read_text() + "main: system_assigned.py\n")
    shutil.copy(variant.path / "Pulumi.dev.yaml", variant.path / "Pulumi.sysid.yaml")
    variant.stack_file("sysid").write_text(
        re.sub(r"(?m)^encryptionsalt:.*\n", "", variant.stack_file("sysid").read_text())
    )
    shutil.copy(variant.path / "policies" / "config" / "dev.json", variant.path / "policies" / "config" / "sysid.json")
    assert variant.pulumi("stack", "init", "sysid", "--secrets-provider", "passphrase").returncode == 0
    # The workflows' preview: it fails, and shows the pack's verdict that --json alone would not carry.
    result = variant.ci("preview", "sysid", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "aks-kms-user-assigned-identity" in result.stderr
    assert "[mandatory]" in result.stderr
    assert not (tmp_path / "out" / "guard.txt").exists(), "no guard verdict on a preview the pack refused"


# ------------------------------------------------------------------------------------ 4. changes after up


def test_a_key_rotation_is_refused_by_the_guard_and_allowed_for_that_urn_and_key_id(workspace: Workspace) -> None:
    resources = _resources(workspace.export("dev"))
    cluster = _one(resources, CLUSTER_TYPE)
    key = _one(resources, "azure-native:keyvault:Key")
    current_key_id = cluster["outputs"]["securityProfile"]["azureKeyVaultKms"]["keyId"]
    new_key_id = f"{key['outputs']['keyUri']}/{NEW_VERSION}"
    # The documented procedure: pin the version in the stack config and in the pack's config.
    stack_file = workspace.stack_file("dev").read_text()
    workspace.set_config("dev", "kmsKey.version", NEW_VERSION)
    policy_config = workspace.path / "policies" / "config" / "dev.json"
    original = policy_config.read_text()
    policy_config.write_text(
        json.dumps({**json.loads(original), "aks-kms-key-source": {"pinnedKeyIds": [new_key_id]}}, indent=2)
    )
    overrides = workspace.path / "guard-overrides.yaml"
    records = workspace.path / "rotations" / "dev.yaml"
    try:
        out = workspace.out / "dev-rotation"
        refused = workspace.ci("preview", "dev", str(out))
        assert refused.returncode == 1, refused.stdout[-2000:] + refused.stderr
        step = next(s for s in _preview_json(workspace, "dev-rotation")["steps"] if s["urn"] == cluster["urn"])
        assert step["op"] == "update"
        assert cluster["urn"] in refused.stdout and new_key_id in refused.stdout

        overrides.write_text(
            f'keyRotations:\n  - urn: "{cluster["urn"]}"\n    newKeyId: "{new_key_id}"\n'
            '    reason: "e2e: planned rotation"\n'
        )
        # The rotation gate: the current key has no re-encryption record in rotations/dev.yaml yet.
        gated = workspace.ci("preview", "dev", str(out))
        assert gated.returncode == 1, gated.stdout[-2000:] + gated.stderr
        assert f"REFUSED [rotation-without-reencryption] {cluster['urn']}" in gated.stdout.splitlines()
        advice = f"kms-aks reencrypt --stack dev --key-id {current_key_id} --context"
        assert advice in gated.stdout.replace("\n    ", " ")

        # The record `kms-aks reencrypt` writes after a verified pass under the current key on this cluster (its
        # name and API server host as the deployed stack's state has them), committed.
        records.parent.mkdir(exist_ok=True)
        plugin_key_id = hashlib.sha256(current_key_id.encode()).hexdigest()
        label = "sha256:" + hashlib.sha256(plugin_key_id.encode()).hexdigest()
        record = {
            "keyId": current_key_id,
            "pluginKeyId": plugin_key_id,
            "complete": True,
            "finishedAt": "2026-11-30T12:00:00Z",
            "durationSeconds": 1.0,
            "cluster": {
                "name": cluster["outputs"]["name"],
                "context": "dev-admin",
                "server": f"https://{cluster['outputs']['fqdn']}:443",
            },
            "secrets": {"listed": 3, "rewritten": 3, "deleted": 0, "failed": 0},
            "apiServer": {"metricsServed": True},
            "verification": {
                "status": "verified",
                "keyIdHash": label,
                "apiServers": ["sha256:" + "a" * 64],
                "startedAt": "2026-11-30T11:59:50Z",
                "finishedAt": "2026-11-30T11:59:59Z",
                "secretsListed": 3,
                "secretsRead": 3,
                "readsByKey": {label: 3},
                "exact": True,
            },
        }
        records.write_text(yaml.safe_dump({"stack": "dev", "records": [record]}))
        allowed = workspace.ci("preview", "dev", str(out))
        assert allowed.returncode == 0, allowed.stdout[-2000:] + allowed.stderr
        assert f"ALLOWED [kms-key-change] {cluster['urn']}" in allowed.stdout.splitlines()
    finally:
        overrides.unlink(missing_ok=True)
        records.unlink(missing_ok=True)
        policy_config.write_text(original)
        workspace.stack_file("dev").write_text(stack_file)


def test_the_workflows_preview_shows_the_unchanged_resources_the_guard_ties_a_grant_with(workspace: Workspace) -> None:
    # Switching dev's vault to RBAC deletes the KMS identity's access policy in the same update. The guard can
    # tell that policy is the KMS identity's only because `.ci/pulumi-stack preview` passes --show-sames: the
    # unchanged cluster and identity are in the JSON.
    original = workspace.stack_file("dev").read_text()
    workspace.set_config("dev", "keyVault.permissionModel", "rbac")
    try:
        result = workspace.ci("preview", "dev", str(workspace.out / "dev-to-rbac"))
    finally:
        workspace.stack_file("dev").write_text(original)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr
    steps = {s["urn"]: s for s in _preview_json(workspace, "dev-to-rbac")["steps"]}
    by_type = {_type(urn): step["op"] for urn, step in steps.items()}
    assert by_type[CLUSTER_TYPE] == "same" and by_type["azure-native:managedidentity:UserAssignedIdentity"] == "same"
    assert by_type["azure-native:keyvault:AccessPolicy"] == "delete"
    refusals = sorted(line.split(" ")[1] for line in result.stdout.splitlines() if line.startswith("REFUSED "))
    assert refusals == ["[kms-grant-removed]", "[vault-permission-model-change]"]
    assert "held by the KMS identity" in result.stdout.replace("\n    ", " ")


def _previewed_key_change(workspace: Workspace, name: str, settings: dict[str, object]) -> tuple[int, dict]:
    """Previews dev with `settings` changed (the workflows' preview + guard); returns its exit code and Key step."""
    original = workspace.stack_file("dev").read_text()
    for key, value in settings.items():
        workspace.set_config("dev", key, value)
    try:
        result = workspace.ci("preview", "dev", str(workspace.out / name))
    finally:
        workspace.stack_file("dev").write_text(original)
    steps = _preview_json(workspace, name)["steps"]
    return result.returncode, next(s for s in steps if _type(s["urn"]) == "azure-native:keyvault:Key")


def test_a_key_type_change_is_refused_by_the_guard(workspace: Workspace) -> None:
    # azure-native has no replace-on-change for a Key's kty (its ARM spec marks no Key property create-only):
    # the engine plans an in-place update that ARM's Keys_CreateIfNotExist would refuse. The guard refuses it.
    exit_code, key_step = _previewed_key_change(
        workspace, "dev-kty", {"keyVault.sku": "premium", "kmsKey.type": "RSA-HSM"}
    )
    assert exit_code == 1
    assert key_step["op"] == "update"
    assert "properties.kty" in (key_step.get("detailedDiff") or {}), key_step.get("detailedDiff")


def test_a_key_rename_is_a_replacement_and_the_guard_refuses_it(workspace: Workspace) -> None:
    exit_code, key_step = _previewed_key_change(workspace, "dev-rename", {"kmsKey.name": "aks-kms-dev-2"})
    assert exit_code == 1
    assert key_step["op"] == "replace"
    assert "keyName" in (key_step.get("replaceReasons") or []), key_step.get("replaceReasons")


def test_a_harmless_change_passes_and_is_applied(workspace: Workspace) -> None:
    out = workspace.out / "dev-count"
    workspace.set_config("dev", "cluster.systemNodePool.count", 3)
    reviewed = workspace.ci("preview", "dev", str(out))
    assert reviewed.returncode == 0, reviewed.stdout[-2000:] + reviewed.stderr
    changed = [s for s in json.loads((out / "preview.json").read_text())["steps"] if s["op"] != "same"]
    assert [(_type(s["urn"]), s["op"]) for s in changed] == [(CLUSTER_TYPE, "update")]
    assert workspace.ci("up", "dev", str(out)).returncode == 0
    cluster = _one(_resources(workspace.export("dev")), CLUSTER_TYPE)
    assert cluster["outputs"]["agentPoolProfiles"][0]["count"] == 3


# --------------------------------------------------------------------------------------------- 5. destroy


def test_destroy_is_refused_for_protected_prod_and_clean_for_dev(workspace: Workspace) -> None:
    refused = workspace.pulumi("destroy", "--stack", "prod", "--yes")
    assert refused.returncode != 0
    assert "protected" in refused.stdout + refused.stderr
    assert _resources(workspace.export("prod")), "nothing of prod was deleted"

    destroyed = workspace.pulumi("destroy", "--stack", "dev", "--yes")
    assert destroyed.returncode == 0, destroyed.stdout[-2000:] + destroyed.stderr
    assert _resources(workspace.export("dev")) == {}


# ------------------------------------------------------------------------------------------ 6. bad config


def test_bad_config_gives_the_programs_one_message_and_no_traceback(workspace: Workspace) -> None:
    bad = workspace.stack_file("bad")
    bad.write_text(re.sub(r"(?m)^encryptionsalt:.*\n", "", workspace.stack_file("dev").read_text()))
    workspace.set_config("bad", "kmsKey.size", 1000)
    assert workspace.pulumi("stack", "init", "bad", "--secrets-provider", "passphrase").returncode == 0
    result = workspace.pulumi("preview", "--stack", "bad")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "kms-aks:kmsKey.size" in output
    assert "Traceback" not in output
    assert UNKNOWN not in output
