"""Team state backend for kms-aks: Blob storage for Pulumi state and a Key Vault key for its secrets.

Creates, once per organisation:

- a resource group;
- a StorageV2 account (TLS 1.2, HTTPS only, no public blob access, no shared keys: Entra ID only) whose
  blob service keeps versions and soft-deleted blobs and containers, with one private container that
  holds the state (`PULUMI_BACKEND_URL=azblob://<container>` with `AZURE_STORAGE_ACCOUNT=<account>`);
- a Key Vault in RBAC mode with purge protection and 90 days of soft delete, and an RSA 3072 key for the
  `azurekeyvault://<vault>.vault.azure.net/keys/<key>` secrets provider;
- data-plane grants (Storage Blob Data Contributor on the container, Key Vault Crypto User on the key) for
  the caller and for every principal in `stateUsers` (the CI app registration, the team's group).

Everything that holds state or decrypts it is protected: losing it loses every stack.

Config (namespace `kms-aks-bootstrap`): `storageAccountName` and `vaultName` are required (both globally
unique); `location`, `resourceGroupName`, `storageSku`, `containerName`, `blobRetentionDays`,
`keyVaultSku`, `secretsKeyName`, `grantCaller` and `stateUsers` have defaults (see README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_azure_native import authorization, keyvault, resources, storage

# Installed into bootstrap's virtualenv from requirements.txt (`-e ../azure_facts`).
from azure_facts import KEY_VAULT_CRYPTO_USER_ROLE, STORAGE_BLOB_DATA_CONTRIBUTOR_ROLE

NAMESPACE = "kms-aks-bootstrap"

# Built-in role definition ids (the same in every tenant), from the facts the main project shares.
STORAGE_BLOB_DATA_CONTRIBUTOR = STORAGE_BLOB_DATA_CONTRIBUTOR_ROLE
KEY_VAULT_CRYPTO_USER = KEY_VAULT_CRYPTO_USER_ROLE

PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal")
STORAGE_SKUS = tuple(sku.value for sku in storage.SkuName)
SOFT_DELETE_DAYS = 90
KEY_SIZE = 3072
# Pulumi's azurekeyvault provider encrypts the stack's data key with the Key Vault key.
KEY_OPS = ("encrypt", "decrypt", "wrapKey", "unwrapKey")


@dataclass(frozen=True)
class StateUser:
    """A principal that runs Pulumi against the team backend: needs the container and the key."""

    principal_id: str
    principal_type: str


@dataclass(frozen=True)
class BootstrapConfig:
    """The validated stack config of the bootstrap project."""

    storage_account_name: str
    vault_name: str
    location: str = "westeurope"
    resource_group_name: str = "rg-kms-aks-pulumi-state"
    storage_sku: str = "Standard_ZRS"
    container_name: str = "pulumi-state"
    blob_retention_days: int = 30
    key_vault_sku: str = "standard"
    secrets_key_name: str = "pulumi-secrets"
    grant_caller: bool = True
    state_users: tuple[StateUser, ...] = field(default_factory=tuple)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"{NAMESPACE}: {message}")


def load_config(config: pulumi.Config) -> BootstrapConfig:
    """Read and validate the config; names are checked here because Azure only rejects them at create."""
    account = config.require("storageAccountName")
    _check(
        re.fullmatch(r"[a-z0-9]{3,24}", account) is not None,
        f"storageAccountName {account!r}: 3-24 lower-case letters and digits, globally unique",
    )
    vault = config.require("vaultName")
    _check(
        re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]", vault) is not None and "--" not in vault,
        f"vaultName {vault!r}: 3-24 letters, digits and single hyphens, starting with a letter, globally unique",
    )
    container = config.get("containerName") or BootstrapConfig.container_name
    _check(
        re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}", container) is not None,
        f"containerName {container!r}: 3-63 lower-case letters, digits and single hyphens",
    )
    sku = config.get("storageSku") or BootstrapConfig.storage_sku
    _check(sku in STORAGE_SKUS, f"storageSku {sku!r}: one of {', '.join(STORAGE_SKUS)}")
    vault_sku = config.get("keyVaultSku") or BootstrapConfig.key_vault_sku
    _check(vault_sku in ("standard", "premium"), f"keyVaultSku {vault_sku!r}: standard or premium")
    retention = config.get_int("blobRetentionDays")
    retention = BootstrapConfig.blob_retention_days if retention is None else retention
    _check(1 <= retention <= 365, f"blobRetentionDays {retention}: 1 to 365")
    grant_caller = config.get_bool("grantCaller")

    users: list[StateUser] = []
    for entry in config.get_object("stateUsers") or []:
        _check(isinstance(entry, dict), f"stateUsers entries are objects, got {entry!r}")
        principal_id = str(entry.get("principalId", ""))
        principal_type = str(entry.get("principalType", ""))
        _check(
            re.fullmatch(r"[0-9a-fA-F-]{36}", principal_id) is not None,
            f"stateUsers principalId {principal_id!r}: an Entra object id (GUID)",
        )
        _check(
            principal_type in PRINCIPAL_TYPES,
            f"stateUsers principalType {principal_type!r}: one of {', '.join(PRINCIPAL_TYPES)}",
        )
        users.append(StateUser(principal_id, principal_type))

    return BootstrapConfig(
        storage_account_name=account,
        vault_name=vault,
        location=config.get("location") or BootstrapConfig.location,
        resource_group_name=config.get("resourceGroupName") or BootstrapConfig.resource_group_name,
        storage_sku=sku,
        container_name=container,
        blob_retention_days=retention,
        key_vault_sku=vault_sku,
        secrets_key_name=config.get("secretsKeyName") or BootstrapConfig.secrets_key_name,
        grant_caller=True if grant_caller is None else grant_caller,
        state_users=tuple(users),
    )


def _secrets_provider_url(vault_uri: str, key_name: str) -> str:
    # vaultUri is `https://<vault>.vault.azure.net/`; deriving from it keeps sovereign clouds right.
    host = vault_uri.removeprefix("https://").rstrip("/")
    return f"azurekeyvault://{host}/keys/{key_name}"


def main() -> None:
    """Declare the backend resources and export what `pulumi login` and the workflows need."""
    cfg = load_config(pulumi.Config(NAMESPACE))
    client = authorization.get_client_config()
    protected = pulumi.ResourceOptions(protect=True)

    group = resources.ResourceGroup(
        "state",
        resource_group_name=cfg.resource_group_name,
        location=cfg.location,
        tags={"purpose": "pulumi-state", "project": "kms-aks"},
        opts=protected,
    )

    account = storage.StorageAccount(
        "state",
        account_name=cfg.storage_account_name,
        resource_group_name=group.name,
        location=group.location,
        kind=storage.Kind.STORAGE_V2,
        sku=storage.SkuArgs(name=cfg.storage_sku),
        access_tier=storage.AccessTier.HOT,
        minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
        enable_https_traffic_only=True,
        allow_blob_public_access=False,
        # State access goes through Entra ID (az login, OIDC) with RBAC: no account key to leak.
        allow_shared_key_access=False,
        default_to_o_auth_authentication=True,
        allow_cross_tenant_replication=False,
        tags={"purpose": "pulumi-state"},
        opts=protected,
    )

    # Versions and soft delete turn an overwritten or deleted checkpoint into a recoverable one.
    storage.BlobServiceProperties(
        "state",
        account_name=account.name,
        resource_group_name=group.name,
        blob_services_name="default",
        is_versioning_enabled=True,
        delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=cfg.blob_retention_days),
        container_delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=cfg.blob_retention_days),
    )

    container = storage.BlobContainer(
        "state",
        container_name=cfg.container_name,
        account_name=account.name,
        resource_group_name=group.name,
        public_access=storage.PublicAccess.NONE,
        opts=protected,
    )

    vault = keyvault.Vault(
        "secrets",
        vault_name=cfg.vault_name,
        resource_group_name=group.name,
        location=group.location,
        properties=keyvault.VaultPropertiesArgs(
            tenant_id=client.tenant_id,
            sku=keyvault.SkuArgs(family=keyvault.SkuFamily.A, name=cfg.key_vault_sku),
            enable_rbac_authorization=True,
            enable_soft_delete=True,
            soft_delete_retention_in_days=SOFT_DELETE_DAYS,
            # Purge protection cannot be turned off again: a deleted key stays recoverable for 90 days.
            enable_purge_protection=True,
        ),
        tags={"purpose": "pulumi-secrets"},
        opts=protected,
    )

    # No expiry and no automatic rotation: stacks' data keys are encrypted with this key, and a key that
    # expires or is disabled makes every stack's secrets unreadable. Rotate with
    # `pulumi stack change-secrets-provider`, not in Key Vault.
    key = keyvault.Key(
        "secrets",
        key_name=cfg.secrets_key_name,
        vault_name=vault.name,
        resource_group_name=group.name,
        properties=keyvault.KeyPropertiesArgs(
            kty=keyvault.JsonWebKeyType.RS_A_HSM if cfg.key_vault_sku == "premium" else keyvault.JsonWebKeyType.RSA,
            key_size=KEY_SIZE,
            key_ops=list(KEY_OPS),
            attributes=keyvault.KeyAttributesArgs(enabled=True),
        ),
        opts=protected,
    )

    grants: list[tuple[str, str, str | None]] = [
        (f"user-{i}", u.principal_id, u.principal_type) for i, u in enumerate(cfg.state_users)
    ]
    if cfg.grant_caller:
        # The caller's principal type is not known here; ARM resolves it when it is left out.
        grants.append(("caller", client.object_id, None))
    role = f"/subscriptions/{client.subscription_id}/providers/Microsoft.Authorization/roleDefinitions"
    for name, principal_id, principal_type in grants:
        authorization.RoleAssignment(
            f"state-blob-{name}",
            principal_id=principal_id,
            principal_type=principal_type,
            role_definition_id=f"{role}/{STORAGE_BLOB_DATA_CONTRIBUTOR}",
            scope=container.id,
        )
        authorization.RoleAssignment(
            f"secrets-key-{name}",
            principal_id=principal_id,
            principal_type=principal_type,
            role_definition_id=f"{role}/{KEY_VAULT_CRYPTO_USER}",
            scope=key.id,
        )

    secrets_provider = pulumi.Output.all(vault.properties.vault_uri, key.name).apply(
        lambda args: _secrets_provider_url(args[0], args[1])
    )
    backend_url = container.name.apply(lambda name: f"azblob://{name}")
    pulumi.export("resourceGroupName", group.name)
    pulumi.export("PULUMI_BACKEND_URL", backend_url)
    pulumi.export("AZURE_STORAGE_ACCOUNT", account.name)
    pulumi.export("PULUMI_SECRETS_PROVIDER", secrets_provider)
    pulumi.export("secretsKeyUriWithVersion", key.key_uri_with_version)
    # The repository variables the workflows read, ready for `gh variable set`.
    github_variables: dict[str, Any] = {
        "PULUMI_STATE_CONTAINER": container.name,
        "PULUMI_STATE_STORAGE_ACCOUNT": account.name,
        "PULUMI_SECRETS_PROVIDER": secrets_provider,
    }
    pulumi.export("githubVariables", github_variables)


main()
