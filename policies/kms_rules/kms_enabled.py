"""aks-kms-enabled: the cluster encrypts etcd with KMS (`securityProfile.azureKeyVaultKms.enabled` and `keyId`).

A resource rule: it takes a ManagedCluster's input properties and the policy's config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kms_rules.model import (
    Finding,
    could_not_decide,
    dig,
    how_to_fix,
    is_unknown,
    violation,
)


def check_kms_enabled(props: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> list[Finding]:
    """KMS is on and has a key: `securityProfile.azureKeyVaultKms.enabled` true and `keyId` set."""
    kms = dig(props, "securityProfile", "azureKeyVaultKms")
    if is_unknown(kms):
        return [
            could_not_decide("securityProfile.azureKeyVaultKms is not known until the resources it depends on exist.")
        ]
    enabled = dig(kms, "enabled")
    if is_unknown(enabled):
        return [could_not_decide("securityProfile.azureKeyVaultKms.enabled is not known during preview.")]
    findings = []
    if enabled is not True:
        state = "false" if enabled is False else "not set"
        findings.append(
            violation(
                f"securityProfile.azureKeyVaultKms.enabled is {state}: etcd secrets would not be encrypted with "
                "the customer-managed key, and turning KMS off on a cluster that has it is not supported. "
                + how_to_fix(
                    None,
                    "KmsAksCluster always enables KMS; on a raw ManagedCluster set azure_key_vault_kms="
                    "AzureKeyVaultKmsArgs(enabled=True, key_id=<the Key's key_uri_with_version>)",
                )
            )
        )
    key_id = dig(kms, "keyId")
    if key_id is None or (isinstance(key_id, str) and not key_id.strip()):
        findings.append(
            violation(
                "securityProfile.azureKeyVaultKms.keyId is not set: KMS needs the versioned id of the key that "
                "encrypts etcd."
                + how_to_fix(
                    "kms-aks:keyVault with kms-aks:kmsKey (the stack creates the key), or "
                    "kms-aks:existingKey.keyId: https://<vault>.vault.azure.net/keys/<name>/<version>",
                    "set keyId to the Key resource's key_uri_with_version",
                )
            )
        )
    return findings
