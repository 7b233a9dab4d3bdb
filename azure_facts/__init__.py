"""Azure facts that the kms-aks program, its policy pack and the bootstrap project all rely on, in one place.

Pure constants and compiled regular expressions, standard library only: the policy pack imports this and
nothing else of the project, and the bootstrap project runs in its own virtualenv.

Every value here is checked in `tests/test_azure_facts.py` against a literal taken from Microsoft's
documentation (the page is cited next to it), never against this module itself, so a typo here fails a test.
"""

from __future__ import annotations

import re

# ------------------------------------------------------------------------------------ built-in role ids
# A built-in role has the same definition id in every tenant; a role assignment names it as
# /subscriptions/<sub>/providers/Microsoft.Authorization/roleDefinitions/<id>.

# Data actions keys/encrypt and keys/decrypt (among others): what AKS KMS needs on the key (RBAC vault).
KEY_VAULT_CRYPTO_USER_ROLE = "12338af0-0e69-4776-bea7-57ae8d297424"
# Supersets of Crypto User for keys: they carry the same data actions, so they work for KMS too.
KEY_VAULT_CRYPTO_OFFICER_ROLE = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
KEY_VAULT_ADMINISTRATOR_ROLE = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
# Management plane: AKS creates and approves the private endpoint of a private KMS vault with it.
KEY_VAULT_CONTRIBUTOR_ROLE = "f25e0fa2-a7c8-4377-a976-54943a77a395"
# AKS joins subnets it does not own (node subnet, API server subnet) with it.
NETWORK_CONTRIBUTOR_ROLE = "4d97b98b-1d4f-4787-a291-c67834d212e7"
# The bootstrap project's state container.
STORAGE_BLOB_DATA_CONTRIBUTOR_ROLE = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"

# Roles whose data actions include keys/encrypt and keys/decrypt.
KMS_CRYPTO_ROLES = frozenset({KEY_VAULT_CRYPTO_USER_ROLE, KEY_VAULT_CRYPTO_OFFICER_ROLE, KEY_VAULT_ADMINISTRATOR_ROLE})

# Display names, for plans and messages.
ROLE_NAMES = {
    KEY_VAULT_CRYPTO_USER_ROLE: "Key Vault Crypto User",
    KEY_VAULT_CRYPTO_OFFICER_ROLE: "Key Vault Crypto Officer",
    KEY_VAULT_ADMINISTRATOR_ROLE: "Key Vault Administrator",
    KEY_VAULT_CONTRIBUTOR_ROLE: "Key Vault Contributor",
    NETWORK_CONTRIBUTOR_ROLE: "Network Contributor",
    STORAGE_BLOB_DATA_CONTRIBUTOR_ROLE: "Storage Blob Data Contributor",
}

# ------------------------------------------------------------------------------------------ Key Vault
# The DNS suffix of a vault's data plane in the public, China and US Government clouds.
KEY_VAULT_DNS_SUFFIXES = ("vault.azure.net", "vault.azure.cn", "vault.usgovcloudapi.net")

# Vault names: 3-24 characters, letters, digits and hyphens, starting with a letter, ending with a letter or digit.
VAULT_NAME_PATTERN = r"[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]"
# Key names: 1-127 characters, letters, digits and hyphens.
KEY_NAME_PATTERN = r"[a-zA-Z0-9-]{1,127}"
# Key versions: 32 hexadecimal characters.
KEY_VERSION_PATTERN = r"[0-9a-fA-F]{32}"

_SUFFIXES = "|".join(re.escape(s) for s in KEY_VAULT_DNS_SUFFIXES)

# A versioned key identifier (`key.kid`): the only form AKS KMS accepts as `keyId`.
VERSIONED_KEY_ID = re.compile(
    rf"^https://(?P<vault>{VAULT_NAME_PATTERN})\.(?P<suffix>{_SUFFIXES})"
    rf"/keys/(?P<name>{KEY_NAME_PATTERN})/(?P<version>{KEY_VERSION_PATTERN})$"
)
# The same without named groups, portable to JSON Schema (the policy pack's pinnedKeyIds).
VERSIONED_KEY_ID_PATTERN = (
    rf"^https://{VAULT_NAME_PATTERN}\.({_SUFFIXES})/keys/{KEY_NAME_PATTERN}/{KEY_VERSION_PATTERN}$"
)

# Any key URL, with or without a version (and with the default port or a trailing slash), so that a
# versionless or malformed one can be recognised and named in a message. Key Vault names are case-insensitive.
KEY_URL = re.compile(
    rf"^https://(?P<vault>{VAULT_NAME_PATTERN})\.(?:{_SUFFIXES})(?::443)?"
    rf"/keys/(?P<name>{KEY_NAME_PATTERN})(?:/(?P<version>[^/?#]*))?/?$",
    re.IGNORECASE,
)
KEY_VERSION = re.compile(rf"^{KEY_VERSION_PATTERN}$")

# A vault's ARM resource id.
VAULT_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[0-9a-fA-F-]{36})/resourceGroups/(?P<resource_group>[-\w._()]{1,90})"
    rf"/providers/Microsoft\.KeyVault/vaults/(?P<vault>{VAULT_NAME_PATTERN})$",
    re.IGNORECASE,
)

# ---------------------------------------------------------------------------------------------- AKS KMS
# From this Kubernetes minor version on, AKS uses KMS v2: no 2000-secret limit.
KMS_V2_MIN_KUBERNETES_VERSION = (1, 27)

# ------------------------------------------------------------------------------- a key outside the stack
# A bring-your-own key's properties, as its stack config declares them (kms-aks:existingKey), carried on the
# cluster as tags so that the policy pack sees them at preview: this project's names, not Azure's.
EXISTING_KEY_TYPE_TAG = "kms-aks-existing-key-type"
EXISTING_VAULT_PURGE_PROTECTION_TAG = "kms-aks-existing-vault-purge-protection"
EXISTING_VAULT_SOFT_DELETE_DAYS_TAG = "kms-aks-existing-vault-soft-delete-days"
EXISTING_VAULT_AUDIT_LOGGING_TAG = "kms-aks-existing-vault-audit-logging"
