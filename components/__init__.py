"""The building blocks of a KMS-encrypted AKS cluster, in the order they are wired.

Each component takes its own typed args (plain dataclasses): none reads the stack config, so a component can
be used outside this stack. `__main__.py` alone maps the stack config to these args.
"""

from components.key_vault_with_key import (
    ExistingKeySpec,
    KeyVaultWithKey,
    KeyVaultWithKeyArgs,
    KmsKeySpec,
    RotationSpec,
    VaultSpec,
)
from components.kms_aks_cluster import ClusterSpec, KmsAksCluster, KmsAksClusterArgs, NodePoolSpec
from components.kms_identity import KmsIdentity, KmsIdentityArgs
from components.kms_monitoring import AlertReceivers, KmsMonitoring, KmsMonitoringArgs
from components.kms_network import KmsNetwork, KmsNetworkArgs, NetworkSpec, PrivateKmsArgs
from components.known_names import known_at_preview

__all__ = [
    "AlertReceivers",
    "ClusterSpec",
    "ExistingKeySpec",
    "KeyVaultWithKey",
    "KeyVaultWithKeyArgs",
    "KmsAksCluster",
    "KmsAksClusterArgs",
    "KmsIdentity",
    "KmsIdentityArgs",
    "KmsKeySpec",
    "KmsMonitoring",
    "KmsMonitoringArgs",
    "KmsNetwork",
    "KmsNetworkArgs",
    "NetworkSpec",
    "NodePoolSpec",
    "PrivateKmsArgs",
    "RotationSpec",
    "VaultSpec",
    "known_at_preview",
]
