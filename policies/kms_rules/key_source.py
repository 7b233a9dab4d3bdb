"""aks-kms-key-source: the cluster's keyId comes from a Key of this stack (a property dependency) or is pinned in
the policy's config, so that a key change is always a reviewed change.
"""

from __future__ import annotations

from collections.abc import Iterable

from azure_facts.key_ids import normalize_key_id
from kms_rules.model import (
    Finding,
    Res,
    StackIndex,
    could_not_decide,
    how_to_fix,
    is_unknown,
    key_matches,
    known_text,
    parse_key_url,
    violation,
)


def check_key_source(index: StackIndex, *, pinned_key_ids: Iterable[str] = ()) -> list[Finding]:
    """The cluster's keyId comes from a Key of this stack (property dependency) or is a pinned key id."""
    pinned = {normalize_key_id(k) for k in pinned_key_ids if isinstance(k, str)}
    findings: list[Finding] = []
    for kms in index.kms_clusters:
        cluster = kms.cluster
        key_id = kms.key_id
        if is_unknown(key_id):
            if kms.key_unresolved:
                findings.append(
                    could_not_decide(
                        f"{cluster.label}: keyId is not known during preview and does not depend on a Key of this "
                        "stack, so where it comes from cannot be decided.",
                        cluster.urn,
                    )
                )
            continue
        if not known_text(key_id):
            continue  # aks-kms-enabled reports a missing keyId
        if normalize_key_id(key_id) in pinned:
            continue
        pin = (
            "or, for a key managed outside this stack (bring your own key), pin it in this policy's config: "
            f'{{"aks-kms-key-source": {{"pinnedKeyIds": ["{key_id}"]}}}}'
        )
        if kms.dependency_keys:
            if kms.key_ref is None:
                continue  # aks-kms-key-id-versioned reports a malformed id
            matching = [k for k in kms.dependency_keys if key_matches(k, kms.key_ref)]
            current = {v for v in (_current_version(k) for k in matching) if v is not None}
            if matching and (not current or (kms.key_ref.version or "").lower() in current):
                continue
            if matching:
                findings.append(
                    violation(
                        f'{cluster.label}: keyId "{key_id}" names version {kms.key_ref.version} of key '
                        f'"{kms.key_ref.name}", but that Key\'s current version is {", ".join(sorted(current))}. '
                        "Moving the cluster to another key version is a key rotation, which must be planned "
                        "(docs/rotation.md) rather than happen by accident."
                        + how_to_fix(
                            f"kms-aks:kmsKey.version: {kms.key_ref.version} for a planned rotation, with this id "
                            "pinned in policies/config/<stack>.json: "
                            f'{{"aks-kms-key-source": {{"pinnedKeyIds": ["{key_id}"]}}}}; or remove '
                            "kms-aks:kmsKey.version to follow the Key's current version",
                            "keep keyId on the Key's key_uri_with_version, or pin this exact id as above",
                        ),
                        cluster.urn,
                    )
                )
                continue
            names = ", ".join(k.label for k in kms.dependency_keys)
            findings.append(
                violation(
                    f'{cluster.label}: keyId "{key_id}" names key "{kms.key_ref.name}" in vault "{kms.key_ref.vault}", '
                    f"but the cluster's securityProfile depends on {names}."
                    + how_to_fix(
                        "kms-aks:kmsKey (the key this stack creates) or kms-aks:existingKey.keyId, not both",
                        f"set keyId from that Key's key_uri_with_version {pin}",
                    ),
                    cluster.urn,
                )
            )
            continue
        findings.append(
            violation(
                f'{cluster.label}: keyId "{key_id}" is neither taken from a Key of this stack (securityProfile has no '
                "property dependency on an azure-native:keyvault:Key) nor pinned in this policy's config, so a key "
                "change would go unnoticed instead of being a planned rotation (docs/rotation.md)."
                + how_to_fix(
                    "kms-aks:existingKey.keyId names a bring-your-own key; pin that id in "
                    f'policies/config/<stack>.json: {{"aks-kms-key-source": {{"pinnedKeyIds": ["{key_id}"]}}}}',
                    f"set keyId from the Key resource's key_uri_with_version, {pin}",
                ),
                cluster.urn,
            )
        )
    return findings


def _current_version(key: Res) -> str | None:
    """The version the Key resource has now (its `keyUriWithVersion` output), when known."""
    ref = parse_key_url(key.props.get("keyUriWithVersion"))
    return ref.version.lower() if ref is not None and ref.versioned and ref.version else None
