"""`identity-change`: the cluster's `identity` (type and user-assigned ids, case-folded).

Protects the identity that holds the KMS grant: a new identity without its own grant cannot encrypt or decrypt,
and the API server can no longer read the Secrets in etcd. Overridable as the middle step of the safe order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from azure_facts.engine import UNKNOWN
from azure_facts.findings import Finding
from azure_facts.property_paths import MISSING, unwrap
from kms_aks_tools.guard.common import IDENTITY_PATH, fmt, refusal


def _identity_shape(identity: Any) -> Any:
    """Identity as (type, sorted ids), case-folded: ARM ids and enum values are case-insensitive.

    User-assigned identities are a list of ids on input and a map keyed by id on output.
    """
    if identity in (MISSING, None) or identity == UNKNOWN or not isinstance(identity, dict):
        return identity
    identity_type = unwrap(identity.get("type"))
    ids = unwrap(identity.get("userAssignedIdentities"))
    if ids == UNKNOWN:
        return UNKNOWN
    if isinstance(ids, dict):
        id_list: Iterable[Any] = ids.keys()
    elif isinstance(ids, list):
        id_list = ids
    else:
        id_list = []
    if any(unwrap(i) == UNKNOWN for i in id_list):
        return UNKNOWN
    return (
        identity_type.lower() if isinstance(identity_type, str) else identity_type,
        tuple(sorted(str(unwrap(i)).lower() for i in id_list)),
    )


def identity_finding(urn: str, old: Any, new: Any) -> Finding | None:
    old_shape, new_shape = _identity_shape(old), _identity_shape(new)
    if old_shape == new_shape:
        return None
    detail = "becomes unknown until apply" if new_shape == UNKNOWN else f"{fmt(old)} -> {fmt(new)}"
    return refusal(
        "identity-change",
        urn,
        IDENTITY_PATH,
        f"the cluster identity changes: {detail}. The KMS grant on the key belongs to the old identity; a new "
        "identity without its own grant cannot encrypt or decrypt, and the API server can no longer read the "
        "secrets in etcd. Safe order: create the new identity and grant it encrypt+decrypt on the key in one "
        "update (and let the grant propagate), switch the cluster to it in the next, remove the old grant "
        "and identity last.",
        overridable=True,
    )
