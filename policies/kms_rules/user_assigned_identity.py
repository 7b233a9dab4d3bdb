"""aks-kms-user-assigned-identity: the cluster identity is exactly one user-assigned managed identity.

A resource rule: it takes a ManagedCluster's input properties and the policy's config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kms_rules.model import (
    Finding,
    cluster_identity_refs,
    could_not_decide,
    dig,
    how_to_fix,
    is_unknown,
    is_user_assigned,
    violation,
)


def check_user_assigned_identity(props: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> list[Finding]:
    """The cluster identity is exactly one user-assigned identity (KMS cannot use a system-assigned one)."""
    identity = props.get("identity")
    if is_unknown(identity):
        return [could_not_decide("identity is not known during preview.")]
    identity_type = dig(identity, "type")
    if is_unknown(identity_type):
        return [could_not_decide("identity.type is not known during preview.")]
    fix = how_to_fix(
        None,
        "KmsAksCluster always uses KmsIdentity's user-assigned identity; on a raw ManagedCluster set identity to "
        '{"type": "UserAssigned", "userAssignedIdentities": [<id of a managedidentity.UserAssignedIdentity>]}, '
        "created before the cluster and granted encrypt + decrypt on the KMS key",
    ).strip()
    if not is_user_assigned(identity_type):
        shown = f'"{identity_type}"' if identity_type is not None else "not set"
        return [
            violation(
                f"identity.type is {shown}: KMS needs a user-assigned managed identity. A system-assigned identity "
                "is created with the cluster, so it cannot hold the key permission that AKS checks while creating "
                f"the cluster (a dependency cycle). {fix}"
            )
        ]
    refs, _ = cluster_identity_refs(props)
    if not refs:
        return [violation(f"identity.userAssignedIdentities is empty. {fix}")]
    if len(refs) > 1:
        return [
            violation(
                f"identity.userAssignedIdentities lists {len(refs)} identities; an AKS cluster takes exactly one "
                "control-plane identity, and it is the one KMS uses. Keep only the identity that holds the key grant."
            )
        ]
    return []
