"""`kms-disabled`: `securityProfile.azureKeyVaultKms.enabled` going from true (in the inputs or the refreshed
outputs) to anything else, or the KMS block removed.

Protects KMS itself: disabling it was unsupported in the original design, and after it the old key must still
never be deleted or expire. Not overridable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure_facts.engine import UNKNOWN
from azure_facts.findings import Finding
from azure_facts.property_paths import MISSING, lookup
from kms_aks_tools.guard.common import ENABLED_PATH, KMS_PATH, fmt


def enabled_finding(
    urn: str, old_props: Mapping[str, Any], new_props: Mapping[str, Any], old_outputs: Mapping[str, Any] | None = None
) -> Finding | None:
    old = lookup(old_props, ENABLED_PATH)
    if old is not True and lookup(old_outputs, ENABLED_PATH) is not True:
        return None
    new = lookup(new_props, ENABLED_PATH)
    if new is True:
        return None
    path = ".".join(ENABLED_PATH)
    if new == UNKNOWN:
        detail = "becomes unknown until apply"
    elif lookup(new_props, KMS_PATH) in (MISSING, None):
        path = ".".join(KMS_PATH)
        detail = "block is removed, which disables KMS"
    else:
        detail = f"goes from true to {fmt(new)}"
    return Finding(
        rule="kms-disabled",
        urn=urn,
        path=path,
        message=(
            f"KMS {detail} on an existing cluster. Disabling KMS was unsupported in the original design; "
            "after it the old key must still never be deleted or expire. Not overridable."
        ),
    )
