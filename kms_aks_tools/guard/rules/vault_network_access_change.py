"""`vault-network-access-change`: the Vault's `properties.publicNetworkAccess` (absent means Enabled).

Protects a Public-KMS cluster's way to the key: it reaches the key over the vault's public endpoint, so closing
it cuts the cluster off its key. Overridable once the cluster's KMS is Private.
"""

from __future__ import annotations

from typing import Any

from azure_facts.findings import Finding
from azure_facts.property_paths import MISSING
from kms_aks_tools.guard.common import VAULT_PUBLIC_NETWORK_PATH, fmt, lower, refusal, unreadable

RULE = "vault-network-access-change"
PATH = VAULT_PUBLIC_NETWORK_PATH


def judge(urn: str, old: Any, new: Any) -> Finding | None:
    effective = [lower("Enabled" if v in (MISSING, None) else v) for v in (old, new)]
    if effective[0] == effective[1] and not unreadable(new):
        return None
    return refusal(
        RULE,
        urn,
        PATH,
        f"the vault's publicNetworkAccess changes {fmt(old)} -> {fmt(new)}. A cluster whose KMS "
        "uses keyVaultNetworkAccess Public reaches the key over the vault's public endpoint: closing it cuts "
        "the cluster off its key. Safe way: move the cluster's KMS to Private first (docs/private-key-vault.md),"
        " then close the vault in a later update.",
        overridable=True,
    )
