"""`kms-private-vault-change`: the cluster's `securityProfile.azureKeyVaultKms.keyVaultResourceId` (private mode).

Protects the vault AKS reaches the key through: with keyVaultNetworkAccess Private it names the vault of the
private endpoint; another id points the KMS plugin at a vault that does not hold the cluster's key, or leaves it
no way to the key. Compared case-insensitively (ARM ids). Not overridable.
"""

from __future__ import annotations

from typing import Any

from azure_facts.findings import Finding
from azure_facts.property_paths import MISSING
from kms_aks_tools.guard.common import PRIVATE_VAULT_PATH, fmt, lower, refusal

RULE = "kms-private-vault-change"


def private_vault_finding(urn: str, old: Any, new: Any) -> Finding | None:
    if lower(old) == lower(new) or (old in (MISSING, None) and new in (MISSING, None)):
        return None
    return refusal(
        RULE,
        urn,
        PRIVATE_VAULT_PATH,
        f"keyVaultResourceId changes {fmt(old)} -> {fmt(new)}: with keyVaultNetworkAccess Private it names the "
        "vault AKS reaches the key through (its private endpoint); another id points the KMS plugin at another "
        "vault, which does not hold the cluster's key, or leaves it no way to the key. Keep it the vault of the "
        "key id; a move to another vault is a planned rotation to a key in that vault. Not overridable.",
    )
