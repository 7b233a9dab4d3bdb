"""The known-safe list: the property changes on a KMS closure member that the guard lets through unjudged.

Everything else that changes on a closure member (`azure_facts.kms_closure`) is either judged by a named rule or
refused as `unreviewed-kms-change`. Keep this list short: an entry is added only after a review that the change
cannot cut a cluster off its key, drop key material, or make the KMS identity's grant stop applying, and each
entry says why. docs/ci-and-state.md prints the same table (a test compares them).

A pattern is a property path; `*` stands for any one segment (a list index or a map key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure_facts.tokens import ACCESS_POLICY, MANAGED_CLUSTER, ROLE_ASSIGNMENT, VAULT

ANY_TYPE = "*"


@dataclass(frozen=True)
class SafeChange:
    """One reviewed entry: on this type (or any), a change at or below this path is safe, because ..."""

    type: str
    pattern: tuple[str, ...]
    reason: str
    # When set, safe only if the new value is one of these (case-insensitive).
    to: frozenset[str] | None = None

    def covers(self, canonical: str, path: tuple[str, ...], new: Any = None) -> bool:
        if self.type not in (ANY_TYPE, canonical) or len(path) < len(self.pattern):
            return False
        if self.to is not None and not (isinstance(new, str) and new.lower() in self.to):
            return False
        return all(want in ("*", got) for want, got in zip(self.pattern, path, strict=False))


_UPGRADE = (
    "an AKS upgrade keeps securityProfile.azureKeyVaultKms as it is; from 1.27 AKS moves KMS v1 to v2 itself "
    "(learn.microsoft.com/azure/aks/use-kms-etcd-encryption)"
)
_NODES = (
    "the KMS plugin runs in the control plane, not on the nodes: how many nodes there are changes neither the key, "
    "the identity nor its path to the vault"
)

KNOWN_SAFE: tuple[SafeChange, ...] = (
    SafeChange(
        ANY_TYPE,
        ("tags",),
        "ARM tags are metadata: they grant nothing and close no network (a Key's tags are judged by "
        "key-create-time-change, which runs whatever this list says)",
    ),
    SafeChange(MANAGED_CLUSTER, ("agentPoolProfiles", "*", "count"), _NODES),
    SafeChange(MANAGED_CLUSTER, ("agentPoolProfiles", "*", "minCount"), _NODES),
    SafeChange(MANAGED_CLUSTER, ("agentPoolProfiles", "*", "maxCount"), _NODES),
    SafeChange(MANAGED_CLUSTER, ("agentPoolProfiles", "*", "enableAutoScaling"), _NODES),
    SafeChange(MANAGED_CLUSTER, ("kubernetesVersion",), _UPGRADE),
    SafeChange(MANAGED_CLUSTER, ("agentPoolProfiles", "*", "orchestratorVersion"), _UPGRADE),
    SafeChange(MANAGED_CLUSTER, ("autoUpgradeProfile",), "when AKS upgrades, not what: " + _UPGRADE),
    SafeChange(
        MANAGED_CLUSTER,
        ("apiServerAccessProfile", "authorizedIPRanges"),
        "who may reach the API server; the API server's own way to the vault is unchanged",
    ),
    SafeChange(
        VAULT,
        ("properties", "enabledForDeployment"),
        "lets virtual machines read certificates stored as secrets; grants no principal key access",
    ),
    SafeChange(
        VAULT,
        ("properties", "enabledForTemplateDeployment"),
        "lets ARM deployments read secrets; grants no principal key access",
    ),
    SafeChange(
        VAULT,
        ("properties", "enabledForDiskEncryption"),
        "lets Azure Disk Encryption read secrets and unwrap its own keys; grants the KMS identity nothing and "
        "takes nothing from it",
    ),
    SafeChange(
        VAULT,
        ("properties", "sku", "name"),
        "premium adds HSM-backed keys and keeps every software key as it is (a move to standard is not on the list: "
        "an HSM key needs premium)",
        to=frozenset({"premium"}),
    ),
    SafeChange(
        ACCESS_POLICY,
        ("policy", "permissions", "secrets"),
        "KMS uses key permissions only; the entry's secret permissions leave its key permissions as they are",
    ),
    SafeChange(
        ACCESS_POLICY,
        ("policy", "permissions", "certificates"),
        "KMS uses key permissions only; the entry's certificate permissions leave its key permissions as they are",
    ),
    SafeChange(
        ACCESS_POLICY,
        ("policy", "permissions", "storage"),
        "KMS uses key permissions only; the entry's storage permissions leave its key permissions as they are",
    ),
    SafeChange(ROLE_ASSIGNMENT, ("description",), "free text; Azure does not evaluate it"),
)


def known_safe(canonical: str, path: tuple[str, ...], new: Any = None) -> SafeChange | None:
    """The entry that makes a change at `path` (to `new`) on a `canonical` type safe, or None."""
    return next((entry for entry in KNOWN_SAFE if entry.covers(canonical, path, new)), None)
