"""The building blocks of a KMS-encrypted AKS cluster, in the order they are wired."""

from components.key_vault_with_key import KeyVaultWithKey, KeyVaultWithKeyArgs
from components.kms_aks_cluster import KmsAksCluster, KmsAksClusterArgs
from components.kms_identity import KmsIdentity, KmsIdentityArgs
from components.kms_network import KmsNetwork, KmsNetworkArgs, PrivateKmsArgs

__all__ = [
    "KeyVaultWithKey",
    "KeyVaultWithKeyArgs",
    "KmsAksCluster",
    "KmsAksClusterArgs",
    "KmsIdentity",
    "KmsIdentityArgs",
    "KmsNetwork",
    "KmsNetworkArgs",
    "PrivateKmsArgs",
]
