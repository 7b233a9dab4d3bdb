"""`kms-network-access-change`: the cluster's `securityProfile.azureKeyVaultKms.keyVaultNetworkAccess`.

Protects the way the KMS plugin reaches the key: switching Public <-> Private requires disabling KMS first and
cannot happen in place. ARM's default when it is omitted is Public, so an explicit "Public" is no change. Not
overridable.
"""

from __future__ import annotations

from typing import Any

from azure_facts.findings import Finding
from azure_facts.property_paths import MISSING
from kms_aks_tools.guard.common import DEFAULT_NETWORK_ACCESS, NETWORK_ACCESS_PATH, fmt, refusal

RULE = "kms-network-access-change"


def network_access_finding(urn: str, old: Any, new: Any) -> Finding | None:
    effective_old = DEFAULT_NETWORK_ACCESS if old in (MISSING, None) else old
    effective_new = DEFAULT_NETWORK_ACCESS if new in (MISSING, None) else new
    if effective_old == effective_new:
        return None
    return refusal(
        RULE,
        urn,
        NETWORK_ACCESS_PATH,
        f"keyVaultNetworkAccess changes {fmt(effective_old)} -> {fmt(effective_new)}. Switching "
        "Public<->Private requires disabling KMS first and cannot happen in place. Not overridable.",
    )
