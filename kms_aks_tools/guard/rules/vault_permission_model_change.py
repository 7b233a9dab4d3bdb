"""`vault-permission-model-change`: the Vault's `properties.enableRbacAuthorization`.

Protects the KMS grant's meaning: Key Vault honours access policies only with RBAC off and role assignments only
with it on, so the KMS identity's grant stops working the moment the switch applies. Overridable as the middle
step of the safe order.
"""

from __future__ import annotations

from typing import Any

from azure_facts.findings import Finding
from kms_aks_tools.guard.common import VAULT_PERMISSION_MODEL_PATH, fmt, refusal, unreadable

RULE = "vault-permission-model-change"
PATH = VAULT_PERMISSION_MODEL_PATH


def judge(urn: str, old: Any, new: Any) -> Finding | None:
    if (old is True) == (new is True) and not unreadable(new):
        return None
    return refusal(
        RULE,
        urn,
        PATH,
        f"the vault's permission model changes: enableRbacAuthorization {fmt(old)} -> {fmt(new)}. "
        "Key Vault honours access policies only with RBAC off and role assignments only with it on, so the KMS "
        "identity's grant stops working the moment the switch applies, and the cluster can no longer encrypt "
        "or decrypt. Safe order: add the grant of the new model (a Key Vault Crypto User role assignment on "
        "the key, or an access policy with encrypt+decrypt) in one update and let it propagate, switch the "
        "model in the next, remove the old grant last.",
        overridable=True,
    )
