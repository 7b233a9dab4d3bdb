"""aks-kms-key-id-versioned: `keyId` is a versioned Key Vault key identifier.

A resource rule: it takes a ManagedCluster's input properties and the policy's config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kms_rules.model import (
    Finding,
    dig,
    how_to_fix,
    is_unknown,
    not_applicable,
    parse_key_url,
    violation,
)


def check_key_id_versioned(props: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> list[Finding]:
    """`keyId` is a versioned Key Vault key id: https://<vault>.vault.azure.net/keys/<name>/<32-hex version>."""
    kms = dig(props, "securityProfile", "azureKeyVaultKms")
    key_id = dig(kms, "keyId")
    if is_unknown(key_id) or is_unknown(kms):
        # Only the stack policy sees whether the unknown comes from a Key of this stack; it says
        # "could not decide" when it does not. During `pulumi up` this policy sees the value.
        return [
            not_applicable(
                "keyId is not known until the key exists; aks-kms-key-source checks where it comes from, and this "
                "policy checks its form when the value is known (pulumi up)."
            )
        ]
    if key_id is None or dig(kms, "enabled") is False:
        return []  # aks-kms-enabled reports a missing key or disabled KMS
    ref = parse_key_url(key_id)
    if ref is not None and ref.versioned:
        return []
    if ref is not None:
        problem = (
            "has no version" if ref.version is None else f'has "{ref.version}" where a 32-hex-digit version belongs'
        )
        return [
            violation(
                f'keyId "{key_id}" {problem}: AKS KMS takes the key identifier with its version.'
                + how_to_fix(
                    f"kms-aks:existingKey.keyId: https://{ref.vault}.vault.azure.net/keys/{ref.name}/<32-hex version> "
                    "(bring your own key), or kms-aks:kmsKey.version: <32-hex version> (a key this stack creates)",
                    "set keyId to the Key resource's key_uri_with_version output, or its keyUri plus a pinned version",
                )
            )
        ]
    return [
        violation(
            f'keyId "{key_id}" is not a Key Vault key identifier.'
            + how_to_fix(
                "kms-aks:existingKey.keyId: https://<vault>.vault.azure.net/keys/<name>/<32-hex version>",
                "set keyId to the Key resource's key_uri_with_version",
            )
        )
    ]
