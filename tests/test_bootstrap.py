"""bootstrap/: the team state backend program, run under the shared mock engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kms_aks_tools.offline.mock_engine import DEPLOYER_OBJECT_ID, TENANT_ID
from kms_aks_tools.offline.recording import RecordedStack
from tests.engine import run_config

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


@pytest.fixture(scope="module")
def runs() -> dict[str, RecordedStack]:
    """Every scenario through the shared mock engine, which answers for the storage types like azure-native."""
    return {
        scenario: run_config(config, stack="team", preview=preview, program=PROGRAM)
        for scenario, (config, preview) in SCENARIOS.items()
    }


def clean(runs: dict[str, RecordedStack], scenario: str) -> RecordedStack:
    run = runs[scenario]
    assert run.error is None, run.error
    return run


def test_every_state_and_secrets_resource_is_protected(runs: dict[str, RecordedStack]) -> None:
    run = clean(runs, "default")
    for type_token in (
        "azure-native:resources:ResourceGroup",
        "azure-native:storage:StorageAccount",
        "azure-native:storage:BlobContainer",
        "azure-native:keyvault:Vault",
        "azure-native:keyvault:Key",
    ):
        assert run.one(type_token).protect is True, type_token


def test_storage_account_is_locked_down(runs: dict[str, RecordedStack]) -> None:
    account = clean(runs, "default").one("azure-native:storage:StorageAccount")
    inputs = account.inputs
    assert inputs["accountName"] == ACCOUNT
    assert inputs["kind"] == "StorageV2"
    assert inputs["minimumTlsVersion"] == "TLS1_2"
    assert inputs["allowBlobPublicAccess"] is False
    assert inputs["allowSharedKeyAccess"] is False
    assert inputs["enableHttpsTrafficOnly"] is True
    assert inputs["allowCrossTenantReplication"] is False
    assert inputs["sku"] == {"name": "Standard_ZRS"}


def test_blob_service_keeps_versions_and_soft_deleted_blobs(runs: dict[str, RecordedStack]) -> None:
    run = clean(runs, "default")
    service = run.one("azure-native:storage:BlobServiceProperties").inputs
    assert service["blobServicesName"] == "default"
    assert service["isVersioningEnabled"] is True
    assert service["deleteRetentionPolicy"] == {"enabled": True, "days": 30}
    assert service["containerDeleteRetentionPolicy"] == {"enabled": True, "days": 30}
    account = run.one("azure-native:storage:StorageAccount")
    assert service["accountName"] == ACCOUNT
    assert service["resourceGroupName"] == account.inputs["resourceGroupName"]


def test_container_is_private_and_wired_to_the_account(runs: dict[str, RecordedStack]) -> None:
    run = clean(runs, "default")
    container = run.one("azure-native:storage:BlobContainer")
    account = run.one("azure-native:storage:StorageAccount")
    assert container.inputs["publicAccess"] == "None"
    assert container.inputs["containerName"] == "pulumi-state"
    assert container.property_dependencies["accountName"] == (account.urn,)
    # ARM ids as azure-native answers them: the container sits under the account's singleton blob service.
    assert account.id.endswith(
        f"/resourceGroups/rg-kms-aks-pulumi-state/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}"
    )
    assert container.id == f"{account.id}/blobServices/default/containers/pulumi-state"
    assert run.one("azure-native:storage:BlobServiceProperties").id == f"{account.id}/blobServices/default"


def test_vault_is_rbac_with_purge_protection_and_90_days_soft_delete(runs: dict[str, RecordedStack]) -> None:
    vault = clean(runs, "default").one("azure-native:keyvault:Vault").inputs
    assert vault["vaultName"] == VAULT
    properties = vault["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enablePurgeProtection"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["softDeleteRetentionInDays"] == 90
    assert properties["sku"] == {"family": "A", "name": "standard"}
    # The tenant comes from the deployer's client config, not from a hard-coded value.
    assert properties["tenantId"] == TENANT_ID


def test_secrets_key_is_rsa_3072_without_expiry(runs: dict[str, RecordedStack]) -> None:
    run = clean(runs, "default")
    key = run.one("azure-native:keyvault:Key")
    properties = key.inputs["properties"]
    assert properties["kty"] == "RSA"
    assert properties["keySize"] == 3072
    assert {"encrypt", "decrypt", "wrapKey", "unwrapKey"} <= set(properties["keyOps"])
    assert "expires" not in properties.get("attributes", {})
    assert "rotationPolicy" not in properties
    vault = run.one("azure-native:keyvault:Vault")
    assert key.property_dependencies["vaultName"] == (vault.urn,)


def test_premium_vault_gets_an_hsm_key(runs: dict[str, RecordedStack]) -> None:
    run = clean(runs, "premium-no-grants")
    assert run.one("azure-native:keyvault:Vault").inputs["properties"]["sku"]["name"] == "premium"
    assert run.one("azure-native:keyvault:Key").inputs["properties"]["kty"] == "RSA-HSM"


def test_state_users_and_caller_get_container_and_key_access(runs: dict[str, RecordedStack]) -> None:
    run = clean(runs, "default")
    container = run.one("azure-native:storage:BlobContainer")
    key = run.one("azure-native:keyvault:Key")
    grants = {
        (r.inputs["principalId"], r.inputs["roleDefinitionId"].rsplit("/", 1)[-1], r.inputs["scope"])
        for r in run.by_type("azure-native:authorization:RoleAssignment")
    }
    expected = {
        (principal, role, scope)
        for principal in (CI_PRINCIPAL, TEAM_GROUP, DEPLOYER_OBJECT_ID)
        for role, scope in ((BLOB_DATA_CONTRIBUTOR, container.id), (CRYPTO_USER, key.id))
    }
    assert grants == expected
    types = {
        r.inputs["principalId"]: r.inputs.get("principalType")
        for r in run.by_type("azure-native:authorization:RoleAssignment")
    }
    assert types[CI_PRINCIPAL] == "ServicePrincipal"
    assert types[TEAM_GROUP] == "Group"


def test_grant_caller_off_and_no_users_means_no_grants(runs: dict[str, RecordedStack]) -> None:
    assert clean(runs, "premium-no-grants").by_type("azure-native:authorization:RoleAssignment") == []


def test_exports_are_ready_for_pulumi_login_and_the_workflows(runs: dict[str, RecordedStack]) -> None:
    outputs = clean(runs, "default").outputs
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


def test_the_workflows_and_the_stack_setup_use_the_variables_bootstrap_exports(runs: dict[str, RecordedStack]) -> None:
    names = set(clean(runs, "default").outputs["githubVariables"])
    # The state backend is the workflows'; the secrets provider is named once, when a stack is created, and
    # lives in the committed Pulumi.<stack>.yaml from then on (docs/ci-and-state.md).
    for workflow in ("preview.yml", "deploy.yml"):
        text = (ROOT / ".github" / "workflows" / workflow).read_text()
        for name in names - {"PULUMI_SECRETS_PROVIDER"}:
            assert f"vars.{name}" in text, (workflow, name)
    setup = (ROOT / "docs" / "ci-and-state.md").read_text()
    assert "--secrets-provider" in setup and "PULUMI_SECRETS_PROVIDER" in setup


def test_preview_runs_with_unknown_outputs(runs: dict[str, RecordedStack]) -> None:
    run = clean(runs, "preview")
    assert len(run.by_type("azure-native:keyvault:Key")) == 1


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("bad-account", "storageAccountName 'St-Kms'"),
        ("bad-user", "principalType"),
        ("missing-vault", "vaultName"),
    ],
)
def test_invalid_config_fails_with_a_clear_message(runs: dict[str, RecordedStack], scenario: str, message: str) -> None:
    error = runs[scenario].error
    assert error is not None
    assert message in error


def test_bootstrap_project_files() -> None:
    project = yaml.safe_load((ROOT / "bootstrap" / "Pulumi.yaml").read_text())
    assert project["name"] == "kms-aks-bootstrap"
    assert project["runtime"]["name"] == "python"
    requirements = (ROOT / "bootstrap" / "requirements.txt").read_text()
    assert "pulumi-azure-native" in requirements
    assert (ROOT / "bootstrap" / "README.md").is_file()
