"""kms-aks: an AKS cluster whose Kubernetes secrets in etcd are encrypted with a key the team owns.

Wiring, in dependency order:
    resource group
      -> KmsNetwork (VNet -> API server subnet -> node subnet)       [private key vault mode only]
      -> KeyVaultWithKey (vault -> key)          and  KmsIdentity (user-assigned identity)
      -> KmsIdentity's grants (encrypt + decrypt on that key; with a private vault also Key Vault
         Contributor on the vault and Network Contributor on both subnets)
      -> a propagation wait after every grant (pulumiverse-time Sleep; grants exist before they take effect)
      -> KmsMonitoring (workspace, action group, vault audit log, key expiry and KMS-access alerts)
      -> KmsAksCluster (waits for the propagation wait; keyId from the key; in private mode VNet-integrated;
         Container Insights to the workspace) -> the cluster's diagnostic setting
"""

from datetime import UTC, datetime

import pulumi
from pulumi_azure_native import authorization, resources

from components import (
    AlertReceivers,
    ClusterSpec,
    ExistingKeySpec,
    KeyVaultWithKey,
    KeyVaultWithKeyArgs,
    KmsAksCluster,
    KmsAksClusterArgs,
    KmsIdentity,
    KmsIdentityArgs,
    KmsKeySpec,
    KmsMonitoring,
    KmsMonitoringArgs,
    KmsNetwork,
    KmsNetworkArgs,
    NetworkSpec,
    NodePoolSpec,
    PrivateKmsArgs,
    RotationSpec,
    VaultSpec,
    known_at_preview,
)
from kms_aks.config.base import ConfigError
from kms_aks.config.stack import (
    NODE_UPGRADE_MAX_SURGE_PERCENT,
    ClusterConfig,
    ExistingKeyConfig,
    KeyVaultConfig,
    KmsKeyConfig,
    NetworkConfig,
    load_stack_config,
)
from kms_aks.vm_sizes import OS_DISK_SIZE_GB
from kms_aks.warnings import config_warnings

# ---- stack config -> component args: the only place that knows both.


def vault_spec(vault: KeyVaultConfig | None) -> VaultSpec | None:
    if vault is None:
        return None
    return VaultSpec(
        name=vault.name,
        sku=vault.sku,
        permission_model=vault.permission_model,
        soft_delete_retention_days=vault.soft_delete_retention_days,
    )


def key_spec(key: KmsKeyConfig | None) -> KmsKeySpec | None:
    if key is None:
        return None
    rotation = key.rotation
    return KmsKeySpec(
        name=key.name,
        type=key.type,
        size=key.size,
        expires_on=key.expires_on,
        rotation=RotationSpec(
            rotate_after_days=rotation.rotate_after_days,
            expire_after_days=rotation.expire_after_days,
            notify_before_expiry_days=rotation.notify_before_expiry_days,
        )
        if rotation
        else None,
        version=key.version,
    )


def existing_key_spec(existing: ExistingKeyConfig | None) -> ExistingKeySpec | None:
    if existing is None:
        return None
    return ExistingKeySpec(
        key_id=existing.key_id,
        key_name=existing.key_name,
        vault_resource_id=existing.key_vault_resource_id,
        vault_name=existing.vault_name,
        vault_resource_group=existing.vault_resource_group,
        vault_uri=existing.vault_uri,
        permission_model=existing.permission_model,
    )


def network_spec(network: NetworkConfig) -> NetworkSpec:
    return NetworkSpec(
        vnet_address_space=str(network.vnet_address_space),
        api_server_subnet_prefix=str(network.api_server_subnet_prefix),
        node_subnet_prefix=str(network.node_subnet_prefix),
    )


def cluster_spec(cluster: ClusterConfig) -> ClusterSpec:
    pool = cluster.system_node_pool
    return ClusterSpec(
        name=cluster.name,
        kubernetes_version=cluster.kubernetes_version,
        dns_prefix=cluster.dns_prefix,
        sku_tier=cluster.sku_tier,
        system_node_pool=NodePoolSpec(
            vm_size=pool.vm_size,
            count=pool.count,
            # The same surge the config's node-subnet sizing check counts with.
            upgrade_max_surge_percent=NODE_UPGRADE_MAX_SURGE_PERCENT,
            zones=tuple(pool.zones),
            max_pods=pool.max_pods,
            os_sku=pool.os_sku,
            encryption_at_host=pool.encryption_at_host,
            only_critical_addons=pool.only_critical_addons,
            os_disk_type=pool.resolved_os_disk_type,
            os_disk_size_gb=OS_DISK_SIZE_GB,
        ),
        admin_group_object_ids=tuple(cluster.admin_group_object_ids),
        admin_group_name=cluster.admin_group_name,
        api_server_authorized_ip_ranges=tuple(str(r) for r in cluster.api_server_authorized_ip_ranges),
        upgrade_channel=cluster.upgrade_channel,
        node_os_upgrade_channel=cluster.node_os_upgrade_channel,
        azure_policy_addon=cluster.azure_policy_addon,
        secrets_rotation_poll_minutes=(
            cluster.secrets_provider.rotation_poll_interval_minutes if cluster.secrets_provider.enabled else 0
        ),
        defender=cluster.defender,
    )


try:
    config = load_stack_config()
except ConfigError as error:
    # RunError ends the program with this message alone: a config mistake is not a crash.
    raise pulumi.RunError(str(error)) from None

for warning in config_warnings(config):
    pulumi.log.warn(warning)

stack = pulumi.get_stack()
tags = {"project": "kms-aks", "stack": stack, **config.tags}
client = authorization.get_client_config_output()

literal_group_name = config.resource_group_name or f"rg-kms-aks-{stack}"
resource_group = resources.ResourceGroup(
    "rg",
    resource_group_name=literal_group_name,
    location=config.location,
    tags=tags,
)
# The group's name as a literal that still depends on the group: known at preview, where the policy pack decides
# (a grant's scope, the vault's group; docs/policies.md, "Decided at preview"), and created after it.
resource_group_name = known_at_preview(resource_group, literal_group_name)

# A private KMS vault is reached from the API server, so the cluster gets a VNet for API server VNet integration.
kms_network = (
    KmsNetwork(
        "kms",
        KmsNetworkArgs(
            network=network_spec(config.network),
            vnet_name=f"vnet-{config.cluster.name}",
            resource_group_name=resource_group_name,
            location=config.location,
            tags=tags,
        ),
    )
    if config.private_key_vault and config.network is not None
    else None
)

kms_key = KeyVaultWithKey(
    "kms",
    KeyVaultWithKeyArgs(
        resource_group_name=resource_group_name,
        location=config.location,
        tenant_id=client.tenant_id,
        vault=vault_spec(config.key_vault),
        key=key_spec(config.kms_key),
        existing_key=existing_key_spec(config.existing_key),
        network_access=config.key_vault_network_access,
        protect=config.protect_kms_resources,
        tags=tags,
    ),
)

# With a private vault the identity needs more grants and the cluster joins the network: both see the same facts.
private_kms = (
    PrivateKmsArgs(
        key_vault_resource_id=kms_key.vault_resource_id,
        api_server_subnet_id=kms_network.api_server_subnet_id,
        node_subnet_id=kms_network.node_subnet_id,
    )
    if kms_network is not None
    else None
)

kms_identity = KmsIdentity(
    "kms",
    KmsIdentityArgs(
        identity_name=f"id-{config.cluster.name}-kms",
        resource_group_name=resource_group_name,
        location=config.location,
        tenant_id=client.tenant_id,
        subscription_id=client.subscription_id,
        permission_model=config.permission_model,
        # The grant's inputs carry their dependencies: on the vault (access policy) or the key (RBAC scope).
        key_vault_name=kms_key.vault_name,
        key_vault_resource_group_name=kms_key.vault_resource_group_name,
        key_resource_id=kms_key.key_resource_id,
        private_kms=private_kms,
        propagation_wait_seconds=config.grant_propagation_wait_seconds,
        protect=config.protect_kms_resources,
        tags=tags,
    ),
)

monitoring = KmsMonitoring(
    "monitoring",
    KmsMonitoringArgs(
        name_prefix=config.cluster.name,
        resource_group_name=resource_group_name,
        location=config.location,
        kms_principal_id=kms_identity.principal_id,
        receivers=AlertReceivers(
            emails=tuple(config.monitoring.alert_emails), webhooks=tuple(config.monitoring.alert_webhooks)
        ),
        # A bring-your-own-key vault belongs to its owner: its diagnostic settings and its one Event Grid system
        # topic are theirs to set (config_warnings says what to ask them for).
        vault_resource_id=kms_key.vault_resource_id if config.existing_key is None else None,
        workspace_resource_id=config.monitoring.workspace_resource_id,
        retention_days=config.monitoring.retention_days,
        key_new_version_alert=config.monitoring.key_new_version_alert,
        tags=tags,
    ),
)

aks = KmsAksCluster(
    "aks",
    KmsAksClusterArgs(
        cluster=cluster_spec(config.cluster),
        resource_group_name=resource_group_name,
        location=config.location,
        tenant_id=client.tenant_id,
        identity_resource_id=kms_identity.identity_resource_id,
        kms_key_id=kms_key.key_id_with_version,
        # The propagation wait, which itself waits for every grant (or the grants, with no wait configured).
        kms_grants=kms_identity.ready,
        kms_key_version_pinned=config.kms_key_version_pinned,
        private_kms=private_kms,
        admin_group_owner_object_id=client.object_id,
        monitoring_workspace_resource_id=monitoring.workspace_resource_id,
        # A bring-your-own key's declared properties ride on the cluster, where the policy pack reads them at preview.
        tags={**tags, **(config.existing_key.declared_properties if config.existing_key else {})},
    ),
    # The key must exist and the identity's grants must be in effect before AKS validates KMS at create time.
    opts=pulumi.ResourceOptions(depends_on=kms_identity.ready),
)
monitoring.watch_cluster(aks.cluster_resource_id)

pulumi.export("resourceGroupName", resource_group.name)
pulumi.export("clusterName", aks.cluster_name)
pulumi.export("clusterResourceId", aks.cluster_resource_id)
pulumi.export("oidcIssuerUrl", aks.oidc_issuer_url)
pulumi.export("kmsKeyId", kms_key.key_id_with_version)
pulumi.export("kmsKeyResourceId", kms_key.key_resource_id)
pulumi.export("keyVaultResourceId", kms_key.vault_resource_id)
pulumi.export("keyVaultUri", kms_key.vault_uri)
pulumi.export("kmsIdentityResourceId", kms_identity.identity_resource_id)
pulumi.export("kmsIdentityPrincipalId", kms_identity.principal_id)
pulumi.export("kmsIdentityClientId", kms_identity.client_id)
pulumi.export("adminGroupObjectIds", aks.admin_group_object_ids)
pulumi.export("logAnalyticsWorkspaceId", monitoring.workspace_resource_id)
pulumi.export("alertActionGroupId", monitoring.action_group_id)
# What the fleet project (fleet/, docs/fleet.md) reads through a StackReference before it lets a cluster join:
# whether KMS is on as Azure answers for the cluster (not as configured), and when the key version expires
# (None: the version has no expiry date, or the key lives outside this stack).
pulumi.export(
    "kmsEnabled",
    aks.cluster.security_profile.apply(
        lambda profile: bool(profile and profile.azure_key_vault_kms and profile.azure_key_vault_kms.enabled)
    ),
)
pulumi.export(
    "kmsKeyExpiresOn",
    kms_key.key.attributes.apply(
        lambda attributes: (
            datetime.fromtimestamp(attributes.expires, tz=UTC).isoformat()
            if attributes and attributes.expires is not None
            else None
        )
    )
    if kms_key.key is not None
    else None,
)
if kms_network is not None:
    pulumi.export("vnetId", kms_network.vnet_id)
    pulumi.export("apiServerSubnetId", kms_network.api_server_subnet_id)
    pulumi.export("nodeSubnetId", kms_network.node_subnet_id)
