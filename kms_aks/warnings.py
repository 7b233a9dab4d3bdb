"""Advice on a valid config that is still worth a second look before `pulumi up`."""

from __future__ import annotations

from kms_aks.config import KMS_V2_MIN_VERSION, PROJECT, StackConfig

KMS_V1_SECRET_LIMIT = 2000


def config_warnings(config: StackConfig) -> list[str]:
    """Warnings the program logs (and `make plan` prints); they never block a deployment."""
    warnings: list[str] = []
    cluster = config.cluster
    v2 = ".".join(map(str, KMS_V2_MIN_VERSION))
    if not cluster.uses_kms_v2:
        # Both facts hinge on the version: the secret limit is KMS v1's alone, and the v1 -> v2 switch is
        # not done in place on a cluster that has KMS on.
        warnings.append(
            f"{PROJECT}:cluster.kubernetesVersion {cluster.kubernetes_version} is below {v2}, so KMS runs as KMS v1: "
            f"the {KMS_V1_SECRET_LIMIT}-secret limit applies (it applies only below {v2}; {v2} and later use KMS v2, "
            f"which has no such limit), and upgrading this cluster past {v2} with KMS on needs KMS disabled first "
            f"(then re-enabled and every secret re-encrypted). Create the cluster at {v2} or later."
        )
    if not config.protect_kms_resources:
        warnings.append(
            "protectKmsResources is false: the key, vault and identity can be deleted, which makes the "
            "cluster's secrets unreadable. Only for throwaway stacks."
        )
    if config.private_key_vault:
        warnings.extend(_private_vault_warnings(config))
    return warnings


def _private_vault_warnings(config: StackConfig) -> list[str]:
    warnings = []
    if config.existing_key is not None:
        warnings.append(
            f"{PROJECT}:keyVaultNetworkAccess is Private with {PROJECT}:existingKey: this stack does not manage that "
            "vault, so its owner must disable its public network access; the deployer needs the right to assign "
            "Key Vault Contributor on it to the cluster identity."
        )
    if config.permission_model == "accessPolicy":
        warnings.append(
            f"{PROJECT}:keyVaultNetworkAccess is Private on a vault in access-policy mode: the Key Vault Contributor "
            "role AKS needs for a private vault can write access policies, so the cluster identity could grant "
            "itself any data-plane permission. Prefer permissionModel: rbac for a private vault."
        )
    return warnings
