"""bootstrap/: the team state backend program, run under the mock engine in a separate process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from kms_aks.mock_engine import DEPLOYER_OBJECT_ID, TENANT_ID

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "bootstrap" / "__main__.py"

ACCOUNT = "stkmsaksstate01"
VAULT = "kv-kmsaks-state-01"
CI_PRINCIPAL = "0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b"
TEAM_GROUP = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"

BASE = {"kms-aks-bootstrap:storageAccountName": ACCOUNT, "kms-aks-bootstrap:vaultName": VAULT}
SCENARIOS: dict[str, tuple[dict[str, Any], bool]] = {
    "default": (
        {
            **BASE,
            "kms-aks-bootstrap:stateUsers": [
                {"principalId": CI_PRINCIPAL, "principalType": "ServicePrincipal"},
                {"principalId": TEAM_GROUP, "principalType": "Group"},
            ],
        },
        False,
    ),
    "preview": (BASE, True),
    "premium-no-grants": (
        {**BASE, "kms-aks-bootstrap:keyVaultSku": "premium", "kms-aks-bootstrap:grantCaller": False},
        False,
    ),
    "bad-account": ({**BASE, "kms-aks-bootstrap:storageAccountName": "St-Kms"}, False),
    "bad-user": ({**BASE, "kms-aks-bootstrap:stateUsers": [{"principalId": CI_PRINCIPAL}]}, False),
    "missing-vault": ({"kms-aks-bootstrap:storageAccountName": ACCOUNT}, False),
}

# Runs in a child process: the shared mock engine of the main project, taught the three storage types it
# does not model yet (ARM ids and outputs as azure-native returns them), then every scenario.
RUNNER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from kms_aks import mock_engine
    from kms_aks.mock_engine import SUBSCRIPTION_ID, provider_outputs, run_config

    def account_id(inputs):
        return (f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{inputs['resourceGroupName']}"
                f"/providers/Microsoft.Storage/storageAccounts/{inputs['accountName']}")

    if "azure-native:storage:StorageAccount" not in mock_engine.BUILDERS:
        @provider_outputs("azure-native:storage:StorageAccount")
        def _account(mocks, args, inputs):
            name = inputs["accountName"]
            outputs = {**inputs, "name": name, "provisioningState": "Succeeded",
                       "primaryEndpoints": {"blob": f"https://{name}.blob.core.windows.net/"}}
            return account_id(inputs), outputs

    if "azure-native:storage:BlobServiceProperties" not in mock_engine.BUILDERS:
        @provider_outputs("azure-native:storage:BlobServiceProperties")
        def _blob_service(mocks, args, inputs):
            return account_id(inputs) + "/blobServices/default", {**inputs, "name": "default"}

    if "azure-native:storage:BlobContainer" not in mock_engine.BUILDERS:
        @provider_outputs("azure-native:storage:BlobContainer")
        def _container(mocks, args, inputs):
            name = inputs["containerName"]
            outputs = {**inputs, "name": name, "hasImmutabilityPolicy": False, "hasLegalHold": False}
            return account_id(inputs) + f"/blobServices/default/containers/{name}", outputs

    results = {}
    for scenario, (config, preview) in json.loads(sys.argv[1]).items():
        recorded = run_config(config, stack="team", preview=preview, program=Path(sys.argv[2]))
        results[scenario] = {
            "error": recorded.error,
            "outputs": recorded.outputs,
            "resources": [
                {"urn": r.urn, "type": r.type, "name": r.name, "id": r.id, "protect": r.protect,
                 "inputs": r.inputs, "outputs": r.outputs,
                 "propertyDependencies": {k: list(v) for k, v in r.property_dependencies.items()}}
                for r in recorded.resources
            ],
        }
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(SCENARIOS), str(PROGRAM)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def clean(runs: dict[str, dict[str, Any]], scenario: str) -> dict[str, Any]:
    run = runs[scenario]
    assert run["error"] is None, run["error"]
    return run


def by_type(run: dict[str, Any], type_token: str) -> list[dict[str, Any]]:
    return [r for r in run["resources"] if r["type"] == type_token]


def one(run: dict[str, Any], type_token: str) -> dict[str, Any]:
    found = by_type(run, type_token)
    assert len(found) == 1, f"{type_token}: {len(found)}"
    return found[0]


def test_every_state_and_secrets_resource_is_protected(runs: dict[str, dict[str, Any]]) -> None:
    run = clean(runs, "default")
    for type_token in (
        "azure-native:resources:ResourceGroup",
        "azure-native:storage:StorageAccount",
        "azure-native:storage:BlobContainer",
        "azure-native:keyvault:Vault",
        "azure-native:keyvault:Key",
    ):
        assert one(run, type_token)["protect"] is True, type_token


def test_storage_account_is_locked_down(runs: dict[str, dict[str, Any]]) -> None:
    account = one(clean(runs, "default"), "azure-native:storage:StorageAccount")
    inputs = account["inputs"]
    assert inputs["accountName"] == ACCOUNT
    assert inputs["kind"] == "StorageV2"
    assert inputs["minimumTlsVersion"] == "TLS1_2"
    assert inputs["allowBlobPublicAccess"] is False
    assert inputs["allowSharedKeyAccess"] is False
    assert inputs["enableHttpsTrafficOnly"] is True
    assert inputs["allowCrossTenantReplication"] is False
    assert inputs["sku"] == {"name": "Standard_ZRS"}


def test_blob_service_keeps_versions_and_soft_deleted_blobs(runs: dict[str, dict[str, Any]]) -> None:
    run = clean(runs, "default")
    service = one(run, "azure-native:storage:BlobServiceProperties")["inputs"]
    assert service["blobServicesName"] == "default"
    assert service["isVersioningEnabled"] is True
    assert service["deleteRetentionPolicy"] == {"enabled": True, "days": 30}
    assert service["containerDeleteRetentionPolicy"] == {"enabled": True, "days": 30}
    account = one(run, "azure-native:storage:StorageAccount")
    assert service["accountName"] == ACCOUNT
    assert service["resourceGroupName"] == account["inputs"]["resourceGroupName"]


def test_container_is_private_and_wired_to_the_account(runs: dict[str, dict[str, Any]]) -> None:
    run = clean(runs, "default")
    container = one(run, "azure-native:storage:BlobContainer")
    account = one(run, "azure-native:storage:StorageAccount")
    assert container["inputs"]["publicAccess"] == "None"
    assert container["inputs"]["containerName"] == "pulumi-state"
    assert container["propertyDependencies"]["accountName"] == [account["urn"]]


def test_vault_is_rbac_with_purge_protection_and_90_days_soft_delete(runs: dict[str, dict[str, Any]]) -> None:
    vault = one(clean(runs, "default"), "azure-native:keyvault:Vault")["inputs"]
    assert vault["vaultName"] == VAULT
    properties = vault["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enablePurgeProtection"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["softDeleteRetentionInDays"] == 90
    assert properties["sku"] == {"family": "A", "name": "standard"}
    # The tenant comes from the deployer's client config, not from a hard-coded value.
    assert properties["tenantId"] == TENANT_ID


def test_secrets_key_is_rsa_3072_without_expiry(runs: dict[str, dict[str, Any]]) -> None:
    run = clean(runs, "default")
    key = one(run, "azure-native:keyvault:Key")
    properties = key["inputs"]["properties"]
    assert properties["kty"] == "RSA"
    assert properties["keySize"] == 3072
    assert {"encrypt", "decrypt", "wrapKey", "unwrapKey"} <= set(properties["keyOps"])
    assert "expires" not in properties.get("attributes", {})
    assert "rotationPolicy" not in properties
    vault = one(run, "azure-native:keyvault:Vault")
    assert key["propertyDependencies"]["vaultName"] == [vault["urn"]]


def test_premium_vault_gets_an_hsm_key(runs: dict[str, dict[str, Any]]) -> None:
    run = clean(runs, "premium-no-grants")
    assert one(run, "azure-native:keyvault:Vault")["inputs"]["properties"]["sku"]["name"] == "premium"
    assert one(run, "azure-native:keyvault:Key")["inputs"]["properties"]["kty"] == "RSA-HSM"


def test_state_users_and_caller_get_container_and_key_access(runs: dict[str, dict[str, Any]]) -> None:
    run = clean(runs, "default")
    container = one(run, "azure-native:storage:BlobContainer")
    key = one(run, "azure-native:keyvault:Key")
    grants = {
        (r["inputs"]["principalId"], r["inputs"]["roleDefinitionId"].rsplit("/", 1)[-1], r["inputs"]["scope"])
        for r in by_type(run, "azure-native:authorization:RoleAssignment")
    }
    expected = {
        (principal, role, scope)
        for principal in (CI_PRINCIPAL, TEAM_GROUP, DEPLOYER_OBJECT_ID)
        for role, scope in ((BLOB_DATA_CONTRIBUTOR, container["id"]), (CRYPTO_USER, key["id"]))
    }
    assert grants == expected
    types = {
        r["inputs"]["principalId"]: r["inputs"].get("principalType")
        for r in by_type(run, "azure-native:authorization:RoleAssignment")
    }
    assert types[CI_PRINCIPAL] == "ServicePrincipal"
    assert types[TEAM_GROUP] == "Group"


def test_grant_caller_off_and_no_users_means_no_grants(runs: dict[str, dict[str, Any]]) -> None:
    assert by_type(clean(runs, "premium-no-grants"), "azure-native:authorization:RoleAssignment") == []


def test_exports_are_ready_for_pulumi_login_and_the_workflows(runs: dict[str, dict[str, Any]]) -> None:
    outputs = clean(runs, "default")["outputs"]
    provider = f"azurekeyvault://{VAULT}.vault.azure.net/keys/pulumi-secrets"
    assert outputs["PULUMI_BACKEND_URL"] == "azblob://pulumi-state"
    assert outputs["AZURE_STORAGE_ACCOUNT"] == ACCOUNT
    assert outputs["PULUMI_SECRETS_PROVIDER"] == provider
    assert outputs["secretsKeyUriWithVersion"].startswith(f"https://{VAULT}.vault.azure.net/keys/pulumi-secrets/")
    assert outputs["githubVariables"] == {
        "PULUMI_STATE_CONTAINER": "pulumi-state",
        "PULUMI_STATE_STORAGE_ACCOUNT": ACCOUNT,
        "PULUMI_SECRETS_PROVIDER": provider,
    }


def test_the_workflows_read_the_variables_bootstrap_exports(runs: dict[str, dict[str, Any]]) -> None:
    names = clean(runs, "default")["outputs"]["githubVariables"]
    for workflow in ("preview.yml", "deploy.yml"):
        text = (ROOT / ".github" / "workflows" / workflow).read_text()
        for name in names:
            assert f"vars.{name}" in text, (workflow, name)


def test_preview_runs_with_unknown_outputs(runs: dict[str, dict[str, Any]]) -> None:
    run = clean(runs, "preview")
    assert len(by_type(run, "azure-native:keyvault:Key")) == 1


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("bad-account", "storageAccountName 'St-Kms'"),
        ("bad-user", "principalType"),
        ("missing-vault", "vaultName"),
    ],
)
def test_invalid_config_fails_with_a_clear_message(
    runs: dict[str, dict[str, Any]], scenario: str, message: str
) -> None:
    error = runs[scenario]["error"]
    assert error is not None
    assert message in error


def test_bootstrap_project_files() -> None:
    project = yaml.safe_load((ROOT / "bootstrap" / "Pulumi.yaml").read_text())
    assert project["name"] == "kms-aks-bootstrap"
    assert project["runtime"]["name"] == "python"
    requirements = (ROOT / "bootstrap" / "requirements.txt").read_text()
    assert "pulumi-azure-native" in requirements
    assert (ROOT / "bootstrap" / "README.md").is_file()
