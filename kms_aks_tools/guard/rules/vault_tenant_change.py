"""`vault-tenant-change`: the Vault's `properties.tenantId`.

Protects the vault's trust in the KMS identity: a vault in another tenant no longer honours the identity (a
managed identity of the old tenant) nor any access policy. Moving tenants is a migration with a planned rotation;
overridable only as its reviewed step.
"""

from __future__ import annotations

from typing import Any

from azure_facts.findings import Finding
from kms_aks_tools.guard.common import VAULT_TENANT_PATH, fmt, lower, refusal

RULE = "vault-tenant-change"
PATH = VAULT_TENANT_PATH


def judge(urn: str, old: Any, new: Any) -> Finding | None:
    if lower(old) == lower(new):
        return None
    return refusal(
        RULE,
        urn,
        PATH,
        f"the vault's tenantId changes {fmt(old)} -> {fmt(new)}. The vault then authenticates "
        "against another tenant: the KMS identity (a managed identity of the old tenant) and every access "
        "policy are no longer honoured, and the cluster is cut off its key. Moving tenants is a migration: a "
        "vault and key in the new tenant, an identity granted there, a planned rotation to the new key "
        "(guard override, re-encryption), and the old vault retired last.",
        overridable=True,
    )
