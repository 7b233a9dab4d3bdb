"""Advice on a valid config that is still worth a second look before `pulumi up`."""

from __future__ import annotations

from kms_aks.config import KMS_V2_MIN_VERSION, StackConfig

KMS_V1_SECRET_LIMIT = 2000


def config_warnings(config: StackConfig) -> list[str]:
    """Warnings the program logs (and `make plan` prints); they never block a deployment."""
    warnings: list[str] = []
    cluster = config.cluster
    v2 = ".".join(map(str, KMS_V2_MIN_VERSION))
    if not cluster.uses_kms_v2:
        warnings.append(
            f"cluster.kubernetesVersion {cluster.kubernetes_version} is below {v2}: KMS runs as KMS v1, limited "
            f"to {KMS_V1_SECRET_LIMIT} secrets, and upgrading past {v2} with KMS on needs KMS disabled first. "
            f"Create the cluster at {v2} or later."
        )
    if not config.protect_kms_resources:
        warnings.append(
            "protectKmsResources is false: the key, vault and identity can be deleted, which makes the "
            "cluster's secrets unreadable. Only for throwaway stacks."
        )
    return warnings
