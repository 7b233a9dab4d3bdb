"""What ARM itself refuses at PUT time, for the stand-in's Create and Update (never in a preview).

azure-native passes these through to ARM and surfaces ARM's answer as the operation's error
(`azureError` in provider.go: "Status=<code> Code=\"<code>\" Message=\"<message>\""). Modelled here:

- **AKS KMS identity permission** (`AzureKeyVaultKmsValidateIdentityPermissionCustomerError`, the code AKS returns
  when the cluster identity lacks, or does not yet hold, encrypt and decrypt on the KMS key: Microsoft's AKS
  pages "Add Key Management Service etcd encryption to an AKS cluster" (the permissions) and "Troubleshoot KMS
  etcd encryption" (the error code). A ManagedCluster create or update with
  `securityProfile.azureKeyVaultKms.enabled` fails unless the cluster's user-assigned identity holds,
  *effectively* (created at least the cloud's grant-propagation delay ago): in an access-policy vault, an
  access policy for its principal with key permissions encrypt and decrypt
  (or all); in an RBAC vault, a role assignment of a role whose data actions carry keys/encrypt and keys/decrypt
  (`azure_facts.KMS_CRYPTO_ROLES`) at the key's scope or any scope above it (vault, resource group,
  subscription), as Azure RBAC inherits.
- **The key version must exist** in the vault: AKS validates the key by using it. A key id whose vault, key or
  version (the create-time one, or one added later as Key Vault's rotate does: `standin.key_versions`) the
  stand-in's ARM does not hold fails with Key Vault's own `KeyNotFound` ("A key with (name/id) ...
  was not found in this key vault"). A versionless key id is refused the same way (AKS needs the version).
- **KMS network access** (the same AKS KMS page, private key vault section): switching `keyVaultNetworkAccess` between
  Public and Private while KMS stays enabled is refused (KMS must be disabled first); Private needs
  `keyVaultResourceId` and API server VNet integration, with AKS's message "Vnet integration should be enabled
  when KeyVault network access is Private" (AKS's HTTP 400 text).
- **Enums**: a value outside a property's enum in `schema.SCHEMAS` is a 400 (azure-native's Check does not check
  enums; ARM does). The wording of that one is the stand-in's.
"""

from __future__ import annotations

import time
from typing import Any

from azure_facts import KEY_URL, KMS_CRYPTO_ROLES
from kms_aks_tools.standin.key_versions import KEY_VERSION

KMS_PERMISSION_ERROR = "AzureKeyVaultKmsValidateIdentityPermissionCustomerError"
ACCESS_POLICY = "azure-native:keyvault:AccessPolicy"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
VAULT = "azure-native:keyvault:Vault"
KEY = "azure-native:keyvault:Key"


class ArmRefusal(Exception):
    """An error ARM answers a PUT with; `str()` is azure-native's rendering of it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f'Status={status} Code="{code}" Message="{message}"')
        self.status, self.code, self.message = status, code, message


def _kms(inputs: dict[str, Any]) -> dict[str, Any]:
    return ((inputs.get("securityProfile") or {}).get("azureKeyVaultKms")) or {}


def check_managed_cluster(
    inputs: dict[str, Any],
    old_inputs: dict[str, Any] | None,
    states: dict[str, tuple[str, dict[str, Any]]],
    created_at: dict[str, float],
    grant_propagation: float,
    now: float | None = None,
) -> None:
    """Raises `ArmRefusal` where AKS refuses this create (`old_inputs` None) or update of a KMS cluster."""
    kms = _kms(inputs)
    old_kms = _kms(old_inputs or {})
    if old_inputs is not None and kms.get("enabled") and old_kms.get("enabled"):
        old_access = old_kms.get("keyVaultNetworkAccess") or "Public"
        new_access = kms.get("keyVaultNetworkAccess") or "Public"
        if old_access != new_access:
            raise ArmRefusal(
                400,
                "BadRequest",
                f"Changing keyVaultNetworkAccess of Azure Key Vault KMS from {old_access} to {new_access} is not "
                "supported while KMS is enabled: disable KMS first, then enable it with the new network access.",
            )
    if not kms.get("enabled"):
        return
    if kms.get("keyVaultNetworkAccess") == "Private":
        if not kms.get("keyVaultResourceId"):
            raise ArmRefusal(
                400, "BadRequest", "keyVaultResourceId is required when KeyVault network access is Private."
            )
        if not (inputs.get("apiServerAccessProfile") or {}).get("enableVnetIntegration"):
            raise ArmRefusal(
                400, "BadRequest", "Vnet integration should be enabled when KeyVault network access is Private"
            )

    key_id = str(kms.get("keyId") or "")
    vault, key = _find_key(key_id, states)
    if key is None:
        raise ArmRefusal(
            404,
            "KeyNotFound",
            f"A key with (name/id) {key_id} was not found in this key vault. If you recently deleted this key you "
            "may be able to recover it using the correct recovery command.",
        )
    assert vault is not None
    vault_id, vault_outputs = vault
    key_arm_id, _ = key
    principals = _identity_principals(inputs, states)
    rbac = bool((vault_outputs.get("properties") or {}).get("enableRbacAuthorization"))
    moment = time.monotonic() if now is None else now

    def effective(resource_id: str) -> bool:
        return moment - created_at.get(resource_id, float("-inf")) >= grant_propagation

    for principal in principals:
        if rbac:
            granted = any(
                effective(rid)
                for rid, (typ, out) in states.items()
                if typ == ROLE_ASSIGNMENT
                and out.get("principalId") == principal
                and str(out.get("roleDefinitionId", "")).rsplit("/", 1)[-1].lower() in KMS_CRYPTO_ROLES
                and _covers(str(out.get("scope", "")), key_arm_id)
            )
        else:
            granted = any(
                effective(rid)
                for rid, (typ, out) in states.items()
                if typ == ACCESS_POLICY
                and rid.lower().startswith(vault_id.lower() + "/")
                and (out.get("policy") or {}).get("objectId") == principal
                and _encrypts_and_decrypts((out.get("policy") or {}).get("permissions") or {})
            )
        if not granted:
            model = (
                "the Key Vault Crypto User role on the key or the vault"
                if rbac
                else ("an access policy with key permissions encrypt and decrypt")
            )
            raise ArmRefusal(
                400,
                KMS_PERMISSION_ERROR,
                f"The cluster identity (principal {principal}) does not have the permission to encrypt and decrypt "
                f"with the key {key_id}: it needs {model}, in effect before the cluster is created or updated "
                "(grants take time to propagate).",
            )


def _find_key(
    key_id: str, states: dict[str, tuple[str, dict[str, Any]]]
) -> tuple[tuple[str, dict[str, Any]] | None, tuple[str, dict[str, Any]] | None]:
    """(vault id and outputs, key id and outputs) of the versioned `key_id` in the stand-in's ARM, or Nones."""
    parsed = KEY_URL.match(key_id)
    if not parsed or not parsed.group("version"):
        return None, None
    for rid, (typ, out) in states.items():
        # The key's create-time version, or a later one (Key Vault's rotate: `standin.key_versions`).
        if typ not in (KEY, KEY_VERSION):
            continue
        if str(out.get("keyUriWithVersion", "")).lower() != key_id.lower():
            continue
        if typ == KEY_VERSION:
            rid = rid.rsplit("/versions/", 1)[0]
            if rid not in states:
                continue  # a version of a deleted key
        vault_id = rid.rsplit("/keys/", 1)[0]
        vault = states.get(vault_id)
        if vault is not None and vault[0] == VAULT:
            return (vault_id, vault[1]), (rid, out)
    return None, None


def _identity_principals(inputs: dict[str, Any], states: dict[str, tuple[str, dict[str, Any]]]) -> list[str]:
    identity = inputs.get("identity") or {}
    ids = identity.get("userAssignedIdentities") or []
    principals = []
    for identity_id in ids:
        found = states.get(identity_id)
        # An identity ARM does not know has no grants: a principal nothing can match.
        principals.append(found[1].get("principalId", "") if found else f"(unknown identity {identity_id})")
    return principals or ["(no user-assigned identity)"]


def _covers(scope: str, resource_id: str) -> bool:
    """Whether a role assignment at `scope` applies to `resource_id` (RBAC inherits down the ARM hierarchy)."""
    scope, resource_id = scope.rstrip("/").lower(), resource_id.lower()
    return bool(scope) and (resource_id == scope or resource_id.startswith(scope + "/"))


def _encrypts_and_decrypts(permissions: dict[str, Any]) -> bool:
    keys = {str(p).lower() for p in permissions.get("keys") or []}
    return "all" in keys or {"encrypt", "decrypt"} <= keys
