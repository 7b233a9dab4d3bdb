"""`vault-access-policies-change`: the Vault's own `properties.accessPolicies` list.

Protects the KMS identity's access policy: a Vault update replaces the whole list (Key Vault keeps one list, one
entry per object id), so writing it drops every access policy declared as its own AccessPolicy resource, the KMS
identity's grant included, and an inline KMS entry can lose decrypt or move to another principal with it
(pulumi/pulumi-azure-native#594). Overridable as a reviewed step.
"""

from __future__ import annotations

from typing import Any

from azure_facts.findings import Finding
from kms_aks_tools.guard.common import VAULT_ACCESS_POLICIES_PATH, fmt, refusal

RULE = "vault-access-policies-change"
PATH = VAULT_ACCESS_POLICIES_PATH


def judge(urn: str, old: Any, new: Any) -> Finding | None:
    if old == new:
        return None
    return refusal(
        RULE,
        urn,
        PATH,
        f"the vault's inline access policies change {fmt(old)} -> {fmt(new)}. A vault "
        "update replaces the whole accessPolicies list (Key Vault keeps one list, one entry per object id), so "
        "writing it drops every access policy declared as its own AccessPolicy resource, the KMS identity's "
        "grant included, and an inline KMS entry can lose decrypt or move to another principal with it. The "
        "azure-native maintainers warn: use stand-alone access policies or inline ones, not both "
        "(pulumi/pulumi-azure-native#594). Keep the KMS grant a separate AccessPolicy and leave "
        "properties.accessPolicies out of the Vault.",
        overridable=True,
    )
