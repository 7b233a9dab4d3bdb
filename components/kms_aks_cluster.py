"""KmsAksCluster: a hardened AKS cluster whose etcd secrets are encrypted by the KMS key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_azuread as azuread
from pulumi_azure_native import containerservice

from components.kms_network import PrivateKmsArgs

KMS_KEY_ID_PATH = "securityProfile.azureKeyVaultKms.keyId"


@dataclass(frozen=True)
class NodePoolSpec:
    """The system node pool. `upgrade_max_surge_percent` is the extra nodes (in %) an upgrade adds."""

    vm_size: str
    count: int
    upgrade_max_surge_percent: int
    zones: Sequence[str] = ()
    max_pods: int = 110
    os_sku: Literal["AzureLinux", "Ubuntu"] = "AzureLinux"
    encryption_at_host: bool = True
    only_critical_addons: bool = False
    # Ephemeral: the OS disk lives on the VM's local disk (faster reimage and upgrade, no OS disk in Azure Storage);
    # the caller checks the VM size can hold `os_disk_size_gb` locally.
    os_disk_type: Literal["Ephemeral", "Managed"] = "Managed"
    os_disk_size_gb: int = 128


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster's own settings. Empty `admin_group_object_ids` creates an Entra ID admin group."""

    name: str
    kubernetes_version: str
    system_node_pool: NodePoolSpec
    dns_prefix: str | None = None
    sku_tier: Literal["Free", "Standard", "Premium"] = "Standard"
    admin_group_object_ids: Sequence[str] = ()
    admin_group_name: str | None = None
    api_server_authorized_ip_ranges: Sequence[str] = ()
    upgrade_channel: str = "patch"
    node_os_upgrade_channel: str = "NodeImage"
    azure_policy_addon: bool = True
    # The Azure Key Vault Secrets Provider add-on (Secrets Store CSI driver) with secret rotation: 0 turns it off.
    secrets_rotation_poll_minutes: int = 2
    # Microsoft Defender for Containers' sensor, reporting to the monitoring workspace.
    defender: bool = False


@dataclass
class KmsAksClusterArgs:
    """The cluster and what it needs from the other components.

    `kms_grants` are the identity's permissions (on the key; with a private vault also on the vault and the
    subnets), or the propagation wait that follows them all: the cluster waits for them explicitly, because AKS
    validates and uses them when it creates the cluster and fails if a grant is missing or still propagating.
    There is deliberately no identity-type argument: KMS works only with a user-assigned identity.
    `private_kms` switches to a private KMS vault; None keeps the vault public, as the 2022 design has it.
    """

    cluster: ClusterSpec
    resource_group_name: pulumi.Input[str]
    location: str
    tenant_id: pulumi.Input[str]
    identity_resource_id: pulumi.Input[str]
    kms_key_id: pulumi.Input[str]
    kms_grants: Sequence[pulumi.Resource]
    # With no version pinned in config, the cluster keeps the key version it was created with: a new
    # version (rotation, refresh) reaches it only through an explicit config change.
    kms_key_version_pinned: bool = False
    private_kms: PrivateKmsArgs | None = None
    admin_group_owner_object_id: pulumi.Input[str] | None = None
    # Container Insights (and Defender) report to this Log Analytics workspace; None: neither is enabled.
    monitoring_workspace_resource_id: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)


class KmsAksCluster(pulumi.ComponentResource):
    """A ManagedCluster with KMS etcd encryption, Entra ID + Azure RBAC, no local accounts.

    Creates an Entra ID admin group when the config names none.
    """

    cluster: containerservice.ManagedCluster
    cluster_name: pulumi.Output[str]
    cluster_resource_id: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    admin_group_object_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: KmsAksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kms-aks:index:KmsAksCluster", name, None, opts)
        cfg = args.cluster
        self.admin_group_object_ids = self._admin_groups(name, args)
        pool = cfg.system_node_pool
        private = args.private_kms
        workspace = args.monitoring_workspace_resource_id

        self.cluster = containerservice.ManagedCluster(
            f"{name}-cluster",
            resource_name_=cfg.name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            dns_prefix=cfg.dns_prefix or cfg.name,
            kubernetes_version=cfg.kubernetes_version,
            sku=containerservice.ManagedClusterSKUArgs(name="Base", tier=cfg.sku_tier),
            support_plan="KubernetesOfficial",
            identity=containerservice.ManagedClusterIdentityArgs(
                type="UserAssigned",
                user_assigned_identities=[args.identity_resource_id],
            ),
            security_profile=containerservice.ManagedClusterSecurityProfileArgs(
                azure_key_vault_kms=containerservice.AzureKeyVaultKmsArgs(
                    enabled=True,
                    key_id=args.kms_key_id,
                    key_vault_network_access="Private" if private else "Public",
                    # AKS takes the vault's resource id only for a private vault, to create its endpoint.
                    key_vault_resource_id=private.key_vault_resource_id if private else None,
                ),
                workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(enabled=True),
                defender=containerservice.ManagedClusterSecurityProfileDefenderArgs(
                    log_analytics_workspace_resource_id=workspace,
                    security_monitoring=containerservice.ManagedClusterSecurityProfileDefenderSecurityMonitoringArgs(
                        enabled=True
                    ),
                )
                if cfg.defender and workspace is not None
                else None,
                image_cleaner=containerservice.ManagedClusterSecurityProfileImageCleanerArgs(
                    enabled=True, interval_hours=168
                ),
            ),
            enable_rbac=True,
            disable_local_accounts=True,
            aad_profile=containerservice.ManagedClusterAADProfileArgs(
                managed=True,
                enable_azure_rbac=True,
                tenant_id=args.tenant_id,
                admin_group_object_ids=self.admin_group_object_ids,
            ),
            oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel=cfg.upgrade_channel,
                node_os_upgrade_channel=cfg.node_os_upgrade_channel,
            ),
            network_profile=containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin="azure",
                network_plugin_mode="overlay",
                network_dataplane="cilium",
                network_policy="cilium",
                load_balancer_sku="standard",
                outbound_type="loadBalancer",
            ),
            api_server_access_profile=containerservice.ManagedClusterAPIServerAccessProfileArgs(
                authorized_ip_ranges=list(cfg.api_server_authorized_ip_ranges) or None,
                # A private KMS vault is reached from the API server's subnet: AKS requires VNet integration.
                enable_vnet_integration=True if private else None,
                subnet_id=private.api_server_subnet_id if private else None,
            ),
            addon_profiles=_addon_profiles(cfg, workspace),
            agent_pool_profiles=[
                containerservice.ManagedClusterAgentPoolProfileArgs(
                    name="system",
                    mode="System",
                    type="VirtualMachineScaleSets",
                    os_type="Linux",
                    os_sku=pool.os_sku,
                    vm_size=pool.vm_size,
                    count=pool.count,
                    max_pods=pool.max_pods,
                    availability_zones=list(pool.zones) or None,
                    enable_encryption_at_host=pool.encryption_at_host,
                    os_disk_type=pool.os_disk_type,
                    os_disk_size_gb=pool.os_disk_size_gb,
                    enable_node_public_ip=False,
                    # With VNet integration the nodes reach the API server's internal load balancer in the VNet.
                    vnet_subnet_id=private.node_subnet_id if private else None,
                    node_taints=["CriticalAddonsOnly=true:NoSchedule"] if pool.only_critical_addons else None,
                    upgrade_settings=containerservice.AgentPoolUpgradeSettingsArgs(
                        max_surge=f"{pool.upgrade_max_surge_percent}%"
                    ),
                )
            ],
            tags=args.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(args.kms_grants),
                ignore_changes=[] if args.kms_key_version_pinned else [KMS_KEY_ID_PATH],
            ),
        )
        self.cluster_name = self.cluster.name
        self.cluster_resource_id = self.cluster.id
        self.oidc_issuer_url = self.cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else None)

        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "clusterResourceId": self.cluster_resource_id,
                "oidcIssuerUrl": self.oidc_issuer_url,
            }
        )

    def _admin_groups(self, name: str, args: KmsAksClusterArgs) -> pulumi.Output[list[str]]:
        cfg = args.cluster
        if cfg.admin_group_object_ids:
            return pulumi.Output.from_input(list(cfg.admin_group_object_ids))
        group = azuread.Group(
            f"{name}-admins",
            display_name=cfg.admin_group_name or f"{cfg.name}-cluster-admins",
            description=f"Cluster admins of AKS cluster {cfg.name} (Azure RBAC for Kubernetes).",
            security_enabled=True,
            prevent_duplicate_names=True,
            owners=[args.admin_group_owner_object_id] if args.admin_group_owner_object_id else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return group.object_id.apply(lambda object_id: [object_id])


def _addon_profiles(
    cfg: ClusterSpec, workspace: pulumi.Input[str] | None
) -> dict[str, containerservice.ManagedClusterAddonProfileArgs]:
    """The add-ons, keyed and configured as ARM has them (add-on config values are strings)."""
    addons = {"azurepolicy": containerservice.ManagedClusterAddonProfileArgs(enabled=cfg.azure_policy_addon)}
    if cfg.secrets_rotation_poll_minutes > 0:
        # Mounted secrets follow rotations in Key Vault without a pod restart.
        addons["azureKeyvaultSecretsProvider"] = containerservice.ManagedClusterAddonProfileArgs(
            enabled=True,
            config={"enableSecretRotation": "true", "rotationPollInterval": f"{cfg.secrets_rotation_poll_minutes}m"},
        )
    if workspace is not None:
        # Container Insights; Entra ID (managed identity) authentication instead of the workspace key.
        addons["omsagent"] = containerservice.ManagedClusterAddonProfileArgs(
            enabled=True,
            config={"logAnalyticsWorkspaceResourceID": workspace, "useAADAuth": "true"},
        )
    return addons
