"""`vault-network-acls-change`: the Vault's `properties.networkAcls` (the firewall), compared as ARM applies it.

Protects a Public-KMS cluster's way to the key: defaultAction Deny is Key Vault's "selected networks" firewall,
which AKS KMS does not support with a public vault, and any network rule decides whether the KMS plugin reaches
the key. Overridable once the cluster's KMS is Private.
"""

from __future__ import annotations

import json
from typing import Any

from azure_facts.findings import Finding
from azure_facts.property_paths import MISSING, unwrap
from kms_aks_tools.guard.common import VAULT_NETWORK_ACLS_PATH, fmt, lower, refusal, unreadable

RULE = "vault-network-acls-change"
PATH = VAULT_NETWORK_ACLS_PATH


def _normalised_acls(acls: Any) -> Any:
    """A vault's networkAcls as ARM applies them: absent means Allow with the AzureServices bypass."""
    acls = unwrap(acls)
    if acls in (MISSING, None):
        acls = {}
    if not isinstance(acls, dict) or unreadable(acls):
        return acls
    return {
        "defaultAction": lower(acls.get("defaultAction", "Allow")),
        "bypass": lower(acls.get("bypass", "AzureServices")),
        "ipRules": sorted(json.dumps(r, sort_keys=True).lower() for r in acls.get("ipRules") or []),
        "virtualNetworkRules": sorted(
            json.dumps(r, sort_keys=True).lower() for r in acls.get("virtualNetworkRules") or []
        ),
    }


def judge(urn: str, old: Any, new: Any) -> Finding | None:
    if _normalised_acls(old) == _normalised_acls(new) and not unreadable(new):
        return None
    deny = isinstance(new, dict) and lower(new.get("defaultAction")) == "deny"
    return refusal(
        RULE,
        urn,
        PATH,
        f"the vault's networkAcls change {fmt(old)} -> {fmt(new)}. "
        + (
            'defaultAction Deny is Key Vault\'s "selected networks" firewall, which AKS KMS does not support '
            "with a public vault (keyVaultNetworkAccess Public): the KMS plugin's calls are refused. "
            if deny
            else "Network rules decide whether the KMS plugin reaches the key. "
        )
        + "Keep defaultAction Allow while the cluster's KMS is Public; to close the vault, move the cluster's "
        "KMS to Private first (docs/private-key-vault.md).",
        overridable=True,
    )
