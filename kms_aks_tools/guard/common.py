"""What the guard's rules share: the types and ops they judge, the property paths they watch (ARM names), the
rules a transition override may excuse, and the few helpers every rule's message uses.

Each rule lives in its own module under `kms_aks_tools.guard.rules`; `kms_aks_tools.guard.check` runs them.
"""

from __future__ import annotations

import json
from typing import Any

from azure_facts import VERSIONED_KEY_ID
from azure_facts.engine import UNKNOWN
from azure_facts.findings import Finding
from azure_facts.property_paths import MISSING, Path, hides
from azure_facts.tokens import ACCESS_POLICY, KEY, MANAGED_CLUSTER, ROLE_ASSIGNMENT, USER_ASSIGNED_IDENTITY, VAULT

# The stack config key that says whether a cluster outside the stack uses its vault's key (default: assumed so
# when the stack holds a vault or key but no cluster). docs/ci-and-state.md.
EXTERNAL_CLUSTER_CONFIG = "kms-aks:keyServesExternalCluster"

# Deleting or replacing any of these makes the cluster's etcd secrets unreadable (or the cluster gone).
GUARDED_TYPES = frozenset({MANAGED_CLUSTER, VAULT, KEY, USER_ASSIGNED_IDENTITY})

# The KMS identity's grants on the key (and, with a private vault, on the vault and subnets).
GRANT_TYPES = frozenset({ACCESS_POLICY, ROLE_ASSIGNMENT})
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
DESTRUCTIVE_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "delete"})
REMOVING_OPS = frozenset({"delete", "delete-replaced"})

# Ops known to leave an existing guarded resource in place. Anything else on a KMS-relevant type is refused:
# a future CLI op the guard has never seen must not pass by default.
NON_DESTRUCTIVE_OPS = frozenset({"same", "create", "update", "read", "refresh", "import"})

# Ops whose step carries an existing resource's old state next to the planned new state.
CHANGE_OPS = frozenset({"update", "replace", "create-replacement"})
KMS_PATH: tuple[str, ...] = ("securityProfile", "azureKeyVaultKms")
KEY_ID_PATH = (*KMS_PATH, "keyId")
ENABLED_PATH = (*KMS_PATH, "enabled")
NETWORK_ACCESS_PATH = (*KMS_PATH, "keyVaultNetworkAccess")
PRIVATE_VAULT_PATH = (*KMS_PATH, "keyVaultResourceId")
IDENTITY_PATH: tuple[str, ...] = ("identity",)

# ARM's default when keyVaultNetworkAccess is omitted: an explicit "Public" is no change.
DEFAULT_NETWORK_ACCESS = "Public"

# A versioned Key Vault key identifier, as AKS KMS requires it (`key.kid`), from the shared Azure facts.
KEY_ID_PATTERN = VERSIONED_KEY_ID

# The vault's settings that decide whether the KMS identity reaches the key (ARM names, keyvault.json
# VaultProperties), with ARM's value when the property is absent.
VAULT_PERMISSION_MODEL_PATH = ("properties", "enableRbacAuthorization")
VAULT_PUBLIC_NETWORK_PATH = ("properties", "publicNetworkAccess")
VAULT_NETWORK_ACLS_PATH = ("properties", "networkAcls")
VAULT_TENANT_PATH = ("properties", "tenantId")
VAULT_ACCESS_POLICIES_PATH = ("properties", "accessPolicies")

# The grants' fields whose change moves or narrows the grant (ARM names: AccessPolicyEntry, RoleAssignment).
ACCESS_POLICY_PRINCIPAL = ("policy", "objectId")
ACCESS_POLICY_KEYS = ("policy", "permissions", "keys")
ROLE_ASSIGNMENT_PRINCIPAL = ("principalId",)
GRANT_FIELDS: dict[str, dict[tuple[str, ...], str]] = {
    ACCESS_POLICY: {
        ACCESS_POLICY_PRINCIPAL: "principal",
        ("policy", "tenantId"): "tenant",
        ("vaultName",): "vault",
        ("resourceGroupName",): "vault's resource group",
    },
    ROLE_ASSIGNMENT: {
        ROLE_ASSIGNMENT_PRINCIPAL: "principal",
        ("scope",): "scope",
        ("roleDefinitionId",): "role",
    },
}

# What AKS KMS needs on the key: wrap and unwrap data encryption keys.
KMS_KEY_PERMISSIONS = frozenset({"encrypt", "decrypt"})

# The findings a change made in the safe order legitimately meets: each one can be excused by a transition
# override naming its URN, rule and path. `destructive-op` only for deleting a user-assigned identity (the last
# step of an identity swap); on a cluster, vault or key it never is.
OVERRIDABLE_RULES = frozenset(
    {
        "identity-change",
        "kms-grant-removed",
        "kms-grant-replaced",
        "kms-grant-narrowed",
        "kms-grant-moved",
        "vault-permission-model-change",
        "vault-network-access-change",
        "vault-network-acls-change",
        "vault-tenant-change",
        "vault-access-policies-change",
        "protect-removed",
        "destructive-op",
        "unreviewed-kms-change",
    }
)
ROTATION_GATE_RULE = "rotation-without-reencryption"
ROTATION_OVERRIDE_HINT = (
    "For a planned rotation, add an entry {urn, newKeyId, reason} to keyRotations in the overrides file "
    "(or --allow-key-rotation URN=KEY_ID), then re-encrypt every secret after `pulumi up` (docs/rotation.md)."
)


def transition_hint(rule: str, urn: str, path: str) -> str:
    return (
        f"When this is the planned step of that order, add {{urn: '{urn}', rule: {rule}, at: '{path}', reason}} "
        "to transitions in the overrides file: it excuses exactly this change."
    )


def short_type(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1]


def fmt(value: Any) -> str:
    if value is MISSING:
        return "(absent)"
    if value == UNKNOWN:
        return "(unknown until apply)"
    return json.dumps(value) if not isinstance(value, str) else value


def lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def unreadable(value: Any) -> bool:
    return value == UNKNOWN or hides(value)


def refusal(rule: str, urn: str, path: Path, message: str, *, overridable: bool = False) -> Finding:
    """The finding of a rule that refuses the change at `path`; an overridable one ends with the transition
    override that excuses exactly it."""
    shown = ".".join(path)
    if overridable:
        message = f"{message} {transition_hint(rule, urn, shown)}"
    return Finding(rule=rule, urn=urn, path=shown, message=message, overridable=overridable)
