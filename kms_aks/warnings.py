"""Advice on a valid config that is still worth a second look before `pulumi up`."""

from __future__ import annotations

from kms_aks.config.stack import KMS_V2_MIN_VERSION, PROJECT, StackConfig
from kms_aks.vm_sizes import OS_DISK_SIZE_GB, ephemeral_capacity

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
    warnings.extend(_hardening_and_monitoring_warnings(config))
    return warnings


# RFC 2606 reserves these for examples: an address there reaches no one.
_PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net")


def _hardening_and_monitoring_warnings(config: StackConfig) -> list[str]:
    warnings = []
    pool = config.cluster.system_node_pool
    if pool.os_disk_type is None and ephemeral_capacity(pool.vm_size) is None:
        warnings.append(
            f"{PROJECT}:cluster.systemNodePool.vmSize {pool.vm_size} is not in this project's table of local disk "
            f"sizes, so the system pool gets a managed OS disk; if its cache or temporary disk holds "
            f"{OS_DISK_SIZE_GB} GiB, set cluster.systemNodePool.osDiskType: Ephemeral."
        )
    monitoring = config.monitoring
    if not monitoring.alert_emails and not monitoring.alert_webhooks:
        warnings.append(
            f"{PROJECT}:monitoring has no alertEmails and no alertWebhooks: the KMS alerts fire but page no one. "
            "Set at least one receiver for any stack whose cluster matters."
        )
    placeholders = [a for a in monitoring.alert_emails if a.lower().rsplit("@", 1)[-1] in _PLACEHOLDER_DOMAINS]
    if placeholders:
        warnings.append(
            f"{PROJECT}:monitoring.alertEmails {', '.join(placeholders)}: a placeholder domain (RFC 2606) that "
            "reaches no one; replace it with the on-call address before deploying."
        )
    if config.existing_key is not None:
        warnings.append(
            f"{PROJECT}:existingKey: this stack does not own the vault, so it sets neither its diagnostic settings "
            "nor its Event Grid system topic; ask the vault's owner to send its AuditEvent log to this stack's "
            "workspace (output logAnalyticsWorkspaceId), or the failed-KMS-access alert sees nothing, and to "
            "alert on Microsoft.KeyVault.KeyNearExpiry and KeyExpired."
        )
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
